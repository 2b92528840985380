"""Accept one upload: bound its size, check what it is, store it, record it, enqueue its transcode.

Either everything happens or nothing is left behind: a refusal removes the temp file, and a failure
after the source blob was written removes the blob and any row.
"""

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, update
from sqlmodel import Session, col

from core.blobs import CHUNK, Stores
from core.errors import Refusal, Refused, too_large_detail
from core.media_keys import media_prefix, source_key
from core.settings import Settings
from core.source_check import check_source
from core.titles import checked_title
from schemas.tables import TranscodeJob, Video, VideoStatus

log = logging.getLogger(__name__)


def copy_bounded(stream: BinaryIO, dest: Path, limit: int) -> int:
    size = 0
    with dest.open("wb") as out:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise Refused(Refusal.too_large, too_large_detail(limit))
            out.write(chunk)
    return size


def clean_title(title: str | None, filename: str | None) -> str:
    """The title given, else the file's name, else "Untitled"; cleaned by the one sanitizer (core.titles)."""
    return checked_title(title or "") or checked_title(Path(filename or "").stem) or "Untitled"


def accept_upload(
    stream: BinaryIO,
    filename: str | None,
    title: str | None,
    *,
    owner_id: uuid.UUID,
    description: str = "",
    visibility: str = "public",
    session: Session,
    stores: Stores,
    settings: Settings,
    enqueue: Callable[[uuid.UUID], None],
) -> Video:
    """The multipart endpoint's entry: copy the stream to a bounded temp file, then `accept_file`."""
    title = clean_title(title, filename)
    tmp_dir = settings.tmp_dir / "uploads"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / uuid.uuid4().hex
    try:
        copy_bounded(stream, tmp, settings.max_upload_bytes)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return accept_file(
        tmp,
        filename,
        title,
        owner_id=owner_id,
        description=description,
        visibility=visibility,
        session=session,
        stores=stores,
        settings=settings,
        enqueue=enqueue,
    )


def accept_file(
    path: Path,
    filename: str | None,
    title: str | None,
    *,
    owner_id: uuid.UUID,
    description: str = "",
    visibility: str = "public",
    session: Session,
    stores: Stores,
    settings: Settings,
    enqueue: Callable[[uuid.UUID], None],
) -> Video:
    """Sniff, probe, store, record and enqueue a complete local file: the one ingest path for every upload.

    Takes ownership of `path`: it is deleted once stored or refused, so no caller leaves it behind.
    """
    try:
        title = clean_title(title, filename)
        checked = check_source(path, settings)
        video = Video(
            owner_id=owner_id,
            title=title,
            description=description,
            visibility=visibility,
            source_filename=(filename or "")[:255] or None,
            source_key="",
            **checked.video_fields(),
        )
        video.source_key = source_key(video.id)
        job = TranscodeJob(video_id=video.id, owner_id=owner_id)
        stores.sources.put_file(video.source_key, path)
    finally:
        path.unlink(missing_ok=True)

    try:
        session.add(video)
        session.flush()
        session.add(job)
        session.commit()
    except Exception as exc:
        session.rollback()
        session.execute(delete(Video).where(col(Video.id) == video.id))  # cascades to the job
        session.commit()
        stores.sources.delete_prefix(media_prefix(video.id))
        # The database's words (SQL, host names) go to the log, never to the creator.
        log.exception("video %s: could not record the upload; not kept", video.id)
        raise Refused(Refusal.unavailable, "could not record the upload, not kept: try again") from exc
    enqueue(job.id)  # never raises: with the broker down, a worker's supervisor rings for the job later
    # The worker may already have moved the video on; only advance it from `uploaded`.
    session.execute(
        update(Video)
        .where(col(Video.id) == video.id, col(Video.status) == VideoStatus.uploaded)
        .values(status=VideoStatus.queued)
    )
    session.commit()
    session.refresh(video)
    return video

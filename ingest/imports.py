"""Accept an import from a URL: check the address now, record the video (status `importing`) and its import, and
ring a worker (workers.imports downloads it; the database keeps it queued if the doorbell is lost).

The address is checked here so that a creator learns at once that a URL can never be fetched (not http(s), a
private or loopback address, a host that does not resolve); the worker's guarded client checks every hop again
when it connects (core.egress), which is what stops DNS rebinding and redirects into the network.
"""

import uuid
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import unquote

import httpx
from sqlmodel import Session

from core.egress import EgressRefused, check_url
from core.errors import Refusal, Refused
from core.imports import open_imports
from core.settings import Settings
from ingest.intake import clean_title
from schemas.tables import Video, VideoImport, VideoStatus


def url_file_name(url: str) -> str:
    """The last segment of the URL's path, decoded ("" for none): the video's title when none is given."""
    return PurePosixPath(unquote(httpx.URL(url).path)).name[:255]


def start_import(
    url: str,
    title: str | None,
    *,
    owner_id: uuid.UUID,
    description: str = "",
    visibility: str = "public",
    session: Session,
    settings: Settings,
    enqueue: Callable[[uuid.UUID], None],
) -> Video:
    try:
        checked = check_url(url, settings)
    except EgressRefused as exc:
        raise Refused(Refusal.invalid, f"cannot import from this URL: {exc.message}") from exc
    if open_imports(session, owner_id) >= settings.import_max_open:
        raise Refused(
            Refusal.too_many,
            f"you have {settings.import_max_open} imports waiting or running: wait for one to finish",
            retry_after=60,
        )
    name = url_file_name(checked)
    video = Video(
        owner_id=owner_id,
        title=clean_title(title, name),
        description=description,
        visibility=visibility,
        status=VideoStatus.importing,
        source_filename=name or None,
        source_key="",  # set with the source once fetched (core.imports.record_imported)
        source_size=0,
        source_format="",
    )
    job = VideoImport(video_id=video.id, owner_id=owner_id, url=checked)
    session.add(video)
    session.flush()
    session.add(job)
    session.commit()
    enqueue(job.id)  # never raises: with the broker down, a worker's supervisor rings for the import later
    session.refresh(video)
    return video

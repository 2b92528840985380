"""The owner turns a video's downloads on, picks their rung, or turns them off (PATCH /api/v1/videos/{id}).

Turning them on records the choice and pending rows; on a ready video it also queues the download part that makes
the files (core.downloads), while encoding the part is queued when the video becomes ready. Turning them off, or
choosing another rung, deletes the rows and the part first, then the files: an attempt still remuxing finds its
part gone and removes what it wrote itself, so no file outlives its row.
"""

import logging
from collections.abc import Callable
from uuid import UUID

from sqlmodel import Session, col, select

from core.blobs import Stores
from core.downloads import (
    choose_rendition,
    download_part,
    h264_rungs,
    planned_rungs,
    published_job,
    replace_rows,
    wanted_rows,
)
from core.errors import Refusal, Refused
from core.media_keys import downloads_prefix
from schemas.api import DownloadsUpdate
from schemas.tables import Download, DownloadState, Rendition, TranscodeJob, Video, VideoStatus, utcnow

log = logging.getLogger(__name__)
ENDED = (VideoStatus.failed, VideoStatus.cancelled)


def known_rungs(session: Session, video: Video) -> list[str] | None:
    """The H.264 rungs of the published encode, or of the encode being made once planned; None before that."""
    if video.status == VideoStatus.ready:
        return h264_rungs(list(session.exec(select(Rendition).where(Rendition.video_id == video.id))))
    job = session.exec(
        select(TranscodeJob).where(TranscodeJob.video_id == video.id).order_by(col(TranscodeJob.queued_at).desc())
    ).first()
    return planned_rungs(job.plan if job is not None else None)


def change_downloads(
    session: Session, video: Video, change: DownloadsUpdate, stores: Stores, enqueue: Callable[[UUID], None]
) -> None:
    """Apply the owner's change and commit; Refused (4xx) for a rung the video lacks or a video that failed."""
    rows = list(session.exec(select(Download).where(Download.video_id == video.id)))
    if not change.enabled:
        if not video.downloads_enabled and not rows:
            return
        video.downloads_enabled, video.download_rendition = False, None
        _replace(session, video, [], stores)
        return
    if video.status in ENDED:
        raise Refused(Refusal.conflict, f"video {video.id} is {video.status}: it has no encode to download from")
    rungs = known_rungs(session, video)
    rendition = choose_rendition(change.rendition, rungs, has_video=video.has_video)
    unchanged = video.downloads_enabled and video.download_rendition == change.rendition
    if unchanged and rows and not any(r.state == DownloadState.failed for r in rows):
        return  # already on with this rung (a failed file is made again: turning them on is the retry)
    video.downloads_enabled, video.download_rendition = True, change.rendition
    job = published_job(session, video) if video.status == VideoStatus.ready else None
    if video.status == VideoStatus.ready and job is None:
        raise Refused(Refusal.conflict, "this video was encoded before downloads existed: re-transcode it first")
    queued = _replace(session, video, wanted_rows(video, rendition, rungs), stores, job)
    if queued is not None:
        enqueue(queued)


def _replace(
    session: Session, video: Video, rows: list[Download], stores: Stores, job: TranscodeJob | None = None
) -> UUID | None:
    """New rows (and the part making them, on a ready video) in one commit, then the old files go: those listed
    before the commit, so a new part's files are never among them. Returns the job to ring for, if a part was
    queued."""
    old = _old_files(session, video, stores)
    replace_rows(session, video, rows)
    queued = job is not None and any(r.state == DownloadState.pending for r in rows)
    if queued and job is not None:
        session.add(download_part(job))
    video.updated_at = utcnow()
    session.add(video)
    session.commit()
    try:
        for key in old:
            stores.media.delete_prefix(key)
    except Exception:  # the rows are gone already: the video's deletion or its next encode removes the files
        log.warning("video %s: could not remove its old downloads", video.id, exc_info=True)
    return job.id if queued and job is not None else None


def _old_files(session: Session, video: Video, stores: Stores) -> set[str]:
    """The downloads stored now: the rows' files, and any other in the published encode's downloads folder."""
    keys = {r.blob_key for r in session.exec(select(Download).where(Download.video_id == video.id)) if r.blob_key}
    if video.media_root is not None:
        try:
            keys.update(stores.media.list(downloads_prefix(video.media_root)))
        except Exception:
            log.warning("video %s: could not list its downloads", video.id, exc_info=True)
    return keys

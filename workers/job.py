"""One transcode job: fetch the source, run the pipeline, publish the HLS output, record the result.

Re-running a job (redelivery after a lost worker, or a retry) replaces its output: the video's media
prefix is cleared before upload and its renditions are rewritten in one transaction.
"""

import logging
import os
import shutil
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import delete, update
from sqlmodel import Session

from core.blobs import BlobStore, Stores, make_stores
from core.db import get_engine
from core.settings import Settings
from ingest.errors import IngestError
from schemas.tables import JobState, Rendition, TranscodeJob, Video, VideoStatus, utcnow
from workers.command import MASTER_NAME, MEDIA_PLAYLIST
from workers.pipeline import Progress, TranscodeError, TranscodeResult, transcode

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 1.0


def media_prefix(video_id: uuid.UUID) -> str:
    return f"{video_id}/"


class ProgressWriter:
    """Writes ffmpeg progress to the job and video rows, at most once a second."""

    def __init__(self, engine, job_id: uuid.UUID, video_id: uuid.UUID) -> None:
        self.engine, self.job_id, self.video_id = engine, job_id, video_id
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_INTERVAL and p.fraction < 1.0:
            return
        self._last = now
        fraction = round(min(p.fraction, 0.99), 4)  # 1.0 only once the output is published
        with Session(self.engine) as s:
            s.execute(
                update(TranscodeJob).where(TranscodeJob.id == self.job_id).values(progress=fraction, speed=p.speed)
            )
            s.execute(update(Video).where(Video.id == self.video_id).values(progress=fraction, updated_at=utcnow()))
            s.commit()


def _upload_order(path: Path) -> tuple[int, str]:
    """Segments first, media playlists next, master last: a reader never finds a dangling reference."""
    rank = 2 if path.name == MASTER_NAME else 1 if path.name == MEDIA_PLAYLIST else 0
    return rank, str(path)


def publish(store: BlobStore, out_dir: Path, prefix: str) -> list[str]:
    files = sorted((p for p in out_dir.rglob("*") if p.is_file()), key=_upload_order)
    keys = [prefix + p.relative_to(out_dir).as_posix() for p in files]
    media = [(k, p) for k, p in zip(keys, files, strict=True) if _upload_order(p)[0] == 0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda kp: store.put_file(*kp), media))
    for key, path in zip(keys, files, strict=True):
        if _upload_order(path)[0] > 0:
            store.put_file(key, path)
    return keys


def _start(engine, job_id: uuid.UUID) -> tuple[uuid.UUID, str] | None:
    with Session(engine) as s:
        job = s.get(TranscodeJob, job_id)
        if job is None or job.state in (JobState.succeeded, JobState.cancelled):
            return None
        video = s.get(Video, job.video_id)
        if video is None:
            return None
        job.state, job.attempts, job.progress, job.error = JobState.running, job.attempts + 1, 0.0, None
        job.started_at, job.finished_at = utcnow(), None
        job.worker = f"{socket.gethostname()}:{os.getpid()}"
        video.status, video.progress, video.error, video.updated_at = VideoStatus.processing, 0.0, None, utcnow()
        s.commit()
        return video.id, video.source_key


def _record_success(engine, stores: Stores, job_id: uuid.UUID, video_id: uuid.UUID, result: TranscodeResult) -> bool:
    with Session(engine) as s:
        video = s.get(Video, video_id, with_for_update=True)
        if video is None:  # deleted while encoding: take the output away again
            stores.media.delete_prefix(media_prefix(video_id))
            return False
        s.execute(delete(Rendition).where(Rendition.video_id == video_id))
        for v in result.variants:
            s.add(
                Rendition(
                    video_id=video_id,
                    name=v.name,
                    width=v.width,
                    height=v.height,
                    frame_rate=v.frame_rate,
                    bandwidth=v.bandwidth,
                    average_bandwidth=v.average_bandwidth,
                    codecs=v.codecs,
                    playlist_key=f"{media_prefix(video_id)}{v.name}/{MEDIA_PLAYLIST}",
                )
            )
        src = result.source
        video.status, video.progress, video.error = VideoStatus.ready, 1.0, None
        video.duration, video.has_video, video.has_audio = src.duration, src.has_video, src.has_audio
        video.width = src.display_width or None
        video.height = src.display_height or None
        video.updated_at = utcnow()
        job = s.get(TranscodeJob, job_id)
        if job is not None:
            job.state, job.progress, job.finished_at = JobState.succeeded, 1.0, utcnow()
        s.commit()
        return True


def _record_failure(engine, job_id: uuid.UUID, video_id: uuid.UUID, reason: str, log_tail: str) -> None:
    with Session(engine) as s:
        s.execute(
            update(TranscodeJob)
            .where(TranscodeJob.id == job_id)
            .values(state=JobState.failed, error=reason, log_tail=log_tail or None, finished_at=utcnow())
        )
        s.execute(
            update(Video)
            .where(Video.id == video_id)
            .values(status=VideoStatus.failed, error=reason, updated_at=utcnow())
        )
        s.commit()


def run_job(job_id: uuid.UUID, settings: Settings, stores: Stores | None = None) -> str:
    engine = get_engine(settings)
    stores = stores or make_stores(settings)
    started = _start(engine, job_id)
    if started is None:
        return "skipped"
    video_id, source_key = started
    work = settings.tmp_dir / "jobs" / str(job_id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        src = work / "source"
        stores.sources.download_to(source_key, src)
        result = transcode(src, work / "hls", settings, on_progress=ProgressWriter(engine, job_id, video_id))
        stores.media.delete_prefix(media_prefix(video_id))
        publish(stores.media, work / "hls", media_prefix(video_id))
        _record_success(engine, stores, job_id, video_id, result)
        log.info("video %s ready: %d variants in %.1fs", video_id, len(result.variants), result.elapsed)
        return JobState.succeeded
    except Exception as exc:
        if isinstance(exc, TranscodeError):
            reason, tail = exc.reason, exc.log_tail
        elif isinstance(exc, IngestError):
            reason, tail = exc.detail, ""
        else:
            log.exception("job %s crashed", job_id)
            reason, tail = f"internal error: {type(exc).__name__}: {exc}", ""
        try:
            stores.media.delete_prefix(media_prefix(video_id))
        finally:
            _record_failure(engine, job_id, video_id, reason, tail)
        log.warning("video %s failed: %s", video_id, reason)
        return JobState.failed
    finally:
        shutil.rmtree(work, ignore_errors=True)

"""One transcode job: claim it, fetch the source, run the pipeline, publish the HLS output, record the result.

Re-running a job (after a lost worker, or a retry) replaces its output: the video's media prefix is
cleared before upload (all but the creator's captions) and its renditions are rewritten in one transaction.
Every result is written only while this worker still holds the job, so a job re-queued behind a stalled
worker is never clobbered.
"""

import contextvars
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import delete, update
from sqlmodel import Session, col

from core.blobs import BlobStore, Stores, make_stores
from core.db import affected, get_engine
from core.errors import Refused
from core.jobqueue import HEARTBEAT_INTERVAL, Claimed, claim_next, heartbeat
from core.logs import job_context
from core.media_keys import CAPTIONS_DIR, MASTER_NAME, MEDIA_PLAYLIST, media_prefix, rendition_playlist_key
from core.settings import Settings
from schemas.tables import FailureKind, JobState, Rendition, TranscodeJob, Video, VideoStatus, utcnow
from workers.pipeline import Progress, Stopped, TranscodeError, TranscodeResult, transcode

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 1.0


def clear_encode(store: BlobStore, video_id: uuid.UUID) -> None:
    """Remove a previous encode's output from the video's media prefix, keeping its captions."""
    prefix = media_prefix(video_id)
    # ("720p", "/") for a folder, ("master.m3u8", "") for a file
    tops = {key[len(prefix) :].partition("/")[:2] for key in store.list(prefix)}
    for name, slash in sorted(tops):
        if name != CAPTIONS_DIR:
            store.delete_prefix(prefix + name + slash)


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
                update(TranscodeJob)
                .where(col(TranscodeJob.id) == self.job_id)
                .values(progress=fraction, speed=p.speed, fps=p.fps)
            )
            s.execute(
                update(Video).where(col(Video.id) == self.video_id).values(progress=fraction, updated_at=utcnow())
            )
            s.commit()


def _upload_order(path: Path) -> tuple[int, str]:
    """Segments first, media playlists next, master last: a reader never finds a dangling reference."""
    rank = 2 if path.name == MASTER_NAME else 1 if path.name == MEDIA_PLAYLIST else 0
    return rank, str(path)


def publish(store: BlobStore, out_dir: Path, prefix: str) -> list[str]:
    files = sorted((p for p in out_dir.rglob("*") if p.is_file()), key=_upload_order)
    keys = [prefix + p.relative_to(out_dir).as_posix() for p in files]
    media = [(k, p) for k, p in zip(keys, files, strict=True) if _upload_order(p)[0] == 0]
    with ThreadPoolExecutor(max_workers=8) as pool:  # each upload logs with the job's ids (contextvars)
        for done in [pool.submit(contextvars.copy_context().run, store.put_file, k, p) for k, p in media]:
            done.result()
    for key, path in zip(keys, files, strict=True):
        if _upload_order(path)[0] > 0:
            store.put_file(key, path)
    return keys


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _held(job_id: uuid.UUID, worker: str) -> tuple:
    return (TranscodeJob.id == job_id, TranscodeJob.state == JobState.running, TranscodeJob.worker == worker)


@contextmanager
def beating(engine, job_id: uuid.UUID, cancelled: threading.Event) -> Iterator[None]:
    """Heartbeats the job while it runs; sets `cancelled` when someone cancels it (noticed within a beat)."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(HEARTBEAT_INTERVAL):
            try:
                if heartbeat(engine, job_id):
                    cancelled.set()
            except Exception:  # a database blip must not kill the encode; the reaper has a margin
                log.warning("heartbeat for job %s failed", job_id, exc_info=True)

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(loop,), name=f"heartbeat-{job_id}", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def _record_success(engine, stores: Stores, job: Claimed, worker: str, result: TranscodeResult) -> bool:
    job_id, video_id = job.job_id, job.video_id
    with Session(engine) as s:
        video = s.get(Video, video_id, with_for_update=True)
        held = affected(
            s.execute(
                update(TranscodeJob)
                .where(*_held(job_id, worker))
                .values(
                    state=JobState.succeeded,
                    progress=1.0,
                    finished_at=utcnow(),
                    encoded_seconds=result.source.duration,
                )
            )
        )
        if video is None or not held:  # deleted, or taken away from this worker while encoding
            s.rollback()
            if video is None:
                stores.media.delete_prefix(media_prefix(video_id))
            return False
        s.execute(delete(Rendition).where(col(Rendition.video_id) == video_id))
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
                    playlist_key=rendition_playlist_key(video_id, v.name),
                )
            )
        src = result.source
        video.status, video.progress, video.error = VideoStatus.ready, 1.0, None
        video.duration, video.has_video, video.has_audio = src.duration, src.has_video, src.has_audio
        video.width = src.display_width or None
        video.height = src.display_height or None
        video.updated_at = utcnow()
        s.commit()
        return True


def _record_end(
    engine, job: Claimed, worker: str, state: JobState, reason: str, kind: FailureKind | None, log_tail: str = ""
) -> None:
    """A failed job (with its kind) or a cancelled one (kind None), if this worker still holds it."""
    status = VideoStatus.cancelled if state == JobState.cancelled else VideoStatus.failed
    with Session(engine) as s:
        held = affected(
            s.execute(
                update(TranscodeJob)
                .where(*_held(job.job_id, worker))
                .values(state=state, error=reason, failure_kind=kind, log_tail=log_tail or None, finished_at=utcnow())
            )
        )
        if held:
            s.execute(
                update(Video)
                .where(col(Video.id) == job.video_id)
                .values(status=status, error=reason if state == JobState.failed else None, updated_at=utcnow())
            )
        s.commit()


def run_next(settings: Settings, stores: Stores | None = None) -> str:
    """Claim the best queued job and run it. Returns what became of it ("idle" when the queue was empty)."""
    engine = get_engine(settings)
    worker = worker_name()
    job = claim_next(engine, worker)
    if job is None:
        return "idle"
    return run_claimed(job, worker, settings, stores or make_stores(settings))


def run_claimed(job: Claimed, worker: str, settings: Settings, stores: Stores) -> str:
    """Run a claimed job; every line logged meanwhile carries its job and video ids (core.logs)."""
    with job_context(job.job_id, job.video_id):
        return _run(job, worker, settings, stores)


def _run(job: Claimed, worker: str, settings: Settings, stores: Stores) -> str:
    engine = get_engine(settings)
    video_id = job.video_id
    work = settings.tmp_dir / "jobs" / str(job.job_id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log.info("job %s (video %s) started on %s", job.job_id, video_id, worker)
    cancelled = threading.Event()
    try:
        with beating(engine, job.job_id, cancelled):
            src = work / "source"
            stores.sources.download_to(job.source_key, src)
            progress = ProgressWriter(engine, job.job_id, video_id)
            result = transcode(src, work / "hls", settings, on_progress=progress, should_stop=cancelled.is_set)
            if cancelled.is_set():
                raise Stopped
            clear_encode(stores.media, video_id)
            publish(stores.media, work / "hls", media_prefix(video_id))
            if cancelled.is_set():
                raise Stopped
            if not _record_success(engine, stores, job, worker, result):
                log.warning("job %s was taken away from %s; result dropped", job.job_id, worker)
                return "lost"
        log.info("video %s ready: %d variants in %.1fs", video_id, len(result.variants), result.elapsed)
        return JobState.succeeded
    except Exception as exc:
        stopped = isinstance(exc, Stopped) or (isinstance(exc, TranscodeError) and cancelled.is_set())
        kind: FailureKind | None
        if stopped:
            state, reason, kind, tail = JobState.cancelled, "cancelled by an operator", None, ""
        elif isinstance(exc, TranscodeError):
            state, reason, kind, tail = JobState.failed, exc.reason, exc.kind, exc.log_tail
        elif isinstance(exc, Refused) and exc.kind is not None:  # the source refused by probe or sniff
            state, reason, kind, tail = JobState.failed, exc.detail, exc.kind, ""
        else:
            log.exception("job %s crashed", job.job_id)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            state, kind, tail = JobState.failed, FailureKind.internal, ""
        try:
            clear_encode(stores.media, video_id)
        finally:
            _record_end(engine, job, worker, state, reason, kind, tail)
        log.warning("video %s %s: %s", video_id, state, reason)
        return state
    finally:
        shutil.rmtree(work, ignore_errors=True)

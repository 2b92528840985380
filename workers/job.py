"""One transcode job: claim it, fetch the source, run the pipeline, publish the HLS output, record the result.

Each attempt at a job has its own lease (core.jobqueue): its scratch folder and its blob folder are named by
it, and its progress, heartbeat, result and cleanup are all conditional on still holding it. A worker that
froze while its job was re-run elsewhere wakes up to find the lease gone: it deletes its own folder and
nothing else. Publishing is atomic for viewers: every file is uploaded (master last) before one transaction
points the video at the new folder and makes it ready; only then are older encodes removed.
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
from core.jobqueue import HEARTBEAT_INTERVAL, Beat, Claimed, claim_next, heartbeat, held_by, retry_later
from core.logs import job_context
from core.media_keys import CAPTIONS_DIR, MASTER_NAME, MEDIA_PLAYLIST, STORYBOARD_VTT, encode_prefix, media_prefix
from core.settings import Settings
from core.transient import PUBLIC_REASONS, transient_kind
from schemas.tables import FailureKind, JobState, Rendition, TranscodeJob, Video, VideoStatus, utcnow
from workers.pipeline import Progress, Stopped, TranscodeError, TranscodeResult, transcode

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 1.0


def clear_encodes(store: BlobStore, video_id: uuid.UUID, keep: str | None = None) -> None:
    """Remove the video's encodes (every attempt's folder, and the top-level files of one from before 0006),
    except the folder `keep` and the creator's captions."""
    prefix = media_prefix(video_id)
    # ("720p", "/") for a folder, ("master.m3u8", "") for a file
    tops = {key[len(prefix) :].partition("/")[:2] for key in store.list(prefix)}
    for name, slash in sorted(tops):
        if name != CAPTIONS_DIR and prefix + name + slash != keep:
            store.delete_prefix(prefix + name + slash)


class ProgressWriter:
    """Writes ffmpeg progress to the job and video rows, at most once a second, while the attempt holds the job."""

    def __init__(self, engine, job: Claimed) -> None:
        self.engine, self.job = engine, job
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_INTERVAL and p.fraction < 1.0:
            return
        self._last = now
        fraction = round(min(p.fraction, 0.99), 4)  # 1.0 only once the output is published
        with Session(self.engine) as s:
            mine = update(TranscodeJob).where(*held_by(self.job)).values(progress=fraction, speed=p.speed, fps=p.fps)
            if affected(s.execute(mine)):
                s.execute(
                    update(Video)
                    .where(col(Video.id) == self.job.video_id)
                    .values(progress=fraction, updated_at=utcnow())
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


class Stop:
    """Why an attempt must stop early, set by its heartbeat: an operator's cancel, or the job taken away."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.lost = threading.Event()

    def __call__(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set()


@contextmanager
def beating(engine, job: Claimed, stop: Stop) -> Iterator[None]:
    """Heartbeats the attempt while it runs, and notices within a beat a cancel or the job taken away."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(HEARTBEAT_INTERVAL):
            try:
                beat = heartbeat(engine, job)
            except Exception:  # a database blip must not kill the encode; the reaper has a margin
                log.warning("heartbeat for job %s failed", job.job_id, exc_info=True)
                continue
            if beat == Beat.cancel:
                stop.cancelled.set()
            elif beat == Beat.lost:
                stop.lost.set()

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(loop,), name=f"heartbeat-{job.job_id}", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def _read_text(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _record_success(engine, job: Claimed, result: TranscodeResult, root: str, out_dir: Path) -> bool:
    """Make the video ready on the encode under `root`, in one transaction, if this attempt still holds the job.
    Viewers see the old state or the new one, never a mix: the files are all in place before this runs."""
    with Session(engine) as s:
        video = s.get(Video, job.video_id, with_for_update=True)
        done = {"state": JobState.succeeded, "progress": 1.0, "finished_at": utcnow()}
        held = affected(
            s.execute(
                update(TranscodeJob)
                .where(*held_by(job))
                .values(**done, encoded_seconds=result.source.duration, error=None, failure_kind=None)
            )
        )
        if video is None or not held:  # deleted, or taken away from this attempt while it encoded
            s.rollback()
            return False
        s.execute(delete(Rendition).where(col(Rendition.video_id) == job.video_id))
        for v in result.variants:
            s.add(
                Rendition(
                    video_id=job.video_id,
                    name=v.name,
                    width=v.width,
                    height=v.height,
                    frame_rate=v.frame_rate,
                    bandwidth=v.bandwidth,
                    average_bandwidth=v.average_bandwidth,
                    codecs=v.codecs,
                    playlist_key=f"{root}{v.name}/{MEDIA_PLAYLIST}",
                    playlist=_read_text(out_dir / v.name / MEDIA_PLAYLIST),
                )
            )
        src = result.source
        video.status, video.progress, video.error, video.media_root = VideoStatus.ready, 1.0, None, root
        video.master_playlist = _read_text(out_dir / MASTER_NAME)
        video.storyboard_track = _read_text(out_dir / STORYBOARD_VTT)
        video.duration, video.has_video, video.has_audio = src.duration, src.has_video, src.has_audio
        video.width = src.display_width or None
        video.height = src.display_height or None
        video.updated_at = utcnow()
        s.commit()
        return True


def _record_end(engine, job: Claimed, state: JobState, reason: str, kind: FailureKind | None, log_tail: str) -> bool:
    """A failed job (with its kind) or a cancelled one (kind None), if this attempt still holds it. The owner
    reads `reason` only when it carries no internals (core.transient.PUBLIC_REASONS)."""
    status = VideoStatus.cancelled if state == JobState.cancelled else VideoStatus.failed
    public = PUBLIC_REASONS.get(kind, reason) if kind else reason
    with Session(engine) as s:
        held = affected(
            s.execute(
                update(TranscodeJob)
                .where(*held_by(job))
                .values(state=state, error=reason, failure_kind=kind, log_tail=log_tail or None, finished_at=utcnow())
            )
        )
        if held:
            s.execute(
                update(Video)
                .where(col(Video.id) == job.video_id)
                .values(
                    status=status,
                    error=public if state == JobState.failed else None,
                    media_root=None,
                    master_playlist=None,
                    storyboard_track=None,
                    updated_at=utcnow(),
                )
            )
            s.execute(delete(Rendition).where(col(Rendition.video_id) == job.video_id))
        s.commit()
        return bool(held)


def _retry_later(engine, job: Claimed, reason: str, kind: FailureKind, settings: Settings) -> bool:
    retries, base = settings.transient_retries, settings.transient_retry_base_seconds
    with Session(engine) as s:
        delay = retry_later(s, job, reason, kind, max_retries=retries, base_seconds=base)
        s.commit()
    if delay is not None:
        log.warning("job %s: %s; retrying in %.0f s", job.job_id, reason, delay)
    return delay is not None


def run_next(settings: Settings, stores: Stores | None = None) -> str:
    """Claim the best queued job and run it. Returns what became of it ("idle" when the queue was empty)."""
    engine = get_engine(settings)
    worker = worker_name()
    job = claim_next(engine, worker)
    if job is None:
        return "idle"
    return run_claimed(job, worker, settings, stores or make_stores(settings))


def run_until_idle(settings: Settings, stores: Stores | None = None) -> list[str]:
    """Take jobs while the queue has work: one doorbell is enough to drain it, so lost doorbells cost nothing
    while any worker is awake (a busy worker comes back here when its job ends)."""
    outcomes: list[str] = []
    stores = stores or make_stores(settings)
    while (outcome := run_next(settings, stores)) != "idle":
        outcomes.append(outcome)
    return outcomes


def run_claimed(job: Claimed, worker: str, settings: Settings, stores: Stores) -> str:
    """Run a claimed job; every line logged meanwhile carries its job and video ids (core.logs)."""
    with job_context(job.job_id, job.video_id):
        return _run(job, worker, settings, stores)


def scratch_dir(settings: Settings, job: Claimed) -> Path:
    """The attempt's own scratch folder: workers may share the volume (compose replicas do)."""
    return settings.tmp_dir / "jobs" / f"{job.job_id}.{job.lease.hex}"


def _run(job: Claimed, worker: str, settings: Settings, stores: Stores) -> str:
    engine = get_engine(settings)
    video_id = job.video_id
    root = encode_prefix(video_id, job.lease)
    work = scratch_dir(settings, job)
    work.mkdir(parents=True)
    log.info("job %s (video %s) attempt %s started on %s", job.job_id, video_id, job.lease, worker)
    stop = Stop()
    try:
        with beating(engine, job, stop):
            src = work / "source"
            stores.sources.download_to(job.source_key, src)
            progress = ProgressWriter(engine, job)
            result = transcode(src, work / "hls", settings, on_progress=progress, should_stop=stop)
            if stop():
                raise Stopped
            publish(stores.media, work / "hls", root)
            if stop():
                raise Stopped
            if not _record_success(engine, job, result, root, work / "hls"):
                stop.lost.set()
                raise Stopped
        clear_encodes(stores.media, video_id, keep=root)  # the encodes this one replaces (a re-transcode)
        log.info("video %s ready: %d variants in %.1fs", video_id, len(result.variants), result.elapsed)
        return JobState.succeeded
    except Exception as exc:
        return _end(exc, job, stop, settings, stores, root)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _end(exc: Exception, job: Claimed, stop: Stop, settings: Settings, stores: Stores, root: str) -> str:
    """An attempt that did not publish: remove what it wrote, then record why, if it still holds the job."""
    engine = get_engine(settings)
    video_id = job.video_id
    try:
        stores.media.delete_prefix(root)  # its own folder only: never what a newer attempt wrote
    except Exception:  # the store may be the thing that failed; the next attempt's end removes the folder
        log.warning("could not remove attempt %s's files under %s", job.lease, root, exc_info=True)
    if stop.lost.is_set():
        log.warning("job %s was taken away from attempt %s; its output is dropped", job.job_id, job.lease)
        return "lost"
    stopped = isinstance(exc, Stopped) or (isinstance(exc, TranscodeError) and stop.cancelled.is_set())
    kind: FailureKind | None
    tail = ""
    if stopped:
        state, reason, kind = JobState.cancelled, "cancelled by an operator", None
    elif isinstance(exc, TranscodeError):
        state, reason, kind, tail = JobState.failed, exc.reason, exc.kind, exc.log_tail
    elif isinstance(exc, Refused) and exc.kind is not None:  # the source refused by probe or sniff
        state, reason, kind = JobState.failed, exc.detail, exc.kind
    elif (transient := transient_kind(exc)) is not None:
        log.warning("job %s: transient failure", job.job_id, exc_info=True)
        reason = f"{transient}: {type(exc).__name__}: {exc}"[:2000]
        if _retry_later(engine, job, reason, transient, settings):
            return "retrying"
        state, kind = JobState.failed, transient
    else:
        log.exception("job %s crashed", job.job_id)
        reason = f"internal error: {type(exc).__name__}: {exc}"
        state, kind = JobState.failed, FailureKind.internal
    if _record_end(engine, job, state, reason, kind, tail):
        clear_encodes(stores.media, video_id)  # a failed or cancelled video shows nothing, keeps its captions
    log.warning("video %s %s: %s", video_id, state, reason)
    return state

"""One transcode job: claim it, probe the source, and plan it into parts that any worker takes (workers.parts);
and what a job's end does whichever part ends it.

Each attempt at a job has its own lease (core.jobqueue). The planning attempt's lease becomes the job's
generation: the folder its parts write in (core.media_keys.encode_prefix) and the fence of every write they
make. A worker that froze while its job was re-planned elsewhere wakes up to find the lease gone: it deletes
its own files and nothing else. A re-transcode's new encode replaces the old one only once it is ready.
"""

import contextvars
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from core.blobs import BlobStore, Stores, make_stores
from core.db import affected, get_engine
from core.errors import Refused
from core.imports import claim_import
from core.jobqueue import HEARTBEAT_INTERVAL, Beat, Claimed, claim_next, heartbeat, held_by, retry_later
from core.logs import job_context
from core.media_keys import CAPTIONS_DIR, encode_prefix, media_prefix
from core.notes import add_note
from core.parts import claim_part
from core.settings import Settings
from core.transient import PUBLIC_REASONS, transient_kind
from core.webhook_outbox import emit_for_video
from schemas.tables import (
    FailureKind,
    JobPart,
    JobState,
    NoteKind,
    PartKind,
    PartState,
    Rendition,
    TranscodeJob,
    Video,
    VideoStatus,
    WebhookEventType,
    utcnow,
)
from workers.pipeline import Stopped, TranscodeError
from workers.sources import local_source

log = logging.getLogger(__name__)


def clear_encodes(store: BlobStore, video_id: uuid.UUID, keep: str | None = None) -> None:
    """Remove the video's encodes (every attempt's folder, and the top-level files of one from before 0006),
    except the folder `keep` and the creator's captions."""
    prefix = media_prefix(video_id)
    # ("720p", "/") for a folder, ("master.m3u8", "") for a file
    tops = {key[len(prefix) :].partition("/")[:2] for key in store.list(prefix)}
    for name, slash in sorted(tops):
        if name != CAPTIONS_DIR and prefix + name + slash != keep:
            store.delete_prefix(prefix + name + slash)


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
def beating_with(beat: Callable[[], Beat], stop: Stop, name: str) -> Iterator[None]:
    """Heartbeats an attempt (a job's or a part's) while it runs, and notices within a beat a cancel or the
    work taken away."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(HEARTBEAT_INTERVAL):
            try:
                state = beat()
            except Exception:  # a database blip must not kill the encode; the reaper has a margin
                log.warning("heartbeat of %s failed", name, exc_info=True)
                continue
            if state == Beat.cancel:
                stop.cancelled.set()
            elif state == Beat.lost:
                stop.lost.set()

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(loop,), name=f"heartbeat-{name}", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def beating(engine, job: Claimed, stop: Stop):
    return beating_with(lambda: heartbeat(engine, job), stop, f"job-{job.job_id}")


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
            if state == JobState.failed:
                emit_for_video(s, WebhookEventType.video_failed, job.video_id)
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


def run_next(settings: Settings, stores: Stores | None = None, ring: Callable[[str], None] | None = None) -> str:
    """Take the most urgent work and run it: a part of a planned job first (finishing what started publishes
    sooner), then an import from a URL (it ends in a queued job), else the best queued job, which is planned into
    parts. Returns what became of it ("idle": none)."""
    from workers.imports import run_import  # noqa: PLC0415 (imports use this module's heartbeat)
    from workers.parts import run_part  # noqa: PLC0415 (parts import this module)

    engine = get_engine(settings)
    worker = worker_name()
    stores = stores or make_stores(settings)
    ring = ring or _no_doorbell
    part = claim_part(engine, worker)
    if part is not None:
        return run_part(part, worker, settings, stores, ring)
    imported = claim_import(engine, worker)
    if imported is not None:
        return run_import(imported, worker, settings, stores, ring)
    job = claim_next(engine, worker)
    if job is None:
        return "idle"
    return run_claimed(job, worker, settings, stores, ring)


def _no_doorbell(reason: str) -> None:
    """In-process runs (tests, `run_until_idle` without a broker): the caller keeps taking work itself."""


def run_until_idle(
    settings: Settings,
    stores: Stores | None = None,
    ring: Callable[[str], None] | None = None,
    between: Callable[[], object] | None = None,
) -> list[str]:
    """Take work while the queue has some: one doorbell is enough to drain it, so lost doorbells cost nothing
    while any worker is awake (a busy worker comes back here when its part ends). `between` runs after each
    piece of work: the worker sends the webhooks that piece emitted (ready, failed, playable) at once, rather
    than leaving their doorbell waiting behind a queue of encodes."""
    outcomes: list[str] = []
    stores = stores or make_stores(settings)
    while (outcome := run_next(settings, stores, ring)) != "idle":
        outcomes.append(outcome)
        if between is not None:
            try:
                between()
            except Exception:  # a webhook problem never stops encoding; the supervisor's sweep rings again
                log.warning("sending webhooks between parts failed", exc_info=True)
    return outcomes


def run_claimed(job: Claimed, worker: str, settings: Settings, stores: Stores, ring: Callable[[str], None]) -> str:
    """Plan a claimed job; every line logged meanwhile carries its job and video ids (core.logs)."""
    with job_context(job.job_id, job.video_id):
        return _plan(job, worker, settings, stores, ring)


def scratch_dir(settings: Settings, job: Claimed) -> Path:
    """The attempt's own scratch folder: workers may share the volume (compose replicas do)."""
    return settings.tmp_dir / "jobs" / f"{job.job_id}.{job.lease.hex}"


def _plan(job: Claimed, worker: str, settings: Settings, stores: Stores, ring: Callable[[str], None]) -> str:
    """Probe the source and split the job into parts that any worker takes (workers.parts). This attempt's
    lease becomes the job's generation: the parts' folder and the fence of everything they write."""
    from workers.parts import plan_digest  # noqa: PLC0415
    from workers.pipeline import prepare  # noqa: PLC0415

    engine = get_engine(settings)
    root = encode_prefix(job.video_id, job.lease)
    log.info("job %s (video %s) attempt %s planning on %s", job.job_id, job.video_id, job.lease, worker)
    stop = Stop()
    try:
        with beating(engine, job, stop):
            src = local_source(settings, stores.sources, job.source_key, job.video_id, job.lease)
            prepared = prepare(src, settings)
            if stop():
                raise Stopped
            parts = _record_plan(engine, job, prepared, plan_digest(prepared))
            if parts is None:
                stop.lost.set()
                raise Stopped
            if prepared.trial_failure:  # the fixed ladder it went on with is on the job
                add_note(engine, job.job_id, NoteKind.trial_failed, prepared.trial_failure)
    except Exception as exc:
        return _end(exc, job, stop, settings, stores, root)
    for _ in range(parts):
        ring(f"part of {job.job_id}")
    log.info("job %s planned: %d parts", job.job_id, parts)
    return "planned"


def plan_summary(prepared) -> dict:
    """What the API needs for a master before anything is measured, and operators read on the job."""
    plan = prepared.plan
    return {
        "renditions": [
            {"name": r.name, "width": r.width, "height": r.height, "frame_rate": float(r.fps),
             "maxrate_kbps": r.maxrate_kbps, "codec": r.codec}
            for r in plan.renditions
        ],
        "audio_kbps": plan.audio_kbps if prepared.info.has_audio else None,
        "target_duration": max([plan.segment_seconds, *(r.segment_seconds for r in prepared.ranges)]),
        "ranges": [[r.start, r.end] for r in prepared.ranges] if not plan.audio_only else [],
        "storyboard": prepared.thumbnails is not None,
        "source": prepared.info.to_json(),  # the parts plan from it (workers.pipeline.plan_encode)...
        "trial": prepared.trial.to_json() if prepared.trial else None,  # ...and from the per-title trial
        "ladder": prepared.ladder.to_json() if prepared.ladder else None,  # which rungs, and why
    }  # fmt: skip


def _record_plan(engine, job: Claimed, prepared, digest: str) -> int | None:
    """The plan and its parts, in one transaction, if this attempt still holds the job. Returns the part count."""
    info = prepared.info
    rows: list[JobPart] = []
    if not prepared.plan.audio_only:
        for r in prepared.ranges:
            rows.append(
                JobPart(job_id=job.job_id, video_id=job.video_id, generation=job.lease, kind=PartKind.video,
                        index=r.index, start_seconds=r.start, end_seconds=r.end, first_segment=r.first_segment,
                        segment_seconds=r.segment_seconds)
            )  # fmt: skip
    if info.has_audio:
        rows.append(
            JobPart(job_id=job.job_id, video_id=job.video_id, generation=job.lease, kind=PartKind.audio,
                    segment_seconds=prepared.plan.segment_seconds)
        )  # fmt: skip
    with Session(engine) as s:
        held = affected(
            s.execute(
                update(TranscodeJob)
                .where(*held_by(job))
                .values(planned_at=utcnow(), plan=plan_summary(prepared), plan_digest=digest)
            )
        )
        if not held:
            s.rollback()
            return None
        s.execute(delete(JobPart).where(col(JobPart.job_id) == job.job_id))  # an earlier generation's
        s.add_all(rows)
        s.execute(
            update(Video)
            .where(col(Video.id) == job.video_id)
            .values(duration=info.duration, has_video=info.has_video, has_audio=info.has_audio,
                    width=info.display_width or None, height=info.display_height or None, playable_seconds=None,
                    updated_at=utcnow())
        )  # fmt: skip
        s.commit()
    return len(rows)


def end_generation(
    engine,
    stores: Stores,
    job_id: uuid.UUID,
    generation: uuid.UUID,
    state: JobState,
    reason: str,
    kind: FailureKind | None,
    log_tail: str = "",
    *,
    public: str | None = None,
) -> bool:
    """A planned job failed or cancelled by one of its parts: the job and its video end, the other parts stop
    (their heartbeats find them closed), and the encode's files go. Only once, by whichever part got here.
    The owner reads `public` when given (a reason without internals), else `reason`."""
    status = VideoStatus.cancelled if state == JobState.cancelled else VideoStatus.failed
    with Session(engine) as s:
        held = affected(
            s.execute(
                update(TranscodeJob)
                .where(col(TranscodeJob.id) == job_id, col(TranscodeJob.lease) == generation,
                       col(TranscodeJob.state) == JobState.running)
                .values(state=state, error=reason, failure_kind=kind, log_tail=log_tail or None, finished_at=utcnow())
            )
        )  # fmt: skip
        if not held:
            s.rollback()
            return False
        video_id = s.execute(select(col(TranscodeJob.video_id)).where(col(TranscodeJob.id) == job_id)).scalar_one()
        s.execute(
            update(JobPart)
            .where(col(JobPart.job_id) == job_id, col(JobPart.state).in_([PartState.queued, PartState.running]))
            .values(state=PartState.cancelled, lease=None, finished_at=utcnow())
        )
        s.execute(
            update(Video)
            .where(col(Video.id) == video_id)
            .values(status=status, error=(public or reason) if state == JobState.failed else None, media_root=None,
                    master_playlist=None, storyboard_track=None, playable_seconds=None, updated_at=utcnow())
        )  # fmt: skip
        s.execute(delete(Rendition).where(col(Rendition.video_id) == video_id))
        if state == JobState.failed:
            emit_for_video(s, WebhookEventType.video_failed, video_id)
        s.commit()
    try:
        clear_encodes(stores.media, video_id)
    except Exception:  # the store may be what failed: a re-transcode or the video's deletion removes them
        log.warning("could not remove the encode of video %s", video_id, exc_info=True)
    log.warning("video %s %s: %s", video_id, state, reason)
    return True


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

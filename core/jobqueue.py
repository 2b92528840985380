"""The job queue lives in the database; Celery messages are only doorbells that wake a worker.

A woken worker claims the best queued job *now*, not the one the message was sent for. That is what
makes scheduling fair and steerable after the fact: an operator can raise a job's priority, cancel it
or retry it without touching the broker, and one creator's fifty uploads cannot starve everyone else.

Order: higher priority first; then fair share: a job's rank among its owner's queued jobs plus the
owner's jobs running or started in the last hour, so each creator's next job takes turns; then age.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Engine, Uuid, bindparam, select, text, update
from sqlmodel import Session, col

from core.db import affected
from schemas.tables import FailureKind, JobState, TranscodeJob, Video, VideoStatus, utcnow

FAIR_SHARE_WINDOW = timedelta(hours=1)
HEARTBEAT_INTERVAL = 1.0  # seconds between a running job's heartbeats (each one also picks up a cancel)
STALE_AFTER = timedelta(seconds=30)  # a running job silent this long lost its worker
WORKER_ONLINE = timedelta(seconds=30)  # a worker process seen this recently is online (workers.supervision)
MAX_ATTEMPTS = 3

_ORDERED_QUEUE = (
    text(
        """
    SELECT q.id, q.video_id FROM (
        SELECT id, video_id, owner_id, priority, queued_at,
               row_number() OVER (PARTITION BY owner_id ORDER BY priority DESC, queued_at, id) AS owner_rank
        FROM transcode_jobs
        WHERE state = 'queued' AND NOT cancel_requested
    ) q
    LEFT JOIN (
        SELECT owner_id, count(*) AS recent FROM transcode_jobs
        WHERE state = 'running' OR started_at > :since
        GROUP BY owner_id
    ) r ON r.owner_id = q.owner_id
    ORDER BY q.priority DESC, q.owner_rank + coalesce(r.recent, 0), q.queued_at, q.id
    """
    )
    .bindparams(bindparam("since", type_=DateTime(timezone=True)))
    .columns(id=Uuid(), video_id=Uuid())
)


@dataclass(frozen=True)
class Claimed:
    job_id: uuid.UUID
    video_id: uuid.UUID
    source_key: str


def queue_order(session: Session) -> list[uuid.UUID]:
    """Queued job ids in the order workers will take them (position = index + 1)."""
    rows = session.execute(_ORDERED_QUEUE, {"since": utcnow() - FAIR_SHARE_WINDOW}).all()
    return [r.id for r in rows]


def claim_next(engine: Engine, worker: str) -> Claimed | None:
    """Take the best queued job. A conditional UPDATE makes two workers never take the same one."""
    with Session(engine) as s:
        for job_id in queue_order(s)[:20]:
            now = utcnow()
            claimed = affected(
                s.execute(
                    update(TranscodeJob)
                    .where(col(TranscodeJob.id) == job_id, col(TranscodeJob.state) == JobState.queued)
                    .where(col(TranscodeJob.cancel_requested).is_(False))
                    .values(
                        state=JobState.running,
                        worker=worker,
                        attempts=TranscodeJob.attempts + 1,
                        progress=0.0,
                        speed=None,
                        fps=None,
                        error=None,
                        failure_kind=None,
                        log_tail=None,
                        started_at=now,
                        heartbeat_at=now,
                        finished_at=None,
                    )
                )
            )
            if claimed != 1:
                s.rollback()
                continue
            job = s.get(TranscodeJob, job_id)
            video = s.get(Video, job.video_id) if job else None
            if job is None or video is None:
                s.rollback()
                continue
            video.status, video.progress, video.error, video.updated_at = VideoStatus.processing, 0.0, None, now
            s.commit()
            return Claimed(job.id, video.id, video.source_key)
    return None


def heartbeat(engine: Engine, job_id: uuid.UUID) -> bool:
    """Marks the job alive; returns True when someone asked to cancel it."""
    with Session(engine) as s:
        s.execute(
            update(TranscodeJob)
            .where(col(TranscodeJob.id) == job_id, col(TranscodeJob.state) == JobState.running)
            .values(heartbeat_at=utcnow())
        )
        s.commit()
        job = s.get(TranscodeJob, job_id)
        return job is None or job.cancel_requested


def requeue(session: Session, job: TranscodeJob, *, keep_place: bool = False) -> None:
    """Back in line: a retry, a re-transcode, or a job whose worker died (which keeps its place)."""
    values: dict = {"state": JobState.queued, "cancel_requested": False, "worker": None, "progress": 0.0,
                    "speed": None, "fps": None, "heartbeat_at": None, "finished_at": None}  # fmt: skip
    if not keep_place:
        values.update(queued_at=utcnow(), error=None, failure_kind=None, log_tail=None, attempts=0)
    session.execute(update(TranscodeJob).where(col(TranscodeJob.id) == job.id).values(**values))
    session.execute(
        update(Video)
        .where(col(Video.id) == job.video_id)
        .values(status=VideoStatus.queued, progress=0.0, error=None, updated_at=utcnow())
    )


def cancel(session: Session, job: TranscodeJob) -> str:
    """A queued job is cancelled at once; a running one is asked to stop and its worker finishes it."""
    if job.state == JobState.queued:
        now = utcnow()
        session.execute(
            update(TranscodeJob)
            .where(col(TranscodeJob.id) == job.id, col(TranscodeJob.state) == JobState.queued)
            .values(state=JobState.cancelled, cancel_requested=True, finished_at=now)
        )
        session.execute(
            update(Video).where(col(Video.id) == job.video_id).values(status=VideoStatus.cancelled, updated_at=now)
        )
        return JobState.cancelled
    session.execute(update(TranscodeJob).where(col(TranscodeJob.id) == job.id).values(cancel_requested=True))
    return "cancelling"


def reap_stale(engine: Engine, now: datetime | None = None) -> list[uuid.UUID]:
    """Running jobs whose worker stopped beating: back to the queue, or failed after MAX_ATTEMPTS.

    Returns the re-queued job ids (the caller rings a doorbell for each)."""
    now = now or utcnow()
    cutoff = now - STALE_AFTER
    requeued: list[uuid.UUID] = []
    with Session(engine) as s:
        stale = (
            s.execute(
                select(col(TranscodeJob.id)).where(
                    col(TranscodeJob.state) == JobState.running, col(TranscodeJob.heartbeat_at) < cutoff
                )
            )
            .scalars()
            .all()
        )
        for job_id in stale:
            job = s.get(TranscodeJob, job_id)
            if job is None:
                continue
            # The UPDATEs below must not evaluate their WHERE on this loaded row in Python: SQLite gives back
            # naive datetimes, which cannot be compared with the aware cutoff (the round would fail every time).
            s.expunge(job)
            lost = (
                col(TranscodeJob.id) == job.id,
                col(TranscodeJob.state) == JobState.running,
                col(TranscodeJob.heartbeat_at) < cutoff,
            )
            if job.cancel_requested or job.attempts >= MAX_ATTEMPTS:
                reason = "cancelled" if job.cancel_requested else f"worker lost {job.attempts} times; giving up"
                state = JobState.cancelled if job.cancel_requested else JobState.failed
                kind = None if job.cancel_requested else FailureKind.worker_lost
                ended = {"state": state, "error": reason, "failure_kind": kind, "finished_at": now}
                done = affected(s.execute(update(TranscodeJob).where(*lost).values(**ended)))
                if done:
                    status = VideoStatus.cancelled if state == JobState.cancelled else VideoStatus.failed
                    s.execute(
                        update(Video)
                        .where(col(Video.id) == job.video_id)
                        .values(status=status, error=reason, updated_at=now)
                    )
            else:
                requeue = (
                    update(TranscodeJob).where(*lost).values(state=JobState.queued, worker=None, heartbeat_at=None)
                )
                if affected(s.execute(requeue)):
                    s.execute(
                        update(Video)
                        .where(col(Video.id) == job.video_id)
                        .values(status=VideoStatus.queued, progress=0.0, updated_at=now)
                    )
                    requeued.append(job.id)
            s.commit()
    return requeued

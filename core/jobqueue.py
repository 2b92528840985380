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
from enum import StrEnum

from sqlalchemy import DateTime, Engine, Uuid, bindparam, delete, func, select, text, update
from sqlmodel import Session, col

from core.db import affected
from core.transient import retry_delay
from core.webhook_outbox import emit_for_video
from schemas.tables import (
    FailureKind,
    JobPart,
    JobState,
    PartState,
    TranscodeJob,
    Video,
    VideoStatus,
    WebhookEventType,
    utcnow,
)

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
        WHERE state = 'queued' AND NOT cancel_requested AND (not_before IS NULL OR not_before <= :now)
    ) q
    LEFT JOIN (
        SELECT owner_id, count(*) AS recent FROM transcode_jobs
        WHERE state = 'running' OR started_at > :since
        GROUP BY owner_id
    ) r ON r.owner_id = q.owner_id
    ORDER BY q.priority DESC, q.owner_rank + coalesce(r.recent, 0), q.queued_at, q.id
    """
    )
    .bindparams(bindparam("since", type_=DateTime(timezone=True)), bindparam("now", type_=DateTime(timezone=True)))
    .columns(id=Uuid(), video_id=Uuid())
)


@dataclass(frozen=True)
class Claimed:
    job_id: uuid.UUID
    video_id: uuid.UUID
    source_key: str
    lease: uuid.UUID  # this attempt's identity: every write it makes is conditional on still holding it


class Beat(StrEnum):
    """What a heartbeat learned."""

    held = "held"  # the job is still this attempt's
    cancel = "cancel"  # an operator asked to stop it
    lost = "lost"  # the job was taken from this attempt (re-queued after a stall, or gone): stop, write nothing


def held_by(job: Claimed) -> tuple:
    """WHERE clauses true only while `job`'s attempt still holds it: the fence of every write it makes."""
    return (
        col(TranscodeJob.id) == job.job_id,
        col(TranscodeJob.state) == JobState.running,
        col(TranscodeJob.lease) == job.lease,
    )


def queue_order(session: Session) -> list[uuid.UUID]:
    """Queued job ids in the order workers will take them (position = index + 1)."""
    now = utcnow()
    rows = session.execute(_ORDERED_QUEUE, {"since": now - FAIR_SHARE_WINDOW, "now": now}).all()
    return [r.id for r in rows]


def claim_next(engine: Engine, worker: str) -> Claimed | None:
    """Take the best queued job. A conditional UPDATE makes two workers never take the same one."""
    with Session(engine) as s:
        for job_id in queue_order(s)[:20]:
            now = utcnow()
            lease = uuid.uuid4()
            claimed = affected(
                s.execute(
                    update(TranscodeJob)
                    .where(col(TranscodeJob.id) == job_id, col(TranscodeJob.state) == JobState.queued)
                    .where(col(TranscodeJob.cancel_requested).is_(False))
                    .values(
                        state=JobState.running,
                        worker=worker,
                        lease=lease,
                        not_before=None,
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
                        planned_at=None,  # a new generation: planned again by this attempt
                        plan=None,
                        plan_digest=None,
                        first_playable_at=None,
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
            return Claimed(job.id, video.id, video.source_key, lease)
    return None


def heartbeat(engine: Engine, job: Claimed) -> Beat:
    """Marks the attempt alive if it still holds the job, and says whether it should go on."""
    with Session(engine) as s:
        alive = affected(s.execute(update(TranscodeJob).where(*held_by(job)).values(heartbeat_at=utcnow())))
        s.commit()
        if not alive:
            return Beat.lost
        cancel = s.execute(select(col(TranscodeJob.cancel_requested)).where(col(TranscodeJob.id) == job.job_id))
        return Beat.cancel if cancel.scalar() else Beat.held


def retry_later(
    session: Session, job: Claimed, reason: str, kind: FailureKind, *, max_retries: int, base_seconds: float
) -> float | None:
    """A transient failure: back in the queue, keeping its place, after a delay that grows with each try
    (core.transient.retry_delay). Returns the delay, or None (nothing written) when the attempt no longer holds
    the job or `max_retries` are spent; the caller then fails it."""
    failures = session.execute(
        select(col(TranscodeJob.transient_failures)).where(*held_by(job)).with_for_update()
    ).scalar_one_or_none()
    if failures is None or failures >= max_retries:
        return None
    delay = retry_delay(failures + 1, base_seconds)
    now = utcnow()
    session.execute(
        update(TranscodeJob)
        .where(*held_by(job))
        .values(
            state=JobState.queued, worker=None, lease=None, heartbeat_at=None, progress=0.0, speed=None, fps=None,
            error=reason, failure_kind=kind, transient_failures=TranscodeJob.transient_failures + 1,
            attempts=TranscodeJob.attempts - 1,  # an outage is no lost worker: MAX_ATTEMPTS counts those
            not_before=now + timedelta(seconds=delay),
        )
    )  # fmt: skip
    session.execute(
        update(Video)
        .where(col(Video.id) == job.video_id)
        .values(status=VideoStatus.queued, progress=0.0, updated_at=now)
    )
    return delay


def requeue(session: Session, job: TranscodeJob, *, keep_place: bool = False) -> None:
    """Back in line: a retry, a re-transcode, or a job whose worker died (which keeps its place)."""
    values: dict = {"state": JobState.queued, "cancel_requested": False, "worker": None, "lease": None,
                    "progress": 0.0, "speed": None, "fps": None, "heartbeat_at": None, "finished_at": None,
                    "planned_at": None, "first_playable_at": None}  # fmt: skip
    # Its parts go with its generation: an attempt still running one finds it gone at its next beat and stops.
    session.execute(delete(JobPart).where(col(JobPart.job_id) == job.id))
    if not keep_place:
        values.update(
            queued_at=utcnow(),
            error=None,
            failure_kind=None,
            log_tail=None,
            attempts=0,
            transient_failures=0,
            not_before=None,
        )
    session.execute(update(TranscodeJob).where(col(TranscodeJob.id) == job.id).values(**values))
    session.execute(
        update(Video)
        .where(col(Video.id) == job.video_id)
        .values(status=VideoStatus.queued, progress=0.0, error=None, playable_seconds=None, updated_at=utcnow())
    )


def cancel(session: Session, job: TranscodeJob) -> str:
    """A queued job is cancelled at once; a running one is asked to stop and its worker finishes it (a planned
    job's running parts do; with none running, the supervisor: workers.supervision.end_cancelled)."""
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
                    col(TranscodeJob.state) == JobState.running,
                    col(TranscodeJob.planned_at).is_(None),  # a planned job's parts beat and are reaped (core.parts)
                    col(TranscodeJob.heartbeat_at) < cutoff,
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
                    if status == VideoStatus.failed:
                        emit_for_video(s, WebhookEventType.video_failed, job.video_id)
            else:
                requeue = (
                    update(TranscodeJob)
                    .where(*lost)
                    .values(state=JobState.queued, worker=None, lease=None, heartbeat_at=None)
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


def waiting(engine: Engine, now: datetime | None = None, ring_after: timedelta = timedelta(seconds=10)) -> int:
    """Queued jobs and parts that should have been taken by now: queued (or due after a retry delay) over
    `ring_after` ago. Their doorbell may have been lost with the broker, or rung while every worker was busy."""
    now = now or utcnow()
    due = func.coalesce(col(TranscodeJob.not_before), col(TranscodeJob.queued_at))
    with Session(engine) as s:
        query = select(func.count()).where(
            col(TranscodeJob.state) == JobState.queued,
            col(TranscodeJob.cancel_requested).is_(False),
            due <= now - ring_after,
        )
        parts = (
            select(func.count())
            .select_from(JobPart)
            .join(TranscodeJob, col(TranscodeJob.id) == col(JobPart.job_id))
            .where(
                col(JobPart.state) == PartState.queued,
                col(TranscodeJob.cancel_requested).is_(False),
                func.coalesce(col(JobPart.not_before), col(JobPart.queued_at)) <= now - ring_after,
            )
        )
        return s.execute(query).scalar_one() + s.execute(parts).scalar_one()


def cancelled_idle(engine: Engine) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(job id, generation) of planned jobs an operator cancelled that have no part running to notice it."""
    running = select(col(JobPart.job_id)).where(col(JobPart.state) == PartState.running)
    with Session(engine) as s:
        rows = s.execute(
            select(col(TranscodeJob.id), col(TranscodeJob.lease)).where(
                col(TranscodeJob.state) == JobState.running,
                col(TranscodeJob.cancel_requested).is_(True),
                col(TranscodeJob.planned_at).is_not(None),
                col(TranscodeJob.id).not_in(running),
            )
        ).all()
    return [(r[0], r[1]) for r in rows]


def live_attempts(engine: Engine) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(job or part id, lease) of every attempt that holds its work now: their scratch folders are in use."""
    with Session(engine) as s:
        rows = s.execute(
            select(col(TranscodeJob.id), col(TranscodeJob.lease)).where(
                col(TranscodeJob.state) == JobState.running, col(TranscodeJob.lease).is_not(None)
            )
        ).all()
        parts = s.execute(
            select(col(JobPart.id), col(JobPart.lease)).where(
                col(JobPart.state) == PartState.running, col(JobPart.lease).is_not(None)
            )
        ).all()
    return {(r[0], r[1]) for r in [*rows, *parts]}


def live_generations(engine: Engine) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(video id, generation) of every job being planned or encoded: their source copies are in use."""
    with Session(engine) as s:
        rows = s.execute(
            select(col(TranscodeJob.video_id), col(TranscodeJob.lease)).where(
                col(TranscodeJob.state).in_([JobState.running, JobState.succeeded]),
                col(TranscodeJob.lease).is_not(None),
                col(TranscodeJob.finished_at).is_(None) | (col(TranscodeJob.finished_at) > utcnow() - STALE_AFTER * 20),
            )
        ).all()
    return {(r[0], r[1]) for r in rows}

"""What operators see of the job queue: one consistent snapshot, built from the database alone."""

import logging
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.presenters import rendition_reads
from core.jobqueue import WORKER_ONLINE, queue_order
from core.timeutil import aware
from schemas.api import HourStats, JobRead, LadderRead, LoudnessRead, NoteRead, QueueSnapshot, WorkerRead
from schemas.tables import (
    FailureKind,
    JobNote,
    JobPart,
    JobState,
    NoteKind,
    PartState,
    Rendition,
    TranscodeJob,
    User,
    Video,
    WorkerNode,
    utcnow,
)

log = logging.getLogger(__name__)
Recorded = TypeVar("Recorded", LadderRead, LoudnessRead)

QUEUE_LIMIT = 200
FAILURES_LIMIT = 20
FINISHED_LIMIT = 10
HISTORY_HOURS = 24


def job_read(
    job: TranscodeJob,
    video: Video,
    owner: User,
    position: int | None = None,
    parts: list[JobPart] | None = None,
    extras: "JobExtras | None" = None,
) -> JobRead:
    parts = parts or []
    extras = extras or JobExtras()
    by_state: dict[str, int] = {}
    for part in parts:
        by_state[part.state] = by_state.get(part.state, 0) + 1
    part_workers = sorted({p.worker for p in parts if p.state == PartState.running and p.worker})
    first_playable = None
    if job.first_playable_at is not None:
        first_playable = round((aware(job.first_playable_at) - aware(job.queued_at)).total_seconds(), 3)
    eta = None
    if job.state == JobState.running and job.speed and video.duration:
        eta = max(0.0, (1.0 - job.progress) * video.duration / job.speed)
    return JobRead(
        id=job.id,
        video_id=video.id,
        video_title=video.title,
        owner_name=owner.display_name,
        state=job.state,
        cancel_requested=job.cancel_requested,
        priority=job.priority,
        position=position,
        attempts=job.attempts,
        progress=job.progress,
        speed=job.speed,
        fps=job.fps,
        eta_seconds=eta,
        duration=video.duration,
        worker=", ".join(part_workers) or job.worker,
        parts=by_state,
        first_playable_seconds=first_playable,
        error=job.error,
        failure_kind=FailureKind(job.failure_kind) if job.failure_kind else None,
        log_tail=job.log_tail,
        queued_at=aware(job.queued_at),
        started_at=aware(job.started_at),
        heartbeat_at=aware(job.heartbeat_at),
        finished_at=aware(job.finished_at),
        ladder=_recorded(LadderRead, (job.plan or {}).get("ladder"), job.id),
        loudness=_recorded(LoudnessRead, job.loudness, job.id),
        notes=[
            NoteRead(kind=NoteKind(n.kind), message=n.message, created_at=aware(n.created_at))
            for n in extras.notes.get(job.id, [])
        ],
        renditions=rendition_reads(video, extras.renditions.get(video.id, [])),
    )


def _recorded(model: type[Recorded], raw: object, job_id: uuid.UUID) -> Recorded | None:
    """A record a worker wrote on the job, as the API shows it; one it cannot read is left out (logged), never a
    500 for the whole queue."""
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError:
        log.warning("job %s: unreadable %s record", job_id, model.__name__, exc_info=True)
        return None


class JobExtras:
    """What a job page shows beyond the job row, loaded for many jobs in two queries: notes, renditions."""

    def __init__(self, session: Session | None = None, jobs: list[TranscodeJob] | None = None) -> None:
        self.notes: dict[uuid.UUID, list[JobNote]] = defaultdict(list)
        self.renditions: dict[uuid.UUID, list[Rendition]] = defaultdict(list)
        if session is None or not jobs:
            return
        notes = select(JobNote).where(col(JobNote.job_id).in_({j.id for j in jobs})).order_by(col(JobNote.id))
        for note in session.exec(notes):
            self.notes[note.job_id].append(note)
        for r in session.exec(select(Rendition).where(col(Rendition.video_id).in_({j.video_id for j in jobs}))):
            self.renditions[r.video_id].append(r)


def _with_videos(session: Session, jobs: list[TranscodeJob]) -> list[tuple[TranscodeJob, Video, User]]:
    if not jobs:
        return []
    videos = {v.id: v for v in session.exec(select(Video).where(col(Video.id).in_({j.video_id for j in jobs})))}
    users = {u.id: u for u in session.exec(select(User).where(col(User.id).in_({v.owner_id for v in videos.values()})))}
    return [(j, videos[j.video_id], users[videos[j.video_id].owner_id]) for j in jobs if j.video_id in videos]


def job_parts(session: Session, jobs: list[TranscodeJob]) -> dict[uuid.UUID, list[JobPart]]:
    """The parts of the jobs' current generations."""
    by_job: dict[uuid.UUID, list[JobPart]] = defaultdict(list)
    ids = [j.id for j in jobs if j.planned_at is not None]
    generation = {j.id: j.lease for j in jobs}
    for part in session.exec(select(JobPart).where(col(JobPart.job_id).in_(ids))) if ids else []:
        if part.generation == generation.get(part.job_id):
            by_job[part.job_id].append(part)
    return by_job


def _history(session: Session, now: datetime) -> list[HourStats]:
    since = now - timedelta(hours=HISTORY_HOURS)
    rows = session.exec(
        select(TranscodeJob.finished_at, TranscodeJob.encoded_seconds, TranscodeJob.started_at).where(
            TranscodeJob.state == JobState.succeeded, col(TranscodeJob.finished_at) >= since
        )
    ).all()
    buckets: dict[datetime, list[tuple[float, float]]] = defaultdict(list)
    for finished_at, encoded, started in rows:
        finished, started = aware(finished_at), aware(started)
        assert finished is not None  # selected by finished_at >= since
        hour = finished.replace(minute=0, second=0, microsecond=0)
        wall = (finished - started).total_seconds() if started else 0.0
        buckets[hour].append((encoded or 0.0, wall))
    first = (now - timedelta(hours=HISTORY_HOURS - 1)).replace(minute=0, second=0, microsecond=0)
    out = []
    for i in range(HISTORY_HOURS):
        hour = first + timedelta(hours=i)
        done = buckets.get(hour, [])
        encoded = sum(e for e, _ in done)
        wall = sum(w for _, w in done)
        out.append(HourStats(hour=hour, jobs=len(done), encoded_minutes=encoded / 60,
                             mean_speed=encoded / wall if wall > 0 else None))  # fmt: skip
    return out


def _jobs_of(node: WorkerNode, by_process: dict[str, uuid.UUID]) -> list[uuid.UUID]:
    """Jobs run by the node's own process or its pool processes (job.worker is host:pid)."""
    names = (f"{node.host}:{pid}" for pid in node.pids.split(","))
    return [by_process[name] for name in names if name in by_process]


def _latest(session: Session, state: JobState, limit: int) -> list[TranscodeJob]:
    """The jobs that ended in `state` most recently, newest first."""
    return list(
        session.exec(
            select(TranscodeJob)
            .where(col(TranscodeJob.state) == state)
            .order_by(col(TranscodeJob.finished_at).desc())
            .limit(limit)
        ).all()
    )


def snapshot(session: Session) -> QueueSnapshot:
    now = utcnow()
    counts = {state.value: 0 for state in JobState}
    for state, n in session.exec(select(TranscodeJob.state, func.count()).group_by(TranscodeJob.state)).all():
        counts[state] = n
    running = session.exec(
        select(TranscodeJob).where(col(TranscodeJob.state) == JobState.running).order_by(col(TranscodeJob.started_at))
    ).all()
    order = queue_order(session)[:QUEUE_LIMIT]
    queued = (
        {j.id: j for j in session.exec(select(TranscodeJob).where(col(TranscodeJob.id).in_(order)))} if order else {}
    )
    failures = _latest(session, JobState.failed, FAILURES_LIMIT)
    finished = _latest(session, JobState.succeeded, FINISHED_LIMIT)
    positions = {job_id: i + 1 for i, job_id in enumerate(order)}
    extras = JobExtras(session, [*running, *queued.values(), *failures, *finished])
    nodes = session.exec(
        select(WorkerNode).where(WorkerNode.last_seen >= now - WORKER_ONLINE).order_by(WorkerNode.name)
    ).all()
    parts = job_parts(session, list(running))
    by_process = {job.worker: job.id for job in running if job.worker}
    by_process.update(
        (p.worker, job_id) for job_id, ps in parts.items() for p in ps if p.state == PartState.running and p.worker
    )
    return QueueSnapshot(
        at=now,
        counts=counts,
        running=[
            job_read(*row, parts=parts.get(row[0].id), extras=extras) for row in _with_videos(session, list(running))
        ],
        queue=[
            job_read(*row, position=positions[row[0].id], extras=extras)
            for row in _with_videos(session, [queued[i] for i in order if i in queued])
        ],  # fmt: skip
        failures=[job_read(*row, extras=extras) for row in _with_videos(session, list(failures))],
        finished=[job_read(*row, extras=extras) for row in _with_videos(session, list(finished))],
        workers=[
            WorkerRead(
                name=n.name,
                host=n.host,
                pid=n.pid,
                started_at=aware(n.started_at),
                last_seen=aware(n.last_seen),
                load1=n.load1,
                cpus=n.cpus,
                running_jobs=_jobs_of(n, by_process),
            )  # fmt: skip
            for n in nodes
        ],
        history=_history(session, now),
    )

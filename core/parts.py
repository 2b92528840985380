"""The parts of a planned job in the database queue: any worker claims the next one, beats while it runs, and
the reaper gives a lost worker's part to another.

A job is claimed once to be planned (core.jobqueue); its planning attempt's lease becomes the job's
*generation* and every part carries it. Re-running, cancelling or failing the job ends its generation (the
parts are deleted or closed), so every write a part attempt makes, fenced by its own lease and that
generation, fails for an attempt that outlived its job: it stops and removes only its own files.

Celery still distributes the work: each part gets a doorbell, and a woken worker takes the most urgent
part in the database (the first range and the audio of the oldest job first), whichever rang.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, case, select, update
from sqlmodel import Session, col

from core.db import affected
from core.jobqueue import MAX_ATTEMPTS, STALE_AFTER, Beat
from core.timeutil import time_span
from schemas.tables import JobPart, JobState, PartKind, PartState, TranscodeJob, utcnow

LIVE_JOB = (JobState.running, JobState.succeeded)  # the storyboard and quality parts run after the video is ready
# Parts queued with `ready` (workers.parts.finish_if_complete): they never hold back or fail their video.
AFTER_READY = (PartKind.storyboard, PartKind.download, PartKind.quality)


@dataclass(frozen=True)
class Generation:
    """One planning of a job: its parts and their folder."""

    job_id: uuid.UUID
    video_id: uuid.UUID
    generation: uuid.UUID


@dataclass(frozen=True)
class ClaimedPart:
    part_id: uuid.UUID
    job_id: uuid.UUID
    video_id: uuid.UUID
    generation: uuid.UUID
    kind: PartKind
    index: int
    start: float
    end: float | None
    first_segment: int
    segment_seconds: int
    source_key: str
    lease: uuid.UUID  # this attempt's identity


def part_held(part: ClaimedPart) -> tuple:
    """WHERE clauses true only while this attempt still holds its part."""
    return (
        col(JobPart.id) == part.part_id,
        col(JobPart.state) == PartState.running,
        col(JobPart.lease) == part.lease,
    )


def generation_live(part: "ClaimedPart | Generation") -> tuple:
    """WHERE clauses on transcode_jobs true while the part's job is still the generation it was planned in."""
    return (
        col(TranscodeJob.id) == part.job_id,
        col(TranscodeJob.lease) == part.generation,
        col(TranscodeJob.state).in_(LIVE_JOB),
    )


def _urgency():
    """The first range and the audio make a video playable: they go before every other part."""
    first = (col(JobPart.kind) == PartKind.video) & (col(JobPart.index) == 0)
    return case((first, 0), (col(JobPart.kind) == PartKind.audio, 1), (col(JobPart.kind) == PartKind.video, 2), else_=3)


def _after_ready():
    """Parts of videos already ready go after every encode: the storyboard and the downloads (a remux: seconds),
    then the VMAF measurement (the costliest, and what viewers miss least)."""
    return case(
        (col(JobPart.kind) == PartKind.storyboard, 1),
        (col(JobPart.kind) == PartKind.download, 1),
        (col(JobPart.kind) == PartKind.quality, 2),
        else_=0,
    )


def claim_part(engine: Engine, worker: str) -> ClaimedPart | None:
    """Take the most urgent queued part of a live job; a conditional UPDATE makes two workers never share one."""
    from schemas.tables import Video  # noqa: PLC0415 (kept local: only the source key is needed)

    with Session(engine) as s:
        candidates = s.execute(
            select(col(JobPart.id))
            .join(TranscodeJob, col(TranscodeJob.id) == col(JobPart.job_id))
            .where(
                col(JobPart.state) == PartState.queued,
                col(JobPart.not_before).is_(None) | (col(JobPart.not_before) <= utcnow()),
                # a job waiting out an outage one of its parts met (workers.parts): none of its parts runs meanwhile
                col(TranscodeJob.not_before).is_(None) | (col(TranscodeJob.not_before) <= utcnow()),
                col(TranscodeJob.state).in_(LIVE_JOB),
                col(TranscodeJob.lease) == col(JobPart.generation),
                col(TranscodeJob.cancel_requested).is_(False),
            )
            .order_by(
                col(TranscodeJob.priority).desc(),
                _after_ready(),
                col(TranscodeJob.queued_at),
                _urgency(),
                col(JobPart.index),
            )
            .limit(20)
        ).scalars()
        for part_id in list(candidates):
            now = utcnow()
            lease = uuid.uuid4()
            taken = affected(
                s.execute(
                    update(JobPart)
                    .where(col(JobPart.id) == part_id, col(JobPart.state) == PartState.queued)
                    .values(
                        state=PartState.running, lease=lease, worker=worker, attempts=JobPart.attempts + 1,
                        not_before=None,
                        progress=0.0, segments=None, codecs=None, init_digests=None, error=None,
                        failure_kind=None, log_tail=None, started_at=now, heartbeat_at=now, finished_at=None,
                    )
                )
            )  # fmt: skip
            if taken != 1:
                s.rollback()
                continue
            part = s.get(JobPart, part_id)
            video = s.get(Video, part.video_id) if part else None
            if part is None or video is None:
                s.rollback()
                continue
            s.commit()
            return ClaimedPart(
                part.id, part.job_id, part.video_id, part.generation, PartKind(part.kind), part.index,
                part.start_seconds, part.end_seconds, part.first_segment, part.segment_seconds,
                video.source_key, lease,
            )  # fmt: skip
    return None


def part_heartbeat(engine: Engine, part: ClaimedPart) -> Beat:
    """Marks the attempt alive while it holds its part, and says whether the job was cancelled."""
    with Session(engine) as s:
        alive = affected(s.execute(update(JobPart).where(*part_held(part)).values(heartbeat_at=utcnow())))
        s.commit()
        if not alive:
            return Beat.lost
        job = s.execute(select(col(TranscodeJob.cancel_requested)).where(*generation_live(part))).first()
        if job is None:
            return Beat.lost
        return Beat.cancel if job[0] else Beat.held


@dataclass(frozen=True)
class LostPart:
    part_id: uuid.UUID
    job_id: uuid.UUID
    generation: uuid.UUID
    attempts: int
    label: str  # what it was encoding, for the reason a video fails with
    kind: PartKind = PartKind.video

    @property
    def after_ready(self) -> bool:
        """A part of a video already ready (storyboard, quality): losing it must never fail the video."""
        return self.kind in AFTER_READY


def stale_parts(engine: Engine, now: datetime | None = None) -> list[LostPart]:
    """Running parts whose worker stopped beating (killed, machine gone, frozen)."""
    cutoff = (now or utcnow()) - STALE_AFTER
    with Session(engine) as s:
        rows = s.execute(
            select(JobPart).where(col(JobPart.state) == PartState.running, col(JobPart.heartbeat_at) < cutoff)
        ).scalars()
        return [LostPart(p.id, p.job_id, p.generation, p.attempts, describe(p), PartKind(p.kind)) for p in rows]


def requeue_part(engine: Engine, lost: LostPart, now: datetime | None = None) -> bool:
    """A lost worker's part back in the queue (it keeps its place: ordering is by job and range)."""
    return _end_stale(engine, lost, now, state=PartState.queued, lease=None, worker=None, heartbeat_at=None,
                      progress=0.0)  # fmt: skip


def give_up_part(engine: Engine, lost: LostPart, now: datetime | None = None) -> bool:
    """A part of a ready video lost too often: failed, so nothing waits on it (the video stays as it is)."""
    return _end_stale(engine, lost, now, state=PartState.failed, lease=None, worker=None, heartbeat_at=None,
                      finished_at=utcnow(), error=f"its worker was lost {lost.attempts} times")  # fmt: skip


def _end_stale(engine: Engine, lost: LostPart, now: datetime | None, **values: object) -> bool:
    cutoff = (now or utcnow()) - STALE_AFTER
    with Session(engine) as s:
        done = affected(
            s.execute(
                update(JobPart)
                .where(
                    col(JobPart.id) == lost.part_id,
                    col(JobPart.state) == PartState.running,
                    col(JobPart.heartbeat_at) < cutoff,
                )
                .values(**values)
            )
        )
        s.commit()
        return bool(done)


def lost_too_often(lost: LostPart) -> bool:
    return lost.attempts >= MAX_ATTEMPTS


def describe(part: JobPart) -> str:
    if part.kind == PartKind.video:
        return f"the range {time_span(part.start_seconds, part.end_seconds)}"
    return f"the {part.kind}"


def parts_of(session: Session, job_id: uuid.UUID, generation: uuid.UUID) -> list[JobPart]:
    return list(
        session.execute(
            select(JobPart).where(col(JobPart.job_id) == job_id, col(JobPart.generation) == generation)
        ).scalars()
    )


def complete_unfinished(engine: Engine) -> list[Generation]:
    """Planned jobs still running whose every video and audio part has succeeded: the part that completed the
    set could not finish the video (a database blip right after its record). The supervisor finishes them."""
    open_parts = select(col(JobPart.job_id)).where(
        col(JobPart.kind).not_in(AFTER_READY), col(JobPart.state) != PartState.succeeded
    )
    with Session(engine) as s:
        rows = s.execute(
            select(col(TranscodeJob.id), col(TranscodeJob.video_id), col(TranscodeJob.lease)).where(
                col(TranscodeJob.state) == JobState.running,
                col(TranscodeJob.planned_at).is_not(None),
                col(TranscodeJob.planned_at) < utcnow() - STALE_AFTER,
                col(TranscodeJob.id).not_in(open_parts),
            )
        ).all()
    return [Generation(r[0], r[1], r[2]) for r in rows if r[2] is not None]

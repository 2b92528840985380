"""The queue of imports from a URL, in the database like the transcode jobs' (core.jobqueue), with the same rules.

A worker claims a queued import with a conditional UPDATE and a fresh lease; every write the attempt makes is
fenced by that lease (`held_by`), so one that froze while its import was handed to another worker can record
nothing. Heartbeats say the attempt is alive; the supervisor's reaper (workers.supervision) re-queues an import
whose worker stopped beating, or fails it after MAX_ATTEMPTS. A doorbell lost with the broker costs nothing: the
supervisor rings for imports left waiting, as for jobs. Nothing here downloads (workers.imports does).
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, or_, select, update
from sqlmodel import Session, col

from core.db import affected
from core.jobqueue import MAX_ATTEMPTS, STALE_AFTER, Beat
from core.transient import retry_delay
from schemas.tables import FailureKind, ImportState, TranscodeJob, Video, VideoImport, VideoStatus, utcnow

CLAIM_BATCH = 20


@dataclass(frozen=True)
class ClaimedImport:
    import_id: uuid.UUID
    video_id: uuid.UUID
    owner_id: uuid.UUID
    url: str
    lease: uuid.UUID  # this attempt's identity: every write it makes is conditional on still holding it


def held_by(claimed: ClaimedImport) -> tuple:
    """WHERE clauses true only while `claimed`'s attempt still holds its import."""
    return (
        col(VideoImport.id) == claimed.import_id,
        col(VideoImport.state) == ImportState.running,
        col(VideoImport.lease) == claimed.lease,
    )


def _due(now: datetime) -> tuple:
    return (
        col(VideoImport.state) == ImportState.queued,
        or_(col(VideoImport.not_before).is_(None), col(VideoImport.not_before) <= now),
    )


def claim_import(engine: Engine, worker: str) -> ClaimedImport | None:
    """Take the oldest queued import that is due. A conditional UPDATE makes two workers never take the same one."""
    with Session(engine) as s:
        now = utcnow()
        ids = s.execute(
            select(col(VideoImport.id)).where(*_due(now)).order_by(col(VideoImport.queued_at)).limit(CLAIM_BATCH)
        ).scalars()
        for import_id in list(ids):
            lease = uuid.uuid4()
            taken = affected(
                s.execute(
                    update(VideoImport)
                    .where(col(VideoImport.id) == import_id, col(VideoImport.state) == ImportState.queued)
                    .values(
                        state=ImportState.running, lease=lease, worker=worker, attempts=VideoImport.attempts + 1,
                        not_before=None, bytes_received=0, bytes_total=None, error=None, failure_kind=None,
                        started_at=now, heartbeat_at=now, finished_at=None,
                    )
                )
            )  # fmt: skip
            if taken != 1:
                s.rollback()
                continue
            row = s.get(VideoImport, import_id)
            if row is None:
                s.rollback()
                continue
            s.commit()
            return ClaimedImport(row.id, row.video_id, row.owner_id, row.url, lease)
    return None


def import_heartbeat(engine: Engine, claimed: ClaimedImport, received: int, total: int | None) -> Beat:
    """Marks the attempt alive with how much it has received; `lost` when the import was taken from it (re-queued
    after a stall) or is gone (its video deleted)."""
    with Session(engine) as s:
        alive = affected(
            s.execute(
                update(VideoImport)
                .where(*held_by(claimed))
                .values(heartbeat_at=utcnow(), bytes_received=received, bytes_total=total)
            )
        )
        if alive and total:
            s.execute(
                update(Video)
                .where(col(Video.id) == claimed.video_id, col(Video.status) == VideoStatus.importing)
                .values(progress=min(received / total, 1.0))
            )
        s.commit()
    return Beat.held if alive else Beat.lost


def record_imported(
    engine: Engine, claimed: ClaimedImport, key: str, source: Mapping[str, object], received: int
) -> uuid.UUID | None:
    """The fetched source on its video and the video's transcode job queued, in one transaction, if this attempt
    still holds the import (None otherwise: nothing written). From here the video goes on as an upload would."""
    now = utcnow()
    with Session(engine) as s:
        done = affected(
            s.execute(
                update(VideoImport)
                .where(*held_by(claimed))
                .values(state=ImportState.succeeded, finished_at=now, heartbeat_at=now, bytes_received=received)
            )
        )
        if not done:
            s.rollback()
            return None
        s.execute(
            update(Video)
            .where(col(Video.id) == claimed.video_id)
            .values(source_key=key, status=VideoStatus.queued, progress=0.0, error=None, updated_at=now, **source)
        )
        job = TranscodeJob(video_id=claimed.video_id, owner_id=claimed.owner_id)
        s.add(job)
        s.commit()
        return job.id


def fail_import(engine: Engine, claimed: ClaimedImport, kind: FailureKind, message: str) -> bool:
    """The import failed for good (with its kind), and its video with it, if this attempt still holds it."""
    with Session(engine) as s:
        failed = _end(s, held_by(claimed), claimed.video_id, kind, message, utcnow())
        s.commit()
    return failed


def _end(s: Session, where: tuple, video_id: uuid.UUID, kind: FailureKind, message: str, now: datetime) -> bool:
    values = {"state": ImportState.failed, "error": message, "failure_kind": kind, "finished_at": now}
    if not affected(s.execute(update(VideoImport).where(*where).values(**values))):
        return False
    s.execute(
        update(Video)
        .where(col(Video.id) == video_id)
        .values(status=VideoStatus.failed, error=message, progress=0.0, updated_at=now)
    )
    return True


def retry_import_later(
    engine: Engine, claimed: ClaimedImport, kind: FailureKind, message: str, *, max_retries: int, base_seconds: float
) -> float | None:
    """A transient failure (storage, database, disk): back in the queue after a growing delay, as a job would be
    (core.jobqueue.retry_later). None, with nothing written, when the retries are spent or the attempt lost it."""
    with Session(engine) as s:
        failures = s.execute(select(col(VideoImport.transient_failures)).where(*held_by(claimed))).scalar_one_or_none()
        if failures is None or failures >= max_retries:
            return None
        delay = retry_delay(failures + 1, base_seconds)
        requeued = affected(
            s.execute(
                update(VideoImport)
                .where(*held_by(claimed))
                .values(
                    state=ImportState.queued, lease=None, worker=None, heartbeat_at=None, error=message,
                    failure_kind=kind, transient_failures=VideoImport.transient_failures + 1,
                    attempts=VideoImport.attempts - 1,  # an outage is no lost worker: MAX_ATTEMPTS counts those
                    not_before=utcnow() + timedelta(seconds=delay),
                )
            )
        )  # fmt: skip
        s.commit()
    return delay if requeued else None


@dataclass(frozen=True)
class Reaped:
    requeued: list[uuid.UUID]  # imports back in the queue: ring for each
    failed: list[uuid.UUID]  # videos whose import failed for good: their source copies can go


def reap_stale_imports(engine: Engine, now: datetime | None = None) -> Reaped:
    """Running imports whose worker stopped beating: back in the queue, or failed (worker_lost) after
    MAX_ATTEMPTS."""
    now = now or utcnow()
    cutoff = now - STALE_AFTER
    requeued: list[uuid.UUID] = []
    failed: list[uuid.UUID] = []
    with Session(engine) as s:
        rows = s.execute(
            select(col(VideoImport.id), col(VideoImport.video_id), col(VideoImport.attempts)).where(
                col(VideoImport.state) == ImportState.running, col(VideoImport.heartbeat_at) < cutoff
            )
        ).all()
        for import_id, video_id, attempts in rows:
            lost = (
                col(VideoImport.id) == import_id,
                col(VideoImport.state) == ImportState.running,
                col(VideoImport.heartbeat_at) < cutoff,
            )
            if attempts >= MAX_ATTEMPTS:
                message = f"the import's worker was lost {attempts} times; giving up"
                if _end(s, lost, video_id, FailureKind.worker_lost, message, now):
                    failed.append(video_id)
            else:
                again = update(VideoImport).where(*lost).values(state=ImportState.queued, lease=None, worker=None)
                if affected(s.execute(again)):
                    requeued.append(import_id)
            s.commit()
    return Reaped(requeued, failed)


def imports_waiting(engine: Engine, ring_after: timedelta, now: datetime | None = None) -> int:
    """Queued imports due over `ring_after` ago: their doorbell may have been lost with the broker."""
    now = now or utcnow()
    due = func.coalesce(col(VideoImport.not_before), col(VideoImport.queued_at))
    with Session(engine) as s:
        query = select(func.count()).where(col(VideoImport.state) == ImportState.queued, due <= now - ring_after)
        return s.execute(query).scalar_one()


def queued_imports(engine: Engine) -> int:
    with Session(engine) as s:
        query = select(func.count()).where(col(VideoImport.state) == ImportState.queued)
        return s.execute(query).scalar_one()


def live_import_attempts(engine: Engine) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(import id, lease) of every attempt holding its import now: their download files are in use."""
    with Session(engine) as s:
        rows = s.execute(
            select(col(VideoImport.id), col(VideoImport.lease)).where(
                col(VideoImport.state) == ImportState.running, col(VideoImport.lease).is_not(None)
            )
        ).all()
    return {(r[0], r[1]) for r in rows}


def open_imports(session: Session, owner_id: uuid.UUID) -> int:
    """The creator's imports not finished yet (the per-creator cap, settings.import_max_open)."""
    query = select(func.count()).where(
        col(VideoImport.owner_id) == owner_id,
        col(VideoImport.state).in_([ImportState.queued, ImportState.running]),
    )
    return session.execute(query).scalar_one()

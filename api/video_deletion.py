"""Deleting a video's rows while a worker may still be writing for it, without a deadlock reaching the owner.

A worker records a part by updating its part row first, then its job or the video (workers.parts). A plain
`DELETE FROM videos` locks the video first and its cascade then waits for the part row the worker holds, while the
worker waits for the video: PostgreSQL aborts one of the two after deadlock_timeout. Seen in CI: a video deleted
just as its storyboard was being recorded answered 503. So the deletion takes its locks in that order (parts,
jobs, the video). Some worker transactions lock a job or the video before parts (an encode failed or cancelled,
a re-plan, `ready` queueing downloads); a deletion PostgreSQL aborts as the victim of one of those is run again,
as PostgreSQL's manual advises for deadlock and serialization failures. SQLAlchemy has no retry of its own.
"""

import logging
import random
import time
import uuid

from psycopg.errors import DeadlockDetected, SerializationFailure
from sqlalchemy import delete
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from api.webhook_events import emit_deleted
from schemas.tables import JobPart, TranscodeJob, Video

log = logging.getLogger(__name__)
ATTEMPTS = 3
BACKOFF_SECONDS = 0.2  # before the second attempt; twice that before the third (with jitter)


def delete_video_rows(session: Session, video: Video) -> int:
    """The video's rows (and through the cascade everything under it) and its `video.deleted` event, in one
    committed transaction. Returns the number of webhook events queued. The event says what the video was once
    locked (say, failed by the encode that held the lock); a video another request deleted meanwhile is gone
    already and queues no second event."""
    video_id = video.id
    for attempt in range(1, ATTEMPTS + 1):
        try:
            locked = _lock_in_workers_order(session, video_id)
            if locked is None:
                session.rollback()
                return 0
            queued = emit_deleted(session, locked)  # committed with the deletion (the outbox)
            session.execute(delete(Video).where(col(Video.id) == video_id))
            session.commit()
            return queued
        except DBAPIError as exc:
            session.rollback()
            if not isinstance(exc.orig, DeadlockDetected | SerializationFailure) or attempt == ATTEMPTS:
                raise
            log.warning("video %s: deletion aborted by the database (%s); running it again", video_id, exc.orig)
            # Let the transaction that won finish first: run again at once, the deletion can take one of the rows
            # that transaction still has to lock and deadlock with it a second time (seen in CI).
            time.sleep(random.uniform(1, 2) * BACKOFF_SECONDS * attempt)
    raise AssertionError("unreachable")


def _lock_in_workers_order(session: Session, video_id: uuid.UUID) -> Video | None:
    """The row locks of the video's parts, jobs and the video itself, in the order a worker recording a part
    takes them (SQLite locks the whole database instead). Returns the video as it is now, None when it is gone."""
    session.execute(
        select(col(JobPart.id)).where(col(JobPart.video_id) == video_id).order_by(col(JobPart.id)).with_for_update()
    )
    session.execute(
        select(col(TranscodeJob.id))
        .where(col(TranscodeJob.video_id) == video_id)
        .order_by(col(TranscodeJob.id))
        .with_for_update()
    )
    return session.get(Video, video_id, with_for_update=True, populate_existing=True)

"""Operators watch and steer the job queue: a live snapshot, and retry / cancel / re-transcode / priority."""

import asyncio
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse
from sqlalchemy import update
from sqlmodel import Session, col, select

from api.deps import EnqueueDep, OperatorDep, SessionDep, get_current_user
from api.errors import Responses
from api.queue_view import JobExtras, job_parts, job_read, snapshot
from core import jobqueue as queue
from schemas.api import JobRead, PriorityUpdate, Problem, QueueSnapshot
from schemas.tables import JobState, TranscodeJob, User, Video

REFUSED: Responses = {401: {"model": Problem}, 403: {"model": Problem}}
router = APIRouter(prefix="/api/v1/ops", tags=["operators"], responses=REFUSED)
EVENT_INTERVAL = 1.0
FINAL = (JobState.succeeded, JobState.failed, JobState.cancelled)


def _job(session: Session, job_id: uuid.UUID) -> TranscodeJob:
    job = session.get(TranscodeJob, job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return job


def _read(session: Session, job_id: uuid.UUID) -> JobRead:
    session.expire_all()
    job = _job(session, job_id)
    video = session.get(Video, job.video_id)
    owner = session.get(User, video.owner_id) if video else None
    if video is None or owner is None:  # a job's video (and its owner) go with it: deleted meanwhile
        raise HTTPException(404, f"job {job_id} not found")
    position = queue.queue_order(session).index(job.id) + 1 if job.state == JobState.queued else None
    parts = job_parts(session, [job]).get(job.id)
    return job_read(job, video, owner, position, parts=parts, extras=JobExtras(session, [job]))


@router.get("/snapshot", response_model=QueueSnapshot)
def get_snapshot(_op: OperatorDep, session: SessionDep) -> QueueSnapshot:
    return snapshot(session)


def _still_operator(request: Request, session: Session) -> bool:
    """The stream's credentials, checked again: a signed-out or demoted operator stops getting snapshots."""
    try:
        user = get_current_user(request, session)
    except HTTPException:
        return False
    return user is not None and user.is_operator


@router.get("/events", response_class=EventSourceResponse)
async def events(_op: OperatorDep, request: Request, session: SessionDep) -> AsyncIterator[QueueSnapshot]:
    """The snapshot, pushed every second while the dashboard is open (and its viewer still an operator:
    the stream ends otherwise, and the browser's reconnect gets the refusal)."""
    # The request's session authenticated the operator; each tick uses a short one of its own, so an open
    # dashboard holds no pooled connection (15 of them would otherwise take the whole pool).
    await run_in_threadpool(session.close)

    def take() -> QueueSnapshot | None:
        with Session(request.app.state.engine) as session:
            return snapshot(session) if _still_operator(request, session) else None

    while not await request.is_disconnected():
        snap = await run_in_threadpool(take)
        if snap is None:
            return
        yield snap
        await asyncio.sleep(EVENT_INTERVAL)


@router.get("/jobs/{job_id}", response_model=JobRead)
def get_job(job_id: uuid.UUID, _op: OperatorDep, session: SessionDep) -> JobRead:
    return _read(session, job_id)


@router.post("/jobs/{job_id}/cancel", response_model=JobRead, responses={409: {"model": Problem}})
def cancel_job(job_id: uuid.UUID, _op: OperatorDep, session: SessionDep) -> JobRead:
    """A queued job stops at once; a running one within seconds (its worker kills ffmpeg and cleans up)."""
    job = _job(session, job_id)
    if job.state in FINAL:
        raise HTTPException(409, f"job already {job.state}")
    queue.cancel(session, job)
    session.commit()
    return _read(session, job_id)


@router.post("/jobs/{job_id}/retry", response_model=JobRead, responses={409: {"model": Problem}})
def retry_job(job_id: uuid.UUID, _op: OperatorDep, session: SessionDep, ring: EnqueueDep) -> JobRead:
    job = _job(session, job_id)
    if job.state not in (JobState.failed, JobState.cancelled):
        raise HTTPException(409, f"only a failed or cancelled job can be retried; this one is {job.state}")
    return _requeue(session, job, ring)


@router.post("/videos/{video_id}/retranscode", response_model=JobRead, responses={409: {"model": Problem}})
def retranscode(video_id: uuid.UUID, _op: OperatorDep, session: SessionDep, ring: EnqueueDep) -> JobRead:
    """Encode a video again (new ladder settings, a fixed bug): its current output stays until the new one is up."""
    job = session.exec(select(TranscodeJob).where(TranscodeJob.video_id == video_id)).first()
    if job is None:
        raise HTTPException(404, f"video {video_id} not found")
    if job.state not in FINAL:
        raise HTTPException(409, f"the video's job is {job.state}; cancel it first")
    return _requeue(session, job, ring)


def _requeue(session: Session, job: TranscodeJob, ring) -> JobRead:
    queue.requeue(session, job)
    session.commit()
    ring(job.id)
    return _read(session, job.id)


@router.post("/jobs/{job_id}/priority", response_model=JobRead, responses={409: {"model": Problem}})
def set_priority(job_id: uuid.UUID, body: PriorityUpdate, _op: OperatorDep, session: SessionDep) -> JobRead:
    job = _job(session, job_id)
    if job.state != JobState.queued:
        raise HTTPException(409, f"only a queued job can be moved; this one is {job.state}")
    session.execute(update(TranscodeJob).where(col(TranscodeJob.id) == job_id).values(priority=body.priority))
    session.commit()
    return _read(session, job_id)

"""Video resources: upload, list, read, delete."""

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from sqlalchemy import delete, func
from sqlmodel import select

from api.deps import EnqueueDep, SessionDep, SettingsDep, StoresDep, VideoDep
from api.presenters import video_read
from ingest.intake import accept_upload
from schemas.api import Problem, VideoPage, VideoRead
from schemas.tables import Rendition, Video

router = APIRouter(prefix="/api/v1/videos", tags=["videos"])
REFUSALS = {413: {"model": Problem}, 415: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}}


@router.post("", status_code=202, response_model=VideoRead, responses=REFUSALS)
def upload_video(
    file: Annotated[UploadFile, File(description="the source video or audio file")],
    session: SessionDep,
    stores: StoresDep,
    settings: SettingsDep,
    enqueue: EnqueueDep,
    title: Annotated[str | None, Form(max_length=200)] = None,
) -> VideoRead:
    video = accept_upload(
        file.file, file.filename, title, session=session, stores=stores, settings=settings, enqueue=enqueue
    )
    return video_read(video, [])


@router.get("", response_model=VideoPage)
def list_videos(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> VideoPage:
    query = select(Video)
    count = select(func.count()).select_from(Video)
    if status:
        query, count = query.where(Video.status == status), count.where(Video.status == status)
    videos = session.exec(query.order_by(Video.created_at.desc()).offset(offset).limit(limit)).all()
    ids = [v.id for v in videos]
    renditions: dict = {}
    if ids:
        for r in session.exec(select(Rendition).where(Rendition.video_id.in_(ids))):
            renditions.setdefault(r.video_id, []).append(r)
    total = session.exec(count).one()
    return VideoPage(
        items=[video_read(v, renditions.get(v.id, [])) for v in videos], total=total, limit=limit, offset=offset
    )


@router.get("/{video_id}", response_model=VideoRead, responses={404: {"model": Problem}})
def get_video(video: VideoDep, session: SessionDep) -> VideoRead:
    renditions = session.exec(select(Rendition).where(Rendition.video_id == video.id)).all()
    return video_read(video, list(renditions))


@router.delete("/{video_id}", status_code=204, responses={404: {"model": Problem}})
def delete_video(video: VideoDep, session: SessionDep, stores: StoresDep) -> None:
    # Blobs first: if storage fails the row stays, so the delete can be retried and nothing is orphaned.
    try:
        stores.media.delete_prefix(f"{video.id}/")
        stores.sources.delete_prefix(f"{video.id}/")
    except Exception as exc:
        raise HTTPException(503, f"storage unavailable, video not deleted: {exc}") from exc
    session.execute(delete(Video).where(Video.id == video.id))
    session.commit()

"""Video resources: upload, the public index, the creator's library, read, edit, delete."""

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.access import Signer
from api.deps import (
    EnqueueDep,
    MaybeUserDep,
    OwnedVideoDep,
    PlaybackToken,
    SessionDep,
    SettingsDep,
    SignerDep,
    StoresDep,
    UserDep,
    VideoDep,
    WebhookBellDep,
)
from api.downloads import change_downloads
from api.errors import Responses
from api.presenters import video_read
from api.video_deletion import delete_video_rows
from api.webhook_events import report_refused_upload
from core.errors import Refused
from core.media_keys import media_prefix
from core.titles import checked_title
from ingest.intake import accept_upload
from schemas.api import Problem, VideoPage, VideoRead, VideoUpdate, VisibilityName
from schemas.tables import Download, Rendition, User, Video, VideoStatus, Visibility, utcnow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/videos", tags=["videos"])
library = APIRouter(prefix="/api/v1/me", tags=["library"])
REFUSALS: Responses = {
    401: {"model": Problem},
    413: {"model": Problem},
    415: {"model": Problem},
    422: {"model": Problem},
    503: {"model": Problem},
}
NOT_FOUND: Responses = {404: {"model": Problem}}
Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]  # databases take 64-bit offsets; larger was a 500
Search = Annotated[str | None, Query(max_length=200, description="words the title contains")]


@router.post("", status_code=202, response_model=VideoRead, responses=REFUSALS)
def upload_video(
    file: Annotated[UploadFile, File(description="the source video or audio file")],
    user: UserDep,
    session: SessionDep,
    stores: StoresDep,
    settings: SettingsDep,
    enqueue: EnqueueDep,
    signer: SignerDep,
    bell: WebhookBellDep,
    title: Annotated[str | None, Form(max_length=200)] = None,
    description: Annotated[str, Form(max_length=5000)] = "",
    visibility: Annotated[VisibilityName, Form()] = "public",
) -> VideoRead:
    # Authenticated: the pooled connection goes back while the source is copied, probed and stored (minutes for a
    # big file); the ingest checks one out again to record the video.
    session.close()
    try:
        video = accept_upload(
            file.file,
            file.filename,
            title,
            owner_id=user.id,
            description=description,
            visibility=visibility,
            session=session,
            stores=stores,
            settings=settings,
            enqueue=enqueue,
        )
    except Refused as exc:
        report_refused_upload(session, bell, user.id, exc, filename=file.filename, title=title)
        raise
    return video_read(video, [], owner=user, viewer=user, playback=signer.for_owner(video))


def _page(
    session: Session, signer: Signer, where: list, viewer: User | None, q: str | None, limit: int, offset: int
) -> VideoPage:
    if q:
        where = [*where, *(func.lower(Video.title).contains(word.lower()) for word in q.split()[:8])]
    videos = list(
        session.exec(select(Video).where(*where).order_by(col(Video.created_at).desc()).offset(offset).limit(limit))
    )
    total = session.exec(select(func.count()).select_from(Video).where(*where)).one()
    ids = [v.id for v in videos]
    renditions: dict[uuid.UUID, list[Rendition]] = {}
    downloads: dict[uuid.UUID, list[Download]] = {}
    owners: dict[uuid.UUID, User] = {}
    if ids:
        for r in session.exec(select(Rendition).where(col(Rendition.video_id).in_(ids))):
            renditions.setdefault(r.video_id, []).append(r)
        for d in session.exec(select(Download).where(col(Download.video_id).in_(ids))):
            downloads.setdefault(d.video_id, []).append(d)
        owner_ids = {v.owner_id for v in videos}
        owners = {u.id: u for u in session.exec(select(User).where(col(User.id).in_(owner_ids)))}
    items = [
        _read_one(v, renditions.get(v.id, []), owners[v.owner_id], viewer, signer, None, downloads.get(v.id, []))
        for v in videos
    ]
    return VideoPage(items=items, total=total, limit=limit, offset=offset)


@router.get("", response_model=VideoPage)
def public_index(
    session: SessionDep,
    signer: SignerDep,
    viewer: MaybeUserDep,
    limit: Limit = 20,
    offset: Offset = 0,
    q: Search = None,
) -> VideoPage:
    """Public, playable videos of every creator, newest first."""
    where = [Video.visibility == Visibility.public, Video.status == VideoStatus.ready]
    return _page(session, signer, where, viewer, q, limit, offset)


@library.get("/videos", response_model=VideoPage)
def my_videos(
    session: SessionDep,
    signer: SignerDep,
    user: UserDep,
    limit: Limit = 20,
    offset: Offset = 0,
    q: Search = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> VideoPage:
    """The caller's own videos in every state and visibility, newest first."""
    where = [Video.owner_id == user.id]
    if status:
        where.append(Video.status == status)
    return _page(session, signer, where, user, q, limit, offset)


def _read_one(
    video: Video,
    renditions: list[Rendition],
    owner: User,
    viewer: User | None,
    signer: Signer,
    token: str | None,
    downloads: list[Download],
) -> VideoRead:
    playback = signer.grant(video, viewer, token)
    assert playback is not None  # every caller has already checked that the viewer may see this video
    return video_read(video, renditions, owner=owner, viewer=viewer, playback=playback, downloads=downloads)


def _read(session: Session, signer: Signer, video: Video, viewer: User | None, token: str | None = None) -> VideoRead:
    renditions = session.exec(select(Rendition).where(Rendition.video_id == video.id)).all()
    downloads = session.exec(select(Download).where(Download.video_id == video.id)).all()
    owner = session.get(User, video.owner_id)
    assert owner is not None  # owner_id is a non-null foreign key
    return _read_one(video, list(renditions), owner, viewer, signer, token, list(downloads))


@router.get("/{video_id}", response_model=VideoRead, responses=NOT_FOUND)
def get_video(
    video: VideoDep, session: SessionDep, signer: SignerDep, viewer: MaybeUserDep, token: PlaybackToken = None
) -> VideoRead:
    """With `?token=` (a playback link), a private video reads like for its owner, minus the edit rights; its
    `playback_url` carries the same token."""
    return _read(session, signer, video, viewer, token)


@router.patch(
    "/{video_id}",
    response_model=VideoRead,
    responses={**NOT_FOUND, 401: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}},
)
def update_video(
    video: OwnedVideoDep,
    changes: VideoUpdate,
    session: SessionDep,
    signer: SignerDep,
    user: UserDep,
    stores: StoresDep,
    enqueue: EnqueueDep,
) -> VideoRead:
    """All or nothing: a blank title or a refused downloads change (api.downloads) changes nothing."""
    for field, value in changes.model_dump(exclude_unset=True, exclude_none=True, exclude={"downloads"}).items():
        setattr(video, field, checked_title(value) if field == "title" else value)  # the upload path's sanitizer
    if not video.title:
        raise HTTPException(422, "title must not be blank")
    video.updated_at = utcnow()
    if changes.downloads is not None:
        change_downloads(session, video, changes.downloads, stores, enqueue)  # commits the fields above with it
    session.add(video)
    session.commit()
    session.refresh(video)
    return _read(session, signer, video, user)


@router.delete("/{video_id}", status_code=204, responses=NOT_FOUND)
def delete_video(video: OwnedVideoDep, session: SessionDep, stores: StoresDep, bell: WebhookBellDep) -> None:
    # Blobs first: if storage fails the row stays, so the delete can be retried and nothing is orphaned.
    prefix = media_prefix(video.id)
    try:
        stores.media.delete_prefix(prefix)
        stores.sources.delete_prefix(prefix)
    except Exception as exc:
        log.exception("video %s: storage failed while deleting; row kept", video.id)  # details for operators only
        raise HTTPException(503, "storage unavailable, video not deleted: try again later") from exc
    queued = delete_video_rows(session, video)
    # Again, now that no row names the video: a worker may have written and recorded files between the first
    # pass and the commit (a just-ready video's storyboard). An attempt that writes after the commit finds its
    # part gone and removes the video's folder itself (workers.parts._end).
    try:
        stores.media.delete_prefix(prefix)
    except Exception:
        log.warning("video %s: deleted, but its files could not be removed a second time", video.id, exc_info=True)
    if queued:
        bell(f"deleted {video.id}")

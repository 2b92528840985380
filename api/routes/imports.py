"""Import a video from a URL (ingest.imports): the request is recorded at once; a worker downloads it."""

from fastapi import APIRouter, HTTPException
from sqlmodel import select

from api.deps import EnqueueDep, OwnedVideoDep, SessionDep, SettingsDep, SignerDep, UserDep
from api.errors import Responses
from api.presenters import video_read
from ingest.imports import start_import
from schemas.api import ImportCreate, ImportRead, Problem, VideoRead
from schemas.tables import VideoImport

router = APIRouter(prefix="/api/v1/videos", tags=["videos"])
REFUSALS: Responses = {401: {"model": Problem}, 422: {"model": Problem}, 429: {"model": Problem}}


@router.post("/import", status_code=202, response_model=VideoRead, responses=REFUSALS)
def import_video(
    body: ImportCreate,
    user: UserDep,
    session: SessionDep,
    settings: SettingsDep,
    enqueue: EnqueueDep,
    signer: SignerDep,
) -> VideoRead:
    """202 with the video, status `importing`; 422 naming the problem when the URL can never be fetched (not
    http(s), credentials in it, a host that does not resolve or resolves to a private, loopback or link-local
    address); 429 over the per-creator limit of open imports. A download that fails later leaves the video
    `failed` with the reason (`GET /api/v1/videos/{id}/import` has its kind)."""
    video = start_import(
        body.url,
        body.title,
        owner_id=user.id,
        description=body.description,
        visibility=body.visibility,
        session=session,
        settings=settings,
        enqueue=enqueue,
    )
    return video_read(video, [], owner=user, viewer=user, playback=signer.for_owner(video))


@router.get("/{video_id}/import", response_model=ImportRead, responses={404: {"model": Problem}})
def get_import(video: OwnedVideoDep, session: SessionDep) -> ImportRead:
    """The owner's view of an imported video's download; 404 for a video that was uploaded, or is not yours."""
    row = session.exec(select(VideoImport).where(VideoImport.video_id == video.id)).first()
    if row is None:
        raise HTTPException(404, f"video {video.id} was not imported from a URL")
    return ImportRead.model_validate(row, from_attributes=True)

"""Captions: the owner attaches, lists and removes WebVTT/SRT files per language; players get each as an HLS
subtitle media playlist whose one segment is the cleaned WebVTT in the media store (SAS or CDN URL)."""

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Response, UploadFile

from api.access import Playback
from api.caption_store import attach_caption, find_caption, list_captions, remove_caption
from api.captions import MAX_CAPTION_BYTES
from api.deps import OwnedVideoDep, PlaybackDep, SessionDep, SettingsDep, SignerDep, StoresDep, UserDep, VideoDep
from api.errors import Responses
from api.playlists import playlist_response, require_playable
from api.subtitles import playlist_uri, subtitle_playlist
from schemas.api import CaptionCreated, CaptionRead, Problem
from schemas.tables import Caption

router = APIRouter(prefix="/api/v1/videos", tags=["captions"])
UPLOAD_PATH = r"^/api/v1/videos/[^/]+/captions/?$"  # bounded to MAX_CAPTION_BYTES while streaming (api.app)
NOT_FOUND: Responses = {404: {"model": Problem}}
REFUSALS: Responses = {
    401: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    413: {"model": Problem},
    422: {"model": Problem},
    503: {"model": Problem},
}


def caption_read(caption: Caption, playback: Playback) -> CaptionRead:
    """URLs as the caller may use them: a private video's carry its playback token or segment signature."""
    return CaptionRead(
        language=caption.language,
        label=caption.label,
        is_default=caption.is_default,
        created_at=caption.created_at,
        url=playback.media_url(caption.blob_key),
        playlist_url=playback.api_url(playlist_uri(caption)),
    )


@router.post("/{video_id}/captions", status_code=201, response_model=CaptionCreated, responses=REFUSALS)
def attach(
    video: OwnedVideoDep,
    user: UserDep,
    signer: SignerDep,
    file: Annotated[UploadFile, File(description="WebVTT or SRT, UTF-8 (or UTF-16 with a BOM)")],
    language: Annotated[str, Form(description="BCP 47 tag: en, pt-BR, zh-Hant")],
    session: SessionDep,
    stores: StoresDep,
    label: Annotated[str | None, Form(description="menu name; defaults to the language's own name")] = None,
    default: Annotated[bool, Form(description="players turn this track on by themselves")] = False,
) -> CaptionCreated:
    """Attach (or replace) the caption of one language, while the video processes or once it is ready."""
    data = file.file.read(MAX_CAPTION_BYTES + 1)
    caption, clean = attach_caption(session, stores.media, video, data, language, label, default)
    playback = signer.grant(video, user, None)  # the owner's: plain URLs unless the video is private
    assert playback is not None
    read = caption_read(caption, playback)
    return CaptionCreated(**read.model_dump(), cue_count=clean.cue_count, source_format=clean.source_format)


@router.get("/{video_id}/captions", response_model=list[CaptionRead], responses=NOT_FOUND)
def list_for_video(video: VideoDep, playback: PlaybackDep, session: SessionDep) -> list[CaptionRead]:
    """Anyone who may watch the video. VideoDep comes first: others get 404, as for a missing video."""
    return [caption_read(c, playback) for c in list_captions(session, video.id)]


@router.delete("/{video_id}/captions/{language}", status_code=204, responses=REFUSALS)
def remove(video: OwnedVideoDep, language: str, session: SessionDep, stores: StoresDep) -> None:
    remove_caption(session, stores.media, video, language)


@router.get("/{video_id}/captions/{language}/{version}.m3u8", response_class=Response, responses=NOT_FOUND)
def subtitle_media_playlist(
    playback: PlaybackDep, language: str, version: str, session: SessionDep, settings: SettingsDep
) -> Response:
    """One WebVTT segment spanning the video: hls.js fetches it from the media store like a segment.
    `version` (the file's hash in the master's URI) only keys caches: the current file is always served."""
    video = playback.video
    require_playable(video)
    caption = find_caption(session, video.id, language)
    if caption is None:
        raise HTTPException(404, f"video {video.id} has no {language[:40]!r} caption")
    text = subtitle_playlist(playback.media_url(caption.blob_key), video.duration or 0.0)
    return playlist_response(text, settings, playback)

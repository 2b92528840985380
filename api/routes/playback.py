"""Master and media playlists, and the storyboard track. Segments and sprites never pass through here:
media playlists and the track point players at the media store's URLs (local static mount, nginx, Azure
Blob SAS or a CDN)."""

import re

import m3u8
from fastapi import APIRouter, HTTPException, Response
from sqlmodel import select

from api.deps import SessionDep, SettingsDep, StoresDep, VideoDep
from api.subtitles import renditions_for, with_subtitles
from core.blobs import BlobNotFound, content_type_for
from ingest.caption_store import list_captions
from schemas.tables import Rendition, Video, VideoStatus, Visibility
from workers.command import MASTER_NAME
from workers.job import media_prefix
from workers.thumbnails import STORYBOARD_VTT, rewrite_storyboard_vtt

router = APIRouter(prefix="/api/v1/videos", tags=["playback"])
SEGMENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PLAYLIST_TYPE = content_type_for(MASTER_NAME)
VTT_TYPE = content_type_for(STORYBOARD_VTT)
MASTER_MAX_AGE = 60  # the master lists captions from the database: one attached later shows within a minute


def _ready(video: Video) -> None:
    if video.status != VideoStatus.ready:
        raise HTTPException(404, f"video {video.id} is not ready to play (status: {video.status})")


def _max_age(settings) -> int:
    # Rewritten playlists embed SAS tokens when served from Azure: expire well before they do.
    if settings.uses_azure and not settings.segment_base_url:
        return max(60, settings.sas_ttl_seconds // 4)
    return 86400


def _playlist(
    text: str, settings, video: Video, media_type: str = PLAYLIST_TYPE, max_age: int | None = None
) -> Response:
    # A shared cache (CDN, nginx) must never hand a private video's playlist to someone else.
    scope = "private" if video.visibility == Visibility.private else "public"
    age = min(max_age or _max_age(settings), _max_age(settings))
    return Response(text, media_type=media_type, headers={"Cache-Control": f"{scope}, max-age={age}"})


@router.get("/{video_id}/master.m3u8", response_class=Response)
def master_playlist(video: VideoDep, session: SessionDep, stores: StoresDep, settings: SettingsDep) -> Response:
    _ready(video)
    try:
        text = stores.media.read_bytes(media_prefix(video.id) + MASTER_NAME).decode()
    except BlobNotFound as exc:
        raise HTTPException(404, "master playlist missing") from exc
    text = with_subtitles(text, renditions_for(list_captions(session, video.id)))  # captions: api/routes/captions
    return _playlist(text, settings, video, max_age=MASTER_MAX_AGE)


@router.get("/{video_id}/{rendition}/index.m3u8", response_class=Response)
def media_playlist(
    video: VideoDep, rendition: str, session: SessionDep, stores: StoresDep, settings: SettingsDep
) -> Response:
    _ready(video)
    row = session.exec(select(Rendition).where(Rendition.video_id == video.id, Rendition.name == rendition)).first()
    if row is None:  # names come from the database only: a path parameter never reaches storage
        raise HTTPException(404, f"rendition {rendition!r} not found")
    try:
        playlist = m3u8.loads(stores.media.read_bytes(row.playlist_key).decode())
    except BlobNotFound as exc:
        raise HTTPException(404, "media playlist missing") from exc
    base = f"{media_prefix(video.id)}{row.name}/"
    inits = {id(seg.init_section): seg.init_section for seg in playlist.segments if seg.init_section}
    for item in [*inits.values(), *playlist.segments]:
        if not SEGMENT_NAME.match(item.uri or ""):
            raise HTTPException(500, "media playlist names an unexpected file")
        item.uri = stores.media.url_for(base + item.uri)
    return _playlist(playlist.dumps(), settings, video)


@router.get("/{video_id}/storyboard.vtt", response_class=Response)
def storyboard_track(video: VideoDep, stores: StoresDep, settings: SettingsDep) -> Response:
    """The WebVTT thumbnail track with absolute sprite URLs: a relative link would lose the SAS query."""
    _ready(video)
    if not video.has_video:
        raise HTTPException(404, "an audio-only video has no storyboard")
    prefix = media_prefix(video.id)
    try:
        text = stores.media.read_bytes(prefix + STORYBOARD_VTT).decode()
        track = rewrite_storyboard_vtt(text, lambda name: stores.media.url_for(prefix + name))
    except BlobNotFound as exc:
        raise HTTPException(404, "storyboard missing") from exc
    except ValueError as exc:  # UnicodeDecodeError included
        raise HTTPException(500, "storyboard track is malformed") from exc
    return _playlist(track, settings, video, VTT_TYPE)

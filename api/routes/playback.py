"""Master and media playlists, the storyboard track, and playback tokens. Segments and sprites never pass
through here: media playlists and the track point players at the media store's URLs (local static mount,
nginx, Azure Blob SAS or a CDN), signed for a private video (see api/access.py)."""

import re
from datetime import UTC, datetime

import m3u8
from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import update
from sqlmodel import col, select

from api.access import with_query
from api.caption_store import list_captions
from api.deps import OwnedVideoDep, PlaybackDep, SessionDep, SettingsDep, SignerDep, StoresDep
from api.errors import Responses
from api.growing import growing
from api.playlists import playlist_response, require_playable, require_ready
from api.storyboard import rewrite_storyboard_vtt
from api.subtitles import renditions_for, with_subtitles
from core.blobs import BlobNotFound, Stores, content_type_for
from core.media_keys import MASTER_NAME, STORYBOARD_VTT, published_root
from schemas.api import PlaybackTokenCreate, PlaybackTokenRead, Problem
from schemas.tables import Rendition, Video, VideoStatus

router = APIRouter(prefix="/api/v1/videos", tags=["playback"])
# A playback route refuses a token (403: expired, revoked, another video's) or a video the caller may not see,
# or that is not ready or lacks the file (404).
REFUSED: Responses = {403: {"model": Problem}, 404: {"model": Problem}}
SEGMENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
VTT_TYPE = content_type_for(STORYBOARD_VTT)
MASTER_MAX_AGE = 60  # the master lists captions from the database: one attached later shows within a minute


def _stored(stores: Stores, key: str, what: str) -> str:
    """A playlist or track from the store: only for encodes published before they were kept in the database
    (migration 0009). Playback of newer ones never waits on the store."""
    try:
        return stores.media.read_bytes(key).decode()
    except BlobNotFound as exc:
        raise HTTPException(404, f"{what} missing") from exc
    except UnicodeDecodeError as exc:
        raise HTTPException(500, f"{what} is malformed") from exc


@router.get("/{video_id}/master.m3u8", response_class=Response, responses=REFUSED)
def master_playlist(playback: PlaybackDep, session: SessionDep, stores: StoresDep, settings: SettingsDep) -> Response:
    video = playback.video
    require_playable(video)
    ready = video.status == VideoStatus.ready
    if ready:
        stored_key = published_root(video.id, video.media_root) + MASTER_NAME
        text = video.master_playlist or _stored(stores, stored_key, "master playlist")
    else:  # still encoding: the start plays (api.growing)
        text = growing(session, video).master()
    text = with_subtitles(text, renditions_for(list_captions(session, video.id)))  # captions: api/routes/captions
    text = with_query(text, playback.query)  # last: every URI the master names carries a private video's token
    return playlist_response(text, settings, playback, max_age=MASTER_MAX_AGE, growing=not ready)


@router.get("/{video_id}/{rendition}/index.m3u8", response_class=Response, responses=REFUSED)
def media_playlist(
    playback: PlaybackDep, rendition: str, session: SessionDep, stores: StoresDep, settings: SettingsDep
) -> Response:
    video = playback.video
    require_playable(video)
    if video.status != VideoStatus.ready:
        return playlist_response(growing(session, video).media(rendition, playback.media_url), settings, playback,
                                 growing=True)  # fmt: skip
    row = session.exec(select(Rendition).where(Rendition.video_id == video.id, Rendition.name == rendition)).first()
    if row is None:  # names come from the database only: a path parameter never reaches storage
        raise HTTPException(404, f"rendition {rendition!r} not found")
    playlist = m3u8.loads(row.playlist or _stored(stores, row.playlist_key, "media playlist"))
    base = row.playlist_key.rpartition("/")[0] + "/"  # the rendition's folder in the published encode
    inits = {id(seg.init_section): seg.init_section for seg in playlist.segments if seg.init_section}
    for item in [*inits.values(), *playlist.segments]:
        if not SEGMENT_NAME.match(item.uri or ""):
            raise HTTPException(500, "media playlist names an unexpected file")
        item.uri = playback.media_url(base + item.uri)
    return playlist_response(playlist.dumps(), settings, playback)


@router.get("/{video_id}/storyboard.vtt", response_class=Response, responses=REFUSED)
def storyboard_track(playback: PlaybackDep, stores: StoresDep, settings: SettingsDep) -> Response:
    """The WebVTT thumbnail track with absolute sprite URLs: a relative link would lose the SAS query."""
    video = playback.video
    require_ready(video)
    if not video.has_video:
        raise HTTPException(404, "an audio-only video has no storyboard")
    prefix = published_root(video.id, video.media_root)
    text = video.storyboard_track or _stored(stores, prefix + STORYBOARD_VTT, "storyboard")
    try:
        track = rewrite_storyboard_vtt(text, lambda name: playback.media_url(prefix + name))
    except ValueError as exc:  # UnicodeDecodeError included
        raise HTTPException(500, "storyboard track is malformed") from exc
    return playlist_response(track, settings, playback, VTT_TYPE)


@router.post(
    "/{video_id}/playback-token",
    status_code=201,
    response_model=PlaybackTokenRead,
    responses={401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
def create_playback_token(
    video: OwnedVideoDep, signer: SignerDep, settings: SettingsDep, body: PlaybackTokenCreate | None = None
) -> PlaybackTokenRead:
    """Owner: an expiring link that plays this video for whoever holds it (any visibility; a private video
    needs one). Nothing is stored per link: `POST …/playback-token/revoke` ends every link given so far."""
    ttl = (body.ttl_seconds if body and body.ttl_seconds else None) or settings.playback_token_ttl_seconds
    if ttl > settings.playback_token_max_ttl_seconds:
        raise HTTPException(422, f"ttl_seconds must be at most {settings.playback_token_max_ttl_seconds}")
    playback = signer.for_token(video, signer.mint(video, ttl)[0])
    assert playback.token is not None and playback.expires is not None
    return PlaybackTokenRead(
        token=playback.token,
        expires_at=datetime.fromtimestamp(playback.expires, UTC),
        playback_url=playback.api_url("master.m3u8"),
        watch_url=f"/watch/{video.id}{playback.query}",
    )


@router.post(
    "/{video_id}/playback-token/revoke", status_code=204, responses={401: {"model": Problem}, 404: {"model": Problem}}
)
def revoke_playback_links(video: OwnedVideoDep, session: SessionDep) -> None:
    """Owner: every playback link and signed media URL handed out so far stops working (the API refuses them at
    once, nginx within STREAMIFY_NGINX_ACCESS_CACHE_SECONDS). The owner's own playback and new links go on."""
    session.execute(
        update(Video).where(col(Video.id) == video.id).values(playback_generation=col(Video.playback_generation) + 1)
    )
    session.commit()

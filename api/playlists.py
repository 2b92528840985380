"""What every playback route answers with (the master, media, subtitle and storyboard playlists): the ready
check and the response with the right cache lifetime for the video and the viewer."""

from fastapi import HTTPException, Response

from api.access import Playback
from core.blobs import content_type_for
from core.media_keys import MASTER_NAME
from schemas.tables import Video, VideoStatus, Visibility

PLAYLIST_TYPE = content_type_for(MASTER_NAME)


def is_playable(video: Video) -> bool:
    """Ready, or still encoding with its start published (workers.parts keeps playable_seconds)."""
    growing = video.status == VideoStatus.processing and video.playable_seconds is not None
    return video.status == VideoStatus.ready or growing


def require_playable(video: Video) -> None:
    """Playlists exist once the encode's start is published: anything else is 404 with the video's status."""
    if not is_playable(video):
        raise HTTPException(404, f"video {video.id} is not ready to play (status: {video.status})")


def require_ready(video: Video) -> None:
    """What only a finished encode has (the storyboard): anything else is 404 with the video's status."""
    if video.status != VideoStatus.ready:
        raise HTTPException(404, f"video {video.id} is not ready to play (status: {video.status})")


def _max_age(settings) -> int:
    # Rewritten playlists embed SAS tokens when served from Azure: expire well before they do.
    if settings.uses_azure and not settings.segment_base_url:
        return max(60, settings.sas_ttl_seconds // 4)
    return 86400


GROWING = "no-store"  # a playlist that grows while parts land: no cache (nginx, CDN, browser) may keep it


def playlist_response(
    text: str,
    settings,
    grant: Playback | Video,
    media_type: str = PLAYLIST_TYPE,
    max_age: int | None = None,
    growing: bool = False,
) -> Response:
    """Pass the route's Playback: a private video's playlist carries its token and is never stored by a cache."""
    age = min(max_age or _max_age(settings), _max_age(settings))
    if growing:
        cache = GROWING
    elif isinstance(grant, Playback):
        cache = grant.cache_control(age)
    else:  # a shared cache (CDN, nginx) must never hand a private video's playlist to someone else
        cache = f"{'private' if grant.visibility == Visibility.private else 'public'}, max-age={age}"
    return Response(text, media_type=media_type, headers={"Cache-Control": cache})

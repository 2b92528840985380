"""Tables -> API models."""

from api.access import Playback
from api.playlists import is_playable
from core.media_keys import POSTER_NAME, published_root
from core.progressive import AUDIO_RENDITION
from schemas.api import DownloadRead, RenditionRead, VideoRead
from schemas.tables import Download, DownloadKind, DownloadState, Rendition, User, Video, VideoStatus


def playback_url(playback: Playback) -> str:
    """The master playlist; a private video's carries the viewer's playback token (the owner gets a fresh one)."""
    return playback.api_url("master.m3u8")


def storyboard_url(playback: Playback) -> str:
    """Served by the API, not the store: its sprite links must carry the store's SAS, like playlists."""
    return playback.api_url("storyboard.vtt")


def video_read(
    video: Video,
    renditions: list[Rendition],
    *,
    owner: User,
    viewer: User | None,
    playback: Playback,
    downloads: list[Download] | None = None,
) -> VideoRead:
    ready = video.status == VideoStatus.ready
    pictures = ready and video.has_video
    playable = is_playable(video)
    # A chunked encode is ready before its storyboard part made the track (workers.parts): no URL until then.
    # Encodes from before migration 0009 keep theirs in the store only (no master_playlist in the row either).
    has_storyboard = pictures and (video.storyboard_track is not None or video.master_playlist is None)
    return VideoRead(
        id=video.id,
        title=video.title,
        description=video.description,
        visibility=video.visibility,
        owner_name=owner.display_name,
        is_owner=viewer is not None and viewer.id == video.owner_id,
        status=video.status,
        progress=video.progress,
        playable=playable,
        encoded_seconds=(video.duration if ready else video.playable_seconds) if playable else None,
        error=video.error if viewer is not None and viewer.id == video.owner_id else None,  # may quote ffmpeg
        duration=video.duration,
        width=video.width,
        height=video.height,
        has_video=video.has_video,
        has_audio=video.has_audio,
        created_at=video.created_at,
        renditions=rendition_reads(video, renditions),
        playback_url=playback_url(playback) if playable else None,
        poster_url=playback.media_url(published_root(video.id, video.media_root) + POSTER_NAME) if pictures else None,
        storyboard_url=storyboard_url(playback) if has_storyboard else None,
        watch_url=f"/watch/{video.id}",
        downloads=download_reads(video, downloads or [], playback, owner=viewer is not None and viewer.id == owner.id),
    )


def download_reads(video: Video, rows: list[Download], playback: Playback, *, owner: bool) -> list[DownloadRead]:
    """The MP4 first, then the M4A. A file is offered only while the video is ready (a re-transcode makes them
    again from the new encode); while it encodes they are pending, and a video that failed has none to offer."""
    reads = []
    for row in sorted(rows, key=lambda r: r.kind != DownloadKind.video):
        status = row.state
        if video.status in (VideoStatus.failed, VideoStatus.cancelled):
            status = DownloadState.failed
        elif video.status != VideoStatus.ready:
            status = DownloadState.pending
        ready = status == DownloadState.ready and row.blob_key is not None
        reads.append(
            DownloadRead(
                kind=row.kind,  # type: ignore[arg-type]  # a DownloadKind, stored as its value
                rendition=row.rendition,
                status=status,  # type: ignore[arg-type]
                url=playback.media_url(row.blob_key) if ready and row.blob_key else None,
                size=row.size if ready else None,
                error=(row.error or "the video has no encode") if owner and status == DownloadState.failed else None,
            )
        )
    return reads


def rendition_reads(video: Video, renditions: list[Rendition]) -> list[RenditionRead]:
    """The rungs people list, highest first: the audio rendition has a row of its own (its playlist is served like
    a rung's), listed only for an audio-only video."""
    rungs = [r for r in renditions if r.name != AUDIO_RENDITION or not video.has_video]
    ordered = sorted(rungs, key=lambda r: r.bandwidth, reverse=True)
    return [RenditionRead.model_validate(r, from_attributes=True) for r in ordered]

"""HLS text for captions (pure): SUBTITLES renditions in a master playlist, and the one-segment subtitle
media playlist. Built per request from the captions rows, so attaching a caption never needs a re-transcode.

No X-TIMESTAMP-MAP is written, so the stored file is served as is: without it a WebVTT cue time of 0 is
media time 0 (RFC 8216 section 3.5), which hls.js follows for fMP4 since 1.7 (and Safari always has). On the
watch page a cue uploaded at 0.300-4.700 s is active from currentTime 0.300 to 4.700 (tests/test_captions_stack).
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

import m3u8

from schemas.tables import Caption

GROUP_ID = "subs"
# A quoted-string cannot hold '"'; '<', '>' and '&' are refused in new labels (api.captions.clean_label) but a
# row stored before that rule may hold them: a player may write NAME as HTML, so they never reach the playlist.
_NAME_CHARS = str.maketrans({'"': "'", "<": "\u2039", ">": "\u203a", "&": "\uff06"})


@dataclass(frozen=True)
class SubtitleRendition:
    language: str  # BCP 47
    name: str  # what the player's menu shows
    uri: str  # of its media playlist, relative to the master
    default: bool = False


def playlist_uri(caption: Caption) -> str:
    """Relative to the master. Its last part is the file's content hash (no query: a private video's token is
    appended as one), so a replaced file gets a new URL and no cache serves a playlist naming the old one."""
    return f"captions/{caption.language}/{PurePosixPath(caption.blob_key).stem}.m3u8"


def renditions_for(captions: Iterable[Caption]) -> list[SubtitleRendition]:
    return [SubtitleRendition(c.language, c.label, playlist_uri(c), c.is_default) for c in captions]


def with_subtitles(master_text: str, renditions: list[SubtitleRendition]) -> str:
    """The master playlist with one SUBTITLES rendition per caption, every variant pointing at the group."""
    if not renditions:
        return master_text
    master = m3u8.loads(master_text)
    master.media = m3u8.MediaList([m for m in master.media if m.type != "SUBTITLES"])
    names: set[str] = set()
    group = []
    for r in renditions:
        name = r.name.translate(_NAME_CHARS)
        if name in names:  # NAME must be unique within the group
            name = f"{name} ({r.language})"
        names.add(name)
        group.append(
            m3u8.Media(
                uri=r.uri,
                type="SUBTITLES",
                group_id=GROUP_ID,
                language=r.language,
                name=name,
                default="YES" if r.default else "NO",
                autoselect="YES",  # DEFAULT=YES requires it; players may pick any by the viewer's language
            )
        )
    master.media.extend(group)
    for variant in master.playlists:
        # m3u8 writes SUBTITLES="..." on a variant from its media list, not from stream_info.
        variant.stream_info.subtitles = GROUP_ID
        variant.media = [*(m for m in variant.media if m.type != "SUBTITLES"), *group]
    return master.dumps()


def subtitle_playlist(vtt_url: str, duration: float) -> str:
    """A VOD media playlist of one segment: the whole WebVTT file, spanning the video."""
    duration = max(duration, 0.001)
    playlist = m3u8.M3U8()
    playlist.version = 3
    playlist.target_duration = math.ceil(duration)
    playlist.media_sequence = 0
    playlist.playlist_type = "vod"
    playlist.is_endlist = True
    playlist.add_segment(m3u8.Segment(uri=vtt_url, duration=round(duration, 3)))
    return playlist.dumps()

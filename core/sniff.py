"""Pick the one ffmpeg demuxer allowed to open a file, from its leading bytes.

ffmpeg's own probing would happily pick the `hls`, `concat` or `image2` demuxers, which open other
files and URLs named inside the upload. We never let it probe: every open forces a demuxer from this
allow-list, chosen by magic bytes (the `filetype` library, plus MPEG-TS which it does not know).
"""

from pathlib import Path

import filetype

from core.errors import Refusal, Refused
from schemas.tables import FailureKind

# MIME (as filetype reports it) -> ffmpeg demuxer. None of these follow references to other files
# (the mov demuxer's external data references stay off: enable_drefs defaults to 0).
DEMUXERS: dict[str, str] = {
    "video/mp4": "mov",
    "video/x-m4v": "mov",
    "video/quicktime": "mov",
    "video/3gpp": "mov",
    "audio/mp4": "mov",
    "audio/m4a": "mov",
    "video/x-matroska": "matroska",
    "video/webm": "matroska",
    "video/x-msvideo": "avi",
    "video/x-ms-wmv": "asf",
    "video/mpeg": "mpeg",
    "video/x-flv": "flv",
    "audio/mpeg": "mp3",
    "audio/aac": "aac",
    "audio/ogg": "ogg",
    "audio/x-flac": "flac",
    "audio/x-wav": "wav",
    "audio/x-aiff": "aiff",
    "audio/amr": "amr",
}
ALLOWED_DEMUXERS = frozenset(DEMUXERS.values()) | {"mpegts"}
_TS_PACKET = 188


def _is_mpegts(head: bytes) -> bool:
    return len(head) >= 3 * _TS_PACKET and all(head[i * _TS_PACKET] == 0x47 for i in range(3))


def _is_playlist(head: bytes) -> bool:
    """An HLS (or extended M3U) playlist: a list of other files' names, which we never open."""
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"#EXTM3U")


def sniff_demuxer(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(8192)
    if not head:
        raise Refused(Refusal.invalid, "empty file: the upload contains no bytes", kind=FailureKind.corrupt_source)
    kind = filetype.guess(head)
    if kind is not None and kind.mime in DEMUXERS:
        return DEMUXERS[kind.mime]
    if _is_mpegts(head):
        return "mpegts"
    what = f"a {kind.mime} file" if kind else "not a recognised audio or video container"
    if _is_playlist(head):
        what = "an HLS playlist, which only names other files (give the video file itself)"
    raise Refused(
        Refusal.unsupported_media,
        f"not a media file: {what}; upload MP4/MOV, MKV/WebM, AVI, MPEG-TS/PS, FLV, WMV or an audio file",
        kind=FailureKind.refused_format,
    )

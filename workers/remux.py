"""Downloads by remuxing the published encode (no second encode): which files of a rendition make its stream, and
the one ffmpeg command that copies a rung and the audio into a progressive MP4 and the audio into an M4A.

Pure: parses text and builds a list of strings; runs nothing (workers.download_part fetches and runs).

A rendition's init segment followed by its media segments, in playlist order, is one valid fragmented MP4 (that
is what a player's buffer holds), so each rendition is fetched into one local file and given to ffmpeg as such:
ffmpeg never reads a URL, a playlist or anything the files might reference.
"""

import re
from dataclasses import dataclass
from pathlib import Path

# What our playlists name (core.progressive: `<tag>.init.mp4`, `<tag>.seg_00012.m4s`, plain `init.mp4` and
# `seg_00012.m4s` before per-attempt tags): a file in the rendition's own folder, nothing else.
_FILE_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.(?:mp4|m4s)")
# Demuxers the inputs may be opened with: ISO BMFF only (the `mov` demuxer's names).
INPUT_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2"
MP4_FORMAT = "mp4"
M4A_FORMAT = "ipod"  # ffmpeg's muxer for .m4a (the M4A brand)


class BadPlaylist(ValueError):
    """A stored media playlist that does not name an init segment and media segments of its own folder."""


@dataclass(frozen=True)
class RenditionFiles:
    """A rendition's stream as files of its folder, in the order they join."""

    init: str
    segments: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.init, *self.segments)


def rendition_files(playlist: str) -> RenditionFiles:
    """The init segment (`#EXT-X-MAP`) and the media segments of a finished fMP4 media playlist, in order."""
    init: str | None = None
    segments: list[str] = []
    for line in playlist.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MAP:"):
            found = re.search(r'URI="([^"]*)"', line)
            if found is None or init is not None:
                raise BadPlaylist("the playlist must name exactly one init segment")
            init = _checked(found.group(1))
        elif line and not line.startswith("#"):
            segments.append(_checked(line))
    if init is None or not segments:
        raise BadPlaylist("the playlist names no init segment or no media segment")
    return RenditionFiles(init, tuple(segments))


def _checked(name: str) -> str:
    if not _FILE_NAME.fullmatch(name):
        raise BadPlaylist(f"the playlist names {name[:80]!r}, not a segment file of its own folder")
    return name


def _input(path: Path) -> list[str]:
    """A local fragmented MP4, opened as nothing else: the file protocol only, the ISO BMFF demuxer forced and
    allowed, no data references followed (an `alis`/`url ` box naming another file)."""
    return [
        "-protocol_whitelist", "file", "-format_whitelist", INPUT_FORMATS, "-f", "mov", "-enable_drefs", "0",
        "-i", f"file:{path.resolve()}",
    ]  # fmt: skip


def _output(path: Path, muxer: str) -> list[str]:
    # Streams copied as they are (no encode); +faststart moves the index to the front, so the file plays while
    # it downloads; no metadata or chapters carried over from the inputs.
    return ["-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart",
            "-f", muxer, f"file:{path.resolve()}"]  # fmt: skip


def build_remux_argv(
    video: Path | None,
    audio: Path | None,
    mp4: Path | None,
    m4a: Path | None,
    *,
    ffmpeg_exe: str = "ffmpeg",
) -> list[str]:
    """One ffmpeg run: `video` (a rung, init + segments) with `audio` (the audio rendition) -> `mp4`; `audio`
    alone -> `m4a`. A video without sound gets an MP4 of its picture only, one without picture an M4A only."""
    if mp4 is not None and video is None:
        raise ValueError("an MP4 needs the video rung")
    if m4a is not None and audio is None:
        raise ValueError("an M4A needs the audio rendition")
    if mp4 is None and m4a is None:
        raise ValueError("nothing to make")
    argv = [ffmpeg_exe, "-hide_banner", "-nostdin", "-nostats", "-y", "-progress", "pipe:1"]
    inputs = [p for p in (video, audio) if p is not None]
    for path in inputs:
        argv += _input(path)
    audio_index = inputs.index(audio) if audio is not None else None
    if mp4 is not None:
        argv += ["-map", "0:v:0"]
        if audio_index is not None:
            argv += ["-map", f"{audio_index}:a:0"]
        argv += _output(mp4, MP4_FORMAT)
    if m4a is not None:
        argv += ["-map", f"{audio_index}:a:0", *_output(m4a, M4A_FORMAT)]
    return argv

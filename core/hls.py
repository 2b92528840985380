"""The HLS playlists of an encode, written from facts rather than by ffmpeg.

Chunked encodes are made of many ffmpeg runs (one per time range, plus the audio), none of which sees the whole
ladder, so the media playlists and the master are written here from the segments' durations and the measured
sizes and codecs. Pure text in, text out: the API writes growing playlists of a video still encoding with the
same functions, so nothing here imports worker code.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import m3u8

from core.encoding import VideoCodec
from core.media_keys import AUDIO_NAME, INIT_NAME, MEDIA_PLAYLIST, segment_name

VERSION = 7  # fMP4 segments with EXT-X-MAP in a playlist without I-frames only need 6; ffmpeg writes 7 as well
AUDIO_GROUP = "audio"
AAC_LC = "mp4a.40.2"
PEAK_MIN_SEGMENT = 0.5  # a short tail segment would overstate the peak bit rate
# What a rung's CODECS says before its first range is measured (the measured string replaces it): a profile and
# level every player of that codec takes for up to 1080p (H.264 High 4.0, AV1 Main 4.0 8-bit).
PLANNED_CODECS = {VideoCodec.h264: "avc1.640028", VideoCodec.av1: "av01.0.08M.08"}
SAMPLE_ENTRIES = {VideoCodec.h264: "avc1", VideoCodec.av1: "av01"}  # how a codec string (RFC 6381) starts


@dataclass(frozen=True)
class VariantEntry:
    name: str  # the rendition's folder, e.g. "720p"
    bandwidth: int  # peak segment bit rate of the video, bits/s (the audio's is added in the master)
    average_bandwidth: int
    codecs: str  # "avc1.64001f", "av01.0.05M.08"
    width: int
    height: int
    frame_rate: float


@dataclass(frozen=True)
class AudioEntry:
    bandwidth: int
    average_bandwidth: int
    codecs: str = AAC_LC
    channels: int = 2
    name: str = AUDIO_NAME


def uri_for(name: str) -> str:
    return f"{name}/{MEDIA_PLAYLIST}"


def media_playlist(
    durations: Sequence[float],
    *,
    first_sequence: int = 0,
    target_duration: int,
    complete: bool,
    init: str = INIT_NAME,
    uris: Sequence[str] | None = None,
) -> str:
    """A rendition's playlist: segments seg_<n>.m4s numbered from first_sequence, or named by `uris` (a chunked
    encode's files carry their attempt's tag: core.progressive). While the encode grows it is an EVENT playlist
    without ENDLIST (players poll it and may seek only up to its end); complete, the VOD one. A segment longer
    than the target duration (once rounded) is refused: players stall on it."""
    if uris is not None and len(uris) != len(durations):
        raise ValueError("one URI per segment")
    longest = max((round(d) for d in durations), default=0)
    if longest > target_duration:
        raise ValueError(f"a segment of {max(durations):.3f} s exceeds the target duration of {target_duration} s")
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration}",
        f"#EXT-X-MEDIA-SEQUENCE:{first_sequence}",
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if complete else 'EVENT'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{init}"',
    ]
    for i, duration in enumerate(durations):
        lines += [f"#EXTINF:{duration:.6f},", uris[i] if uris is not None else segment_name(first_sequence + i)]
    if complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def bandwidths(sizes: Sequence[int], durations: Sequence[float]) -> tuple[int, int]:
    """(peak, average) bit rate of a rendition from its segments' sizes in bytes and durations in seconds: what
    BANDWIDTH and AVERAGE-BANDWIDTH must say for a player to pick a rung it can keep up with."""
    total = sum(durations)
    if len(sizes) != len(durations) or total <= 0:
        raise ValueError("a rendition needs segments with a duration")
    average = sum(sizes) * 8 / total
    peaks = [size * 8 / d for size, d in zip(sizes, durations, strict=True) if d > PEAK_MIN_SEGMENT]
    return math.ceil(max([average, *peaks])), math.ceil(average)


def master_playlist(variants: Sequence[VariantEntry], audio: AudioEntry | None) -> str:
    """The master: one variant per video rung, all sharing the one audio rendition (an EXT-X-MEDIA group whose
    bit rate each variant's BANDWIDTH includes, as players budget for both); an audio-only source is one
    audio variant."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if not variants:
        if audio is None:
            raise ValueError("a master needs a video or an audio rendition")
        lines += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={audio.bandwidth},AVERAGE-BANDWIDTH={audio.average_bandwidth},"
            f'CODECS="{audio.codecs}"',
            uri_for(audio.name),
        ]
        return "\n".join(lines) + "\n"
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="{audio.name}",DEFAULT=YES,AUTOSELECT=YES,'
            f'CHANNELS="{audio.channels}",URI="{uri_for(audio.name)}"'
        )
    for v in variants:
        peak, average, codecs = v.bandwidth, v.average_bandwidth, v.codecs
        if audio is not None:
            peak, average, codecs = (
                peak + audio.bandwidth,
                average + audio.average_bandwidth,
                f"{codecs},{audio.codecs}",
            )
        lines += [
            f'#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},CODECS="{codecs}",'
            f"RESOLUTION={v.width}x{v.height},FRAME-RATE={v.frame_rate:.3f}"
            + (f',AUDIO="{AUDIO_GROUP}"' if audio is not None else ""),
            uri_for(v.name),
        ]
    return "\n".join(lines) + "\n"


def master_problems(master_text: str) -> list[str]:
    """What a player would trip over; empty when the master is complete."""
    problems = []
    try:
        playlist = m3u8.loads(master_text)
    except KeyError as exc:  # m3u8 cannot load a variant that lacks a required attribute (BANDWIDTH)
        return [f"master has a variant with no {str(exc.args[0]).upper()}"]
    if not playlist.is_variant or not playlist.playlists:
        return ["master lists no variants"]
    groups = {m.group_id for m in playlist.media if m.type == "AUDIO" and m.uri}
    for variant in playlist.playlists:
        info = variant.stream_info
        if not info.bandwidth:
            problems.append(f"{variant.uri}: no BANDWIDTH")
        if not info.codecs:
            problems.append(f"{variant.uri}: no CODECS")
        if info.codecs and any(c.strip()[:4] in SAMPLE_ENTRIES.values() for c in info.codecs.split(",")):
            if not info.resolution:
                problems.append(f"{variant.uri}: no RESOLUTION")
            if not info.frame_rate:
                problems.append(f"{variant.uri}: no FRAME-RATE")
        if info.audio and info.audio not in groups:
            problems.append(f"{variant.uri}: AUDIO group {info.audio!r} has no rendition")
        if info.audio and info.codecs and "mp4a" not in info.codecs:
            problems.append(f"{variant.uri}: CODECS lacks the audio group's codec")
    return problems

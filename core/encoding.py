"""What the encoder settings may be: the bounds the settings refuse at start-up and the ladder relies on.

A value outside them would not fail when the setting is read but in every job, at ffmpeg's start or in a
player; checked once here, a worker with a bad value refuses to start instead.
"""

from enum import StrEnum
from typing import Literal


class VideoCodec(StrEnum):
    """The codec of a video rung: H.264 plays everywhere; AV1 (a setting) is offered beside it."""

    h264 = "h264"
    av1 = "av1"


# x264's own presets, fastest first: ffmpeg refuses any other word, so every encode would fail at its start.
X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                     "placebo"]  # fmt: skip
# CRF 0 is lossless, which the High profile every rung is encoded in cannot carry (x264 refuses to start);
# above 51 x264 silently clamps.
MIN_CRF, MAX_CRF = 1, 51
# A keyframe at least every 2 s, as Apple's HLS authoring specification asks: players start and seek at keyframes.
MAX_GOP_SECONDS = 2
# Longer segments make a player buffer that long before it can start or change quality.
MAX_SEGMENT_SECONDS = 30


def check_gop(gop_seconds: int) -> int:
    """The keyframe interval: every rendition has a keyframe on this time grid, so rendition switches align."""
    if not 1 <= gop_seconds <= MAX_GOP_SECONDS:
        raise ValueError(
            f"the keyframe interval must be at least 1 s and at most {MAX_GOP_SECONDS} s, not {gop_seconds}"
        )
    return gop_seconds


def check_segment(segment_seconds: int, gop_seconds: int) -> int:
    """The HLS muxer cuts a segment only at a keyframe: a length off the keyframe grid comes out longer."""
    if not 1 <= segment_seconds <= MAX_SEGMENT_SECONDS:
        raise ValueError(f"the segment duration must be 1 to {MAX_SEGMENT_SECONDS} s, not {segment_seconds}")
    if segment_seconds % gop_seconds:
        raise ValueError(
            f"the segment duration ({segment_seconds} s) must be a whole multiple of the keyframe interval "
            f"({gop_seconds} s): the HLS muxer cuts segments only at keyframes"
        )
    return segment_seconds


def check_crf(crf: int) -> int:
    if not MIN_CRF <= crf <= MAX_CRF:
        raise ValueError(
            f"x264's CRF must be {MIN_CRF} (best quality) to {MAX_CRF} (smallest files), not {crf}"
            + (": 0 is lossless, which the High profile of every rendition cannot carry" if crf == 0 else "")
        )
    return crf

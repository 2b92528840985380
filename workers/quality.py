"""Measured quality, as pure planning: which stretches of a published rung to compare with the source (VMAF),
the ffmpeg argv that compares one stretch, and what its libvmaf log says. The quality part runs them
(workers.quality_part) after the video is ready.

The score must describe what viewers get, so both sides are made the way the encode and a player make them:
- the reference is the source picture as the encode prepared it (workers.command._picture: deinterlaced,
  tone mapped), on the rung's own frame grid (fps=rung:start_time at the encode range's start), at the top
  rung's size (lanczos, as the top rung was scaled);
- the distorted side is the rung's init segment followed by its segments, as a player's buffer holds them,
  upscaled bicubic to that size (what a player on a screen that size does);
- frames are paired by their number in the window (both are renumbered), never by timestamps that a seek, the
  HLS muxer's offsets or a rounding could shift by one frame: one frame off scores a moving picture 20 points low.

A window never crosses a change of frame grid: each range of a chunked encode starts its rung's frames at its own
start (start_time=0 after its seek), so two ranges whose starts are not a whole number of frames apart (29.97
fps) are measured apart.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg

from workers.command import _argv, _input, _picture
from workers.ladder import LadderPlan, VideoRendition

SAMPLE_WINDOW_SECONDS = 8.0  # a sampled window: two 4 s segments, long enough for the motion feature to settle
PREROLL_SECONDS = 1.0  # decoded before a window inside a range, so its first frame is picked as the encode did
_EPS = 1e-6
# Segment starts are sums of playlist durations, which round: a start this close to a range start is that start
# (segments and ranges are a second or more apart).
_NEAR = 0.05


@dataclass(frozen=True)
class Window:
    """A run of a rung's segments measured in one ffmpeg run."""

    first: int  # index of its first segment in the rung's playlist
    count: int  # segments in it
    start: float  # seconds into the video (a segment boundary: a keyframe of every rung)
    length: float  # seconds (the segments' durations)
    origin: float  # where the rung's frame grid starts: the start of the encode range the frames came from
    seek: float  # where the reference is read from: the range start, or a little before the window


def frame_grids(range_starts: Sequence[float], fps: Fraction) -> list[float]:
    """The frame grid origin of each range: a range whose start is a whole number of frames after the previous
    grid's origin continues that grid (its frames fall on the same times), otherwise it starts its own."""
    origins: list[float] = []
    for start in sorted(range_starts):
        if origins and _whole_frames(start - origins[-1], fps):
            origins.append(origins[-1])
        else:
            origins.append(start)
    return origins


def _whole_frames(seconds: float, fps: Fraction) -> bool:
    frames = Fraction(seconds).limit_denominator(1_000_000) * fps
    return abs(frames - round(frames)) < _EPS


def plan_windows(
    durations: Sequence[float],
    range_starts: Sequence[float],
    fps: Fraction,
    *,
    full_seconds: float,
    sample_seconds: float,
    window_seconds: float = SAMPLE_WINDOW_SECONDS,
) -> tuple[Window, ...]:
    """The windows to measure of a rung whose segments last `durations`, encoded in ranges starting at
    `range_starts`: all of it up to `full_seconds` (one window per frame grid), else windows of about
    `window_seconds` totalling about `sample_seconds`, spread evenly over the video, on segment boundaries."""
    if not durations:
        return ()
    starts = [0.0]
    for d in durations[:-1]:
        starts.append(starts[-1] + d)
    total = starts[-1] + durations[-1]
    ranges = sorted(range_starts) or [0.0]
    origins = frame_grids(ranges, fps)

    def range_of(t: float) -> int:
        return max((i for i, s in enumerate(ranges) if s <= t + _NEAR), default=0)

    seg_range = [range_of(s) for s in starts]
    seg_origin = [origins[r] for r in seg_range]

    def window(first: int, count: int) -> Window:
        start = starts[first]
        range_start = ranges[seg_range[first]]
        at_range_start = abs(start - range_start) < _NEAR
        seek = range_start if at_range_start else max(range_start, start - PREROLL_SECONDS)
        length = sum(durations[first : first + count])
        return Window(first, count, round(start, 6), round(length, 6), seg_origin[first], round(seek, 6))

    if total <= full_seconds + _EPS or sample_seconds >= total - _EPS:
        blocks: list[Window] = []
        first = 0
        for i in range(1, len(durations) + 1):
            if i == len(durations) or seg_origin[i] != seg_origin[first]:
                blocks.append(window(first, i - first))
                first = i
        return tuple(blocks)

    n = max(1, round(sample_seconds / window_seconds))
    wanted = sample_seconds / n
    out: list[Window] = []
    free = 0  # the first segment no window holds yet
    for i in range(n):
        target = (i + 0.5) * total / n - wanted / 2
        at = next((j for j in range(free, len(starts)) if starts[j] >= target - _EPS), None)
        if at is None:
            break
        end = at + 1  # segments at..end-1: about `wanted` seconds
        while sum(durations[at:end]) < wanted - _EPS and end < len(durations):
            end += 1
        while at < end:  # cut where the frame grid changes: each piece is a window of its own
            cut = next((j for j in range(at + 1, end) if seg_origin[j] != seg_origin[at]), end)
            out.append(window(at, cut - at))
            at = cut
        free = end
    return tuple(out)


def reference_size(plan: LadderPlan) -> tuple[int, int]:
    """Every rung is compared at the top rung's size (the largest picture the ladder makes)."""
    top = max(plan.renditions, key=lambda r: r.width * r.height)
    return top.width, top.height


def _numbered(v, fps: Fraction):
    """Timestamps = frame numbers in the window: libvmaf pairs the n-th frame of each side, whatever their clocks."""
    return v.filter("settb", f"{fps.denominator}/{fps.numerator}").filter("setpts", "N")


def build_vmaf_argv(
    plan: LadderPlan,
    rung: VideoRendition,
    window: Window,
    src: Path,
    demuxer: str,
    rung_file: Path,
    log_path: Path,
    *,
    n_threads: int,
    max_pixels: int,
    ffmpeg_exe: str = "ffmpeg",
) -> list[str]:
    """One window of one rung against the source: libvmaf (default model) writes its JSON log to log_path.
    `rung_file` is the rung's init segment followed by the window's segments. The source is opened as warily as
    by the encode (forced demuxer, file protocol, decoders capped at max_pixels)."""
    if plan.audio_only:
        raise ValueError("an audio-only source has no picture to measure")
    width, height = reference_size(plan)
    into = window.start - window.seek  # where the window starts in the reference as read
    seek: dict[str, object] = {"ss": f"{window.seek:g}"} if window.seek > 0 else {}
    # A second past the window: the frame-rate filter picks the window's last frames as it did inside the encode.
    source = _input(src, demuxer, **seek, t=f"{into + window.length + 1:g}", max_pixels=max_pixels)
    # The rung's frames are origin + k/fps: the frame-rate filter lays that grid from the origin (repeating the first
    # frame read until then), and the window is cut from it by frame number, which no rounding of a time can shift.
    # At least as many frames as the rung has in the window: libvmaf stops with the shorter side (shortest=1).
    first_frame = round((window.start - window.origin) * rung.fps)
    frames = math.ceil(window.length * rung.fps) + 1
    ref = (
        _picture(source, plan)
        .filter("fps", fps=str(rung.fps), start_time=f"{window.origin - window.seek:g}")
        .filter("trim", start_frame=first_frame, end_frame=first_frame + frames)
        .filter("scale", width, height, flags="lanczos")
        .filter("setsar", "1")
        .filter("format", "yuv420p")
    )
    dist = (
        _input(rung_file, "mov")["v:0"]
        .filter("scale", width, height, flags="bicubic")
        .filter("setsar", "1")
        .filter("format", "yuv420p")
    )
    scored = ffmpeg.filter(
        [_numbered(dist, rung.fps), _numbered(ref, rung.fps)],  # libvmaf: distorted first, reference second
        "libvmaf",
        log_path=str(log_path),
        log_fmt="json",
        n_threads=n_threads,
        shortest=1,  # a side one frame short (a rounded last segment) ends the comparison, never repeats a frame
        repeatlast=0,
    )
    return _argv(ffmpeg_exe, ffmpeg.output(scored, "-", f="null"))


def build_trial_vmaf_argv(
    encoded: Path, reference: Path, log_path: Path, *, fps: Fraction, n_threads: int, ffmpeg_exe: str = "ffmpeg"
) -> list[str]:
    """A per-title trial encode (same size and frames as its lossless reference) against that reference."""
    dist = _input(encoded, "mov")["v:0"].filter("format", "yuv420p")
    ref = _input(reference, "nut")["v:0"].filter("format", "yuv420p")
    scored = ffmpeg.filter(
        [_numbered(dist, fps), _numbered(ref, fps)],
        "libvmaf",
        log_path=str(log_path),
        log_fmt="json",
        n_threads=n_threads,
        shortest=1,
        repeatlast=0,
    )
    return _argv(ffmpeg_exe, ffmpeg.output(scored, "-", f="null"))


@dataclass(frozen=True)
class Score:
    """Pooled VMAF of some frames."""

    mean: float
    frames: int


class VmafLogError(ValueError):
    """libvmaf's log is missing what a score needs."""


def parse_vmaf_log(text: str) -> Score:
    """libvmaf's JSON log -> the pooled mean VMAF and the frames it covers."""
    try:
        log = json.loads(text)
        mean = float(log["pooled_metrics"]["vmaf"]["mean"])
        frames = len(log["frames"])
    except (ValueError, KeyError, TypeError) as exc:
        raise VmafLogError(f"unreadable libvmaf log: {type(exc).__name__}: {exc}") from exc
    if frames == 0 or not math.isfinite(mean):
        raise VmafLogError("libvmaf compared no frame")
    return Score(mean, frames)


def pooled(scores: Sequence[Score]) -> Score:
    """Windows pooled as one run over all their frames would be (the mean is per frame)."""
    frames = sum(s.frames for s in scores)
    if frames == 0:
        raise ValueError("no frame was measured")
    return Score(sum(s.mean * s.frames for s in scores) / frames, frames)

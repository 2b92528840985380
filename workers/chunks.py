"""Cut a source into time ranges that separate ffmpeg runs (on any worker) encode into one seamless ladder.

Pure planning. The first range is short and cut into keyframe-interval segments, so the start of the video is
playable after a few seconds of encoding; the ranges after it double (8, 16, 32 s...) up to `range_seconds`,
so a worker that picks one up has little to lose if it dies, and long videos have few ffmpeg start-ups.
Toward the end the ranges shrink again: none is longer than half of what remains (down to two segments), so
when the last ranges run on several workers at once none of them waits long for a last big range (measured on
two one-core workers and a 10-minute source: the last 60 s range kept one worker idle for a minute of 9.8).
Every range but the last starts and ends on the segment grid, so its segments' global sequence numbers follow
from the plan alone, and a range encoded anywhere slots in beside the others.
"""

import math
from dataclasses import dataclass

from core.timeutil import time_span

# A tail shorter than this is a rounding artefact of the container's duration, not video: it may hold no frame at
# all, which ffmpeg would turn into a range with no segment. A real sub-second tail (a few frames) stays a range.
MIN_TAIL_SECONDS = 0.05
# The shortest range of the tapering tail, in segments: shorter ones would cost more in ffmpeg start-up and
# seeking than they save in waiting.
TAPER_MIN_SEGMENTS = 2


@dataclass(frozen=True)
class TimeRange:
    index: int
    start: float  # seconds into the source (a multiple of the segment grid)
    end: float | None  # None: up to the source's end (the last range only)
    first_segment: int  # global sequence number of the range's first segment, in every rendition
    segment_seconds: int  # this range's segment length (the first range: the keyframe interval)

    def length(self, duration: float) -> float:
        """Seconds of source the range covers."""
        return (self.end if self.end is not None else duration) - self.start

    def segment_count(self, duration: float) -> int:
        """Segments every rendition must have for this range (the last one may end on a short segment)."""
        return max(1, math.ceil(self.length(duration) / self.segment_seconds - 1e-6))


def plan_ranges(
    duration: float,
    *,
    segment_seconds: int,
    gop_seconds: int,
    first_range_seconds: int,
    range_seconds: int,
) -> tuple[TimeRange, ...]:
    """The ranges of a `duration`-second source. range_seconds=0 (chunking off) gives one range of ordinary
    segments; a source no longer than the first range is that first range alone."""
    if range_seconds <= 0:
        return (TimeRange(0, 0.0, None, 0, segment_seconds),)
    first = max(gop_seconds, first_range_seconds // gop_seconds * gop_seconds)
    if duration <= first + MIN_TAIL_SECONDS:
        return (TimeRange(0, 0.0, None, 0, gop_seconds),)
    longest = max(segment_seconds, range_seconds // segment_seconds * segment_seconds)
    ranges = [TimeRange(0, 0.0, float(first), 0, gop_seconds)]
    start, sequence, length = float(first), first // gop_seconds, first
    while True:
        grown = min(longest, max(segment_seconds, (length * 2) // segment_seconds * segment_seconds))
        half_left = (duration - start) / 2 // segment_seconds * segment_seconds
        length = int(min(grown, max(half_left, TAPER_MIN_SEGMENTS * segment_seconds)))
        if duration - (start + length) <= MIN_TAIL_SECONDS:
            ranges.append(TimeRange(len(ranges), start, None, sequence, segment_seconds))
            return tuple(ranges)
        ranges.append(TimeRange(len(ranges), start, start + length, sequence, segment_seconds))
        start, sequence = start + length, sequence + length // segment_seconds


def range_label(r: TimeRange, duration: float | None = None) -> str:
    """The range in words for a failure reason a creator reads: "0:40–1:10" ("1:10–end" if its end is open)."""
    return time_span(r.start, r.end if r.end is not None else duration)

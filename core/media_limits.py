"""What a source may ask of a decoder, checked before anything is decoded.

A few kilobytes can declare a 16000x16000 frame, 200 streams, 64 audio channels or two frames ten hours apart.
Decoding first and asking later costs gigabytes (a frame pool per stream and thread) in the API that checks the
upload and in the worker, or hours of worker time for a video that is two pictures. So the numbers that drive
those costs are read from container and stream headers (`StreamFacts`) and from packet timestamps (`PacketFacts`:
demuxing reads no picture) and held against `MediaLimits` first; core.probe decodes one frame only after, with
the decoder itself capped at the pixel limit.

Pure: plain data in, `Refused(Refusal.over_limit, ...)` out, naming the limit and the value.
"""

from dataclasses import dataclass
from typing import Literal

from core.errors import Refusal, Refused
from core.settings import Settings
from schemas.tables import FailureKind

StreamKind = Literal["video", "audio", "other"]


@dataclass(frozen=True)
class MediaLimits:
    """Defaults match core.settings; `from_settings` is what intake and the worker use."""

    max_pixels: int = 8192 * 4320
    max_streams: int = 64
    max_duration_seconds: float = 6 * 3600
    max_frame_rate: float = 240
    max_frame_gap_seconds: float = 300
    max_sample_rate: int = 192_000
    max_channels: int = 16

    @classmethod
    def from_settings(cls, settings: Settings) -> "MediaLimits":
        return cls(
            max_pixels=settings.media_max_pixels,
            max_streams=settings.media_max_streams,
            max_duration_seconds=settings.media_max_duration_seconds,
            max_frame_rate=settings.media_max_frame_rate,
            max_frame_gap_seconds=settings.media_max_frame_gap_seconds,
            max_sample_rate=settings.media_max_sample_rate,
            max_channels=settings.media_max_channels,
        )


@dataclass(frozen=True)
class StreamFacts:
    """One stream as its headers declare it; 0 where a header does not say."""

    kind: StreamKind
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0  # average frames per second, as declared
    sample_rate: int = 0
    channels: int = 0


def over_limit(what: str, value: str, limit: str) -> Refused:
    return Refused(
        Refusal.over_limit, f"over the limit: {what} is {value}, the limit is {limit}", kind=FailureKind.over_limit
    )


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value:.0f} s ({value / 3600:.1f} h)"
    return f"{value:.0f} s" if value >= 100 else f"{value:.3g} s"


def check_stream_count(count: int, limits: MediaLimits, *, at_least: bool = False) -> None:
    """`at_least`: the demuxer stopped adding streams at the cap, so the file has this many or more."""
    if count > limits.max_streams:
        raise over_limit("the number of streams", f"{'at least ' if at_least else ''}{count}", str(limits.max_streams))


def check_streams(streams: list[StreamFacts], limits: MediaLimits) -> None:
    check_stream_count(len(streams), limits)
    for s in streams:
        if s.kind == "video":
            if s.width * s.height > limits.max_pixels:
                raise over_limit(
                    "pixels per frame",
                    f"{s.width}x{s.height} = {s.width * s.height:,}",
                    f"{limits.max_pixels:,}",
                )
            if s.frame_rate > limits.max_frame_rate:
                raise over_limit("the frame rate", f"{s.frame_rate:g} fps", f"{limits.max_frame_rate:g} fps")
        elif s.kind == "audio":
            if s.sample_rate > limits.max_sample_rate:
                raise over_limit("the sample rate", f"{s.sample_rate} Hz", f"{limits.max_sample_rate} Hz")
            if s.channels > limits.max_channels:
                raise over_limit("the number of audio channels", str(s.channels), str(limits.max_channels))


def check_duration(seconds: float, limits: MediaLimits, *, declared: bool) -> None:
    if seconds > limits.max_duration_seconds:
        what = "the declared duration" if declared else "the duration its timestamps span"
        raise over_limit(what, _seconds(seconds), _seconds(limits.max_duration_seconds))


class PacketTally:
    """Packet timestamps, fed in demux order, refusing as soon as they cross a limit (so a scan of a crafted
    file stops early): what the encode will really cost, whatever the header declared.

    `start` is where the file's timeline begins (the container's start time); times are in seconds."""

    def __init__(self, limits: MediaLimits, start: float = 0.0) -> None:
        self.limits = limits
        self.start = start
        self.end = start
        self.video_packets = 0
        self.first_video: float | None = None
        self.latest_video: float | None = None
        self.largest_gap = 0.0

    def add(self, time: float, end: float, *, video: bool) -> None:
        self.end = max(self.end, end)
        check_duration(self.end - self.start, self.limits, declared=False)
        if not video:
            return
        self.video_packets += 1
        latest = self.start if self.latest_video is None else self.latest_video
        if time > latest:  # a step back (B-frames in presentation order) is no gap
            self.largest_gap = max(self.largest_gap, time - latest)
        self.latest_video = max(latest, time)
        self.first_video = time if self.first_video is None else min(self.first_video, time)
        if self.largest_gap > self.limits.max_frame_gap_seconds:
            raise over_limit(
                "the time between two frames", _seconds(self.largest_gap), _seconds(self.limits.max_frame_gap_seconds)
            )
        # Counted, not declared: a header can say 30 fps over packets a microsecond apart. One second of slack, so
        # a few frames close together are not judged by one interval.
        span = self.latest_video - self.first_video
        allowed = int(self.limits.max_frame_rate * (span + 1)) + 1
        if self.video_packets > allowed:
            raise over_limit(
                "the frame rate",
                f"{self.video_packets} frames in {_seconds(span)} (counted)",
                f"{self.limits.max_frame_rate:g} fps",
            )

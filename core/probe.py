"""What a source contains, read with PyAV under the same demuxer allow-list as the encoder, and within the media
limits (core.media_limits) before anything is decoded."""

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from fractions import Fraction
from pathlib import Path

import av
import av.error

from core.errors import Refusal, Refused
from core.media_limits import (
    MediaLimits,
    PacketTally,
    StreamFacts,
    check_duration,
    check_stream_count,
    check_streams,
    over_limit,
)
from core.sniff import ALLOWED_DEMUXERS, sniff_demuxer
from schemas.tables import FailureKind

log = logging.getLogger(__name__)

# Options for every open of untrusted media: local file protocol only, no external references.
SAFE_INPUT_OPTIONS = {"protocol_whitelist": "file", "enable_drefs": "0"}
# Opening a file runs avformat_find_stream_info, which decodes frames of every stream to fill in what the
# headers leave out: a frame pool per stream, at whatever size the header declares, before we could look. These
# keep that step to headers and parsers (no decoder may open, none would decode), so the limits are checked from
# what the file declares; the one frame probe() decodes comes after, from a decoder capped at the pixel limit.
_HEADERS_ONLY = {"codec_whitelist": "none", "skip_frame": "all"}
_MAX_PACKETS_TO_FIRST_FRAME = 600


class HdrTransfer(StrEnum):
    """An HDR transfer function, valued as ffmpeg names it (`-color_trc`, zscale `tin`)."""

    pq = "smpte2084"  # HDR10 and Dolby Vision base layers, most phone HDR
    hlg = "arib-std-b67"  # broadcast HDR; iPhones and many Android phones record it by default


_HDR_TRC = {16: HdrTransfer.pq, 18: HdrTransfer.hlg}  # AVColorTransferCharacteristic values
_INTERLACED_FIELD_ORDERS = {2, 3, 4, 5}  # AVFieldOrder: TT, BB, TB, BT (0 unknown, 1 progressive)


@dataclass(frozen=True)
class SourceInfo:
    demuxer: str
    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0  # coded size; display_* apply rotation and sample aspect ratio
    height: int = 0
    rotation: int = 0  # degrees, as the display matrix asks
    sample_aspect: Fraction = Fraction(1)
    fps: float = 0.0
    video_bitrate: int = 0  # bits/s, 0 when unknown
    audio_channels: int = 0
    # Which streams to encode, as absolute stream indexes (None: the first of the kind). Cover art (an attached
    # picture) is never the video; of several audio tracks the one marked default is the one published.
    video_stream: int | None = None
    audio_stream: int | None = None
    audio_language: str = ""  # ISO 639-2 as the container says, "" when untagged
    audio_sample_rate: int = 0
    interlaced: bool = False  # coded as fields (camcorders, broadcast): the ladder must deinterlace
    hdr: HdrTransfer | None = None  # PQ or HLG: the ladder must tone map to SDR BT.709

    @property
    def display_width(self) -> int:
        w = round(self.width * self.sample_aspect)
        return self.height if self.rotation % 180 else w

    def to_json(self) -> dict:
        """For the job row: the parts of a chunked encode plan from the planner's probe instead of each demuxing
        the whole source again (seconds per part on a long file)."""
        data = asdict(self)
        data["sample_aspect"] = [self.sample_aspect.numerator, self.sample_aspect.denominator]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "SourceInfo":
        num, den = data["sample_aspect"]
        hdr = HdrTransfer(data["hdr"]) if data.get("hdr") else None
        return cls(**{**data, "sample_aspect": Fraction(num, den), "hdr": hdr})

    @property
    def display_height(self) -> int:
        w = round(self.width * self.sample_aspect)
        return w if self.rotation % 180 else self.height


def _stream_facts(stream: av.stream.Stream) -> StreamFacts:
    """What a stream's headers declare (0 where they do not say: the decoded frame is checked too)."""
    if stream.codec_context is None:  # this FFmpeg has no decoder for it: nothing will decode it either
        return StreamFacts("other")
    if isinstance(stream, av.video.stream.VideoStream):
        rate, video = stream.average_rate, stream.codec_context
        return StreamFacts("video", width=video.width, height=video.height, frame_rate=float(rate) if rate else 0.0)
    if isinstance(stream, av.audio.stream.AudioStream):
        audio = stream.codec_context
        return StreamFacts("audio", sample_rate=audio.sample_rate or 0, channels=audio.channels or 0)
    return StreamFacts("other")


def _main_video(container: av.container.InputContainer) -> av.VideoStream | None:
    """The first video stream that is a moving picture: an attached picture (album cover) is not the video."""
    return next((s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None)


def _main_audio(container: av.container.InputContainer) -> av.AudioStream | None:
    """The audio track marked default (what a player starts with), else the first one."""
    tracks = list(container.streams.audio)
    return next((s for s in tracks if s.disposition & av.stream.Disposition.default), tracks[0] if tracks else None)


def _capped_decoder(stream: av.stream.Stream, limits: MediaLimits) -> None:
    """The decoder refuses a frame over the pixel limit (whatever the header said) and runs one thread: a thread
    pool decodes ahead into frames of its own, which one frame does not need."""
    ctx = stream.codec_context
    ctx.thread_count = 1
    ctx.options = {**(ctx.options or {}), "max_pixels": str(limits.max_pixels)}


def _first_frame(container: av.container.InputContainer, stream: av.stream.Stream):
    """Decode until one frame comes out: proves the stream is really decodable."""
    for i, packet in enumerate(container.demux(stream)):
        for frame in packet.decode():
            return frame
        if i > _MAX_PACKETS_TO_FIRST_FRAME:
            break
    return None


def _packet_end(
    container: av.container.InputContainer, streams: Sequence[av.stream.Stream], limits: MediaLimits
) -> float:
    """Demux (no decoding) the packets of the streams the encode reads, refusing as soon as their timestamps cross a
    limit (core.media_limits.PacketTally); the end of the last one, in seconds from the file's start."""
    start = container.start_time / av.time_base if container.start_time is not None else 0.0
    tally = PacketTally(limits, start)
    video = next((s.index for s in streams if s.type == "video"), None)
    bases = {s.index: float(s.time_base or 0) for s in streams}  # floats: Fraction arithmetic per packet is slow
    try:
        for packet in container.demux(streams):
            stamp = packet.dts if packet.dts is not None else packet.pts
            base = bases.get(packet.stream_index, 0.0)
            if stamp is None or not base:
                continue
            time = stamp * base
            tally.add(time, time + (packet.duration or 0) * base, video=packet.stream_index == video)
    except av.error.FFmpegError:
        pass  # unreadable from here on: the encode finds out how much decodes, as it does for a truncated file
    return tally.end - start


def probe(path: Path, demuxer: str | None = None, limits: MediaLimits | None = None) -> SourceInfo:
    """What a source holds, refused (core.errors.Refused, with its FailureKind) when it is not a container we
    accept, holds nothing decodable, or is over a media limit. The limits are checked from headers and packet
    timestamps before the one frame per stream that proves it decodes."""
    limits = limits or MediaLimits()
    demuxer = demuxer or sniff_demuxer(path)
    if demuxer not in ALLOWED_DEMUXERS:
        raise Refused(
            Refusal.unsupported_media, f"container format {demuxer!r} is not accepted", kind=FailureKind.refused_format
        )
    # One stream over the limit is enough to know (and some demuxers stop adding streams there rather than fail).
    options = {**SAFE_INPUT_OPTIONS, **_HEADERS_ONLY, "max_streams": str(limits.max_streams + 1)}
    try:
        container = av.open(str(path), format=demuxer, options=options)
    except MemoryError as exc:  # ENOMEM: how the mov demuxer fails past max_streams
        log.warning("%s: refused at open: %s", path.name, exc)
        raise over_limit(
            "the number of streams (or the memory its header asks for)",
            f"more than {limits.max_streams} streams",
            str(limits.max_streams),
        ) from exc
    except av.error.FFmpegError as exc:
        raise _corrupt(exc) from exc
    try:
        with container:
            return _probe_open(container, demuxer, limits)
    except Refused:
        raise
    except av.error.FFmpegError as exc:
        raise _corrupt(exc) from exc


def _corrupt(exc: av.error.FFmpegError) -> Refused:
    detail = f"corrupt or truncated media file: {exc.strerror or exc}"
    return Refused(Refusal.invalid, detail, kind=FailureKind.corrupt_source)


def _probe_open(container: av.container.InputContainer, demuxer: str, limits: MediaLimits) -> SourceInfo:
    check_stream_count(len(container.streams), limits, at_least=len(container.streams) > limits.max_streams)
    check_streams([_stream_facts(s) for s in container.streams], limits)
    declared = container.duration / av.time_base if container.duration and container.duration > 0 else 0.0
    check_duration(declared, limits, declared=True)
    video = _main_video(container)
    audio = _main_audio(container)
    if video is None and audio is None:
        raise Refused(
            Refusal.invalid,
            "no decodable video or audio: the file has no video or audio stream",
            kind=FailureKind.no_decodable_stream,
        )
    used = [s for s in (video, audio) if s is not None]
    # Declared versus timestamped: the encode runs for as long as the packets say, whatever the header does.
    end = _packet_end(container, used, limits)
    for stream in used:
        _capped_decoder(stream, limits)
    container.seek(0)
    frame = _first_frame(container, video) if video is not None else None
    has_video = frame is not None
    audio_frame = None
    if audio is not None:
        container.seek(0)
        audio_frame = _first_frame(container, audio)
    has_audio = audio_frame is not None
    if not has_video and not has_audio:
        raise Refused(
            Refusal.invalid,
            "no decodable video or audio: the streams could not be decoded",
            kind=FailureKind.no_decodable_stream,
        )
    # What the decoder found, where a header said nothing (the decoder already refused frames over the pixel cap).
    decoded = []
    if frame is not None:
        decoded.append(StreamFacts("video", width=frame.width, height=frame.height))
    if audio_frame is not None:
        decoded.append(
            StreamFacts("audio", sample_rate=audio_frame.sample_rate, channels=audio_frame.layout.nb_channels)
        )
    check_streams(decoded, limits)
    # Browser recordings (MediaRecorder WebM) often carry no duration: the packets' end is the duration then.
    duration = declared or end
    if duration <= 0:
        raise Refused(Refusal.invalid, "corrupt media file: its duration is zero", kind=FailureKind.corrupt_source)
    info = SourceInfo(
        demuxer=demuxer,
        duration=duration,
        has_video=has_video,
        has_audio=has_audio,
        audio_channels=audio_frame.layout.nb_channels if audio_frame is not None else 0,
    )
    if audio is not None and audio_frame is not None:
        info = replace(
            info,
            audio_stream=audio.index,
            audio_language="" if audio.language in (None, "und") else audio.language,
            audio_sample_rate=audio.codec_context.sample_rate or audio_frame.sample_rate or 0,
        )
    if video is not None and frame is not None:
        rate = video.average_rate or video.guessed_rate or 0
        sar = (
            video.sample_aspect_ratio or video.codec_context.sample_aspect_ratio or Fraction(1)
        )  # the decoder's, from the bitstream
        info = replace(
            info,
            width=frame.width,
            height=frame.height,
            rotation=int(getattr(frame, "rotation", 0) or 0) % 360,
            sample_aspect=Fraction(sar) if sar > 0 else Fraction(1),
            fps=float(rate),
            video_bitrate=int(video.bit_rate or 0),
            video_stream=video.index,
            interlaced=bool(frame.interlaced_frame) or video.codec_context.field_order in _INTERLACED_FIELD_ORDERS,
            hdr=_HDR_TRC.get(frame.color_trc or video.codec_context.color_trc),
        )
    return info

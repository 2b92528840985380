"""What a source contains, read with PyAV under the same demuxer allow-list as the encoder."""

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from pathlib import Path

import av
import av.error

from core.errors import Refusal, Refused
from core.sniff import ALLOWED_DEMUXERS, sniff_demuxer
from schemas.tables import FailureKind

# Options for every open of untrusted media: local file protocol only, no external references.
SAFE_INPUT_OPTIONS = {"protocol_whitelist": "file", "enable_drefs": "0"}
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

    @property
    def display_height(self) -> int:
        w = round(self.width * self.sample_aspect)
        return w if self.rotation % 180 else self.height


def _first_frame(container: av.container.InputContainer, stream: av.stream.Stream):
    """Decode until one frame comes out: proves the stream is really decodable."""
    for i, packet in enumerate(container.demux(stream)):
        for frame in packet.decode():
            return frame
        if i > _MAX_PACKETS_TO_FIRST_FRAME:
            break
    return None


def _main_video(container: av.container.InputContainer) -> av.VideoStream | None:
    """The first video stream that is a moving picture: an attached picture (album cover) is not the video."""
    return next((s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None)


def _main_audio(container: av.container.InputContainer) -> av.AudioStream | None:
    """The audio track marked default (what a player starts with), else the first one."""
    tracks = list(container.streams.audio)
    return next((s for s in tracks if s.disposition & av.stream.Disposition.default), tracks[0] if tracks else None)


def _duration(container: av.container.InputContainer) -> float:
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    # Browser recordings (MediaRecorder WebM) often carry no duration: demux to the last timestamp.
    end = 0.0
    for packet in container.demux():
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end


def probe(path: Path, demuxer: str | None = None) -> SourceInfo:
    demuxer = demuxer or sniff_demuxer(path)
    if demuxer not in ALLOWED_DEMUXERS:
        raise Refused(
            Refusal.unsupported_media, f"container format {demuxer!r} is not accepted", kind=FailureKind.refused_format
        )
    try:
        with av.open(str(path), format=demuxer, options=SAFE_INPUT_OPTIONS) as container:
            video = _main_video(container)
            audio = _main_audio(container)
            if video is None and audio is None:
                raise Refused(
                    Refusal.invalid,
                    "no decodable video or audio: the file has no video or audio stream",
                    kind=FailureKind.no_decodable_stream,
                )
            frame = _first_frame(container, video) if video is not None else None
            has_video = frame is not None
            has_audio = False
            if audio is not None:
                container.seek(0)
                has_audio = _first_frame(container, audio) is not None
            if not has_video and not has_audio:
                raise Refused(
                    Refusal.invalid,
                    "no decodable video or audio: the streams could not be decoded",
                    kind=FailureKind.no_decodable_stream,
                )
            container.seek(0)
            duration = _duration(container)
            if duration <= 0:
                raise Refused(
                    Refusal.invalid, "corrupt media file: its duration is zero", kind=FailureKind.corrupt_source
                )
            info = SourceInfo(
                demuxer=demuxer,
                duration=duration,
                has_video=has_video,
                has_audio=has_audio,
                audio_channels=audio.codec_context.channels if has_audio and audio else 0,
            )
            if has_audio and audio is not None:
                info = SourceInfo(
                    **{
                        **info.__dict__,
                        "audio_stream": audio.index,
                        "audio_language": "" if audio.language in (None, "und") else audio.language,
                        "audio_sample_rate": audio.codec_context.sample_rate or 0,
                    }
                )
            if has_video and video is not None and frame is not None:
                rate = video.average_rate or video.guessed_rate or 0
                sar = video.sample_aspect_ratio or Fraction(1)
                info = SourceInfo(
                    **{
                        **info.__dict__,
                        "width": frame.width,
                        "height": frame.height,
                        "rotation": int(getattr(frame, "rotation", 0) or 0) % 360,
                        "sample_aspect": Fraction(sar) if sar > 0 else Fraction(1),
                        "fps": float(rate),
                        "video_bitrate": int(video.bit_rate or 0),
                        "video_stream": video.index,
                        "interlaced": bool(frame.interlaced_frame)
                        or video.codec_context.field_order in _INTERLACED_FIELD_ORDERS,
                        "hdr": _HDR_TRC.get(frame.color_trc or video.codec_context.color_trc),
                    },
                )
            return info
    except Refused:
        raise
    except av.error.FFmpegError as exc:
        detail = f"corrupt or truncated media file: {exc.strerror or exc}"
        raise Refused(Refusal.invalid, detail, kind=FailureKind.corrupt_source) from exc

"""What a source contains, read with PyAV under the same demuxer allow-list as the encoder."""

from dataclasses import dataclass
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
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
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
                    },
                )
            return info
    except Refused:
        raise
    except av.error.FFmpegError as exc:
        detail = f"corrupt or truncated media file: {exc.strerror or exc}"
        raise Refused(Refusal.invalid, detail, kind=FailureKind.corrupt_source) from exc

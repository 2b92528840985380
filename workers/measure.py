"""Read facts off the encoded HLS output (segment sizes, durations, codec strings)."""

from pathlib import Path

import av
import m3u8

from core.media_keys import MEDIA_PLAYLIST
from workers.master import VariantFacts

_AAC_OBJECT_TYPES = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}


def codec_string(init_path: Path) -> tuple[str, int | None, int | None]:
    """RFC 6381 codec string and frame size, from the init segment itself."""
    parts: list[str] = []
    width = height = None
    with av.open(str(init_path), format="mov", options={"protocol_whitelist": "file"}) as c:
        for stream in c.streams:
            ctx = stream.codec_context
            if stream.type == "video" and ctx.name == "h264":
                avcc = bytes(ctx.extradata or b"")
                if len(avcc) < 4:
                    raise ValueError(f"{init_path}: no avcC in the init segment")
                parts.append(f"avc1.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}")
                assert isinstance(ctx, av.VideoCodecContext)
                width, height = ctx.width, ctx.height
            elif stream.type == "audio" and ctx.name == "aac":
                parts.append(f"mp4a.40.{_AAC_OBJECT_TYPES.get(ctx.profile or 'LC', 2)}")
    return ",".join(parts), width, height


def measure_variant(variant_dir: Path, frame_rate: float | None) -> VariantFacts:
    playlist = m3u8.load(str(variant_dir / MEDIA_PLAYLIST))
    peak = 0.0
    total_bytes = 0
    total_duration = 0.0
    for seg in playlist.segments:
        size = (variant_dir / seg.uri).stat().st_size
        total_bytes += size
        total_duration += seg.duration
        if seg.duration > 0.5:  # a short tail segment would overstate the peak
            peak = max(peak, size * 8 / seg.duration)
    if total_duration <= 0:
        raise ValueError(f"{variant_dir.name}: the encode produced no segments")
    average = total_bytes * 8 / total_duration
    init = playlist.segment_map[0].uri if playlist.segment_map else None
    if not init:
        raise ValueError(f"{variant_dir.name}: no init segment")
    codecs, width, height = codec_string(variant_dir / init)
    return VariantFacts(
        name=variant_dir.name,
        bandwidth=int(max(peak, average)),
        average_bandwidth=int(average),
        codecs=codecs,
        width=width,
        height=height,
        frame_rate=frame_rate if width else None,
        duration=total_duration,
    )

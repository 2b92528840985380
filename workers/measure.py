"""Read facts off the encoded HLS output: codec strings from the init segments themselves."""

from dataclasses import dataclass
from pathlib import Path

import av


@dataclass(frozen=True)
class VariantFacts:
    """A rendition as measured, recorded for the video (the API's rendition table)."""

    name: str  # the rendition's folder, e.g. "720p" or "audio"
    bandwidth: int  # peak segment bit rate, bits/s
    average_bandwidth: int
    codecs: str
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    duration: float = 0.0


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

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
_AV1C_MARKER_VERSION = 0x81  # av1C's first byte: marker 1, version 1


def av1_codec(av1c: bytes) -> str:
    """`av01.P.LLT.DD` (AV1 Codec ISO Media File Format Binding, "Codecs Parameter String") from an av1C box's
    payload: seq_profile and seq_level_idx_0 (byte 1), seq_tier_0 and the bit depth (byte 2). Players test this
    string (MediaSource.isTypeSupported, Safari's variant choice), so it must say exactly what was encoded."""
    if len(av1c) < 4 or av1c[0] != _AV1C_MARKER_VERSION:
        raise ValueError("not an av1C box")
    profile, level = av1c[1] >> 5, av1c[1] & 0x1F
    tier = "H" if av1c[2] & 0x80 else "M"
    high_bitdepth, twelve_bit = bool(av1c[2] & 0x40), bool(av1c[2] & 0x20)
    depth = (12 if twelve_bit else 10) if high_bitdepth else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


def codec_string(init_path: Path) -> tuple[str, int | None, int | None]:
    """RFC 6381 codec string and frame size, from the init segment itself."""
    parts: list[str] = []
    width = height = None
    with av.open(str(init_path), format="mov", options={"protocol_whitelist": "file"}) as c:
        for stream in c.streams:
            ctx = stream.codec_context
            if stream.type == "video":
                assert isinstance(ctx, av.VideoCodecContext)
                extradata = bytes(ctx.extradata or b"")  # the mov demuxer gives the avcC / av1C box's payload
                if ctx.name == "h264":
                    if len(extradata) < 4:
                        raise ValueError(f"{init_path}: no avcC in the init segment")
                    parts.append(f"avc1.{extradata[1]:02x}{extradata[2]:02x}{extradata[3]:02x}")
                elif ctx.codec.canonical_name == "av1":  # whichever AV1 decoder PyAV has
                    parts.append(av1_codec(extradata))
                else:
                    continue
                width, height = ctx.width, ctx.height
            elif stream.type == "audio" and ctx.name == "aac":
                parts.append(f"mp4a.40.{_AAC_OBJECT_TYPES.get(ctx.profile or 'LC', 2)}")
    return ",".join(parts), width, height

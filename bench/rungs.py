"""What one rung of an encoded ladder weighs and how good it looks, measured the same way by every benchmark.

A rung is an encode's folder `<rung>/` with its `index.m3u8`, init segment and media segments. Its VMAF is
taken against the source: the rung read through ffmpeg's HLS demuxer (as a player reads it), brought to the
source's frame rate and scaled back to the source's size with bicubic (what a viewer sees full screen), scored
by libvmaf. bench/ladder.py, bench/publish.py and bench/quality.py all use these, so their figures compare.
"""

import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from core.probe import SourceInfo


def vmaf(playlist: Path, src: Path, info: SourceInfo, seconds: float, ffmpeg: str, log: Path) -> tuple[float, int]:
    """Mean VMAF of one rung (read through ffmpeg's HLS demuxer) against the source; and frames compared."""
    fps = Fraction(info.fps).limit_denominator(1001) if info.fps > 0 else Fraction(30)
    graph = (
        # Rung first (libvmaf's "distorted"), brought to the source's frame rate and size.
        f"[0:v]setpts=PTS-STARTPTS,fps={fps},scale={info.display_width}:{info.display_height}:flags=bicubic,"
        f"format=yuv420p[dist];"
        f"[1:v]setpts=PTS-STARTPTS,format=yuv420p[ref];"
        f"[dist][ref]libvmaf=n_threads=2:log_fmt=json:log_path={log}"
    )
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
         "-f", "hls", "-protocol_whitelist", "file,crypto", "-t", str(seconds), "-i", str(playlist),
         "-f", info.demuxer, "-t", str(seconds), "-i", str(src),
         "-filter_complex", graph, "-an", "-f", "null", "-"],
        check=True,
    )  # fmt: skip
    result = json.loads(log.read_text())
    return float(result["pooled_metrics"]["vmaf"]["mean"]), len(result["frames"])


def count_frames(parts: Sequence[Path]) -> int:
    """Video frames (packets: one per frame in H.264 without field coding, and in AV1) in a file, or in init +
    every segment of a rung read as a player's buffer holds them."""
    if len(parts) == 1:
        return _frames(parts[0])
    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
        for part in parts:
            tmp.write(part.read_bytes())
        tmp.flush()
        return _frames(Path(tmp.name))


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size)


def rung_files(folder: Path) -> list[Path]:
    """The rung's init segment (when its playlist names one) and media segments, in playlist order."""
    import m3u8

    media = m3u8.load(str(folder / "index.m3u8"))
    init = media.segment_map[0].uri if media.segment_map else None
    return [*([folder / init] if init else []), *(folder / seg.uri.split("?")[0].rpartition("/")[2]
                                                 for seg in media.segments)]  # fmt: skip


@dataclass
class RungQuality:
    name: str
    vmaf: float
    kbps: float  # segment bytes x 8 / the playlist's duration, as the master's AVERAGE-BANDWIDTH
    frames: int
    bytes: int = 0  # init + segments: what the rung costs to store and, watched whole, to deliver


def rung_quality(folder: Path, src: Path, seconds: float, ffmpeg: str, log: Path) -> RungQuality:
    """The rung in `folder` measured: VMAF over the first `seconds` of it against `src`, bit rate, frames, bytes."""
    import m3u8

    from core.hls import bandwidths
    from core.probe import probe

    info = probe(src)
    score, _ = vmaf(folder / "index.m3u8", src, info, seconds, ffmpeg, log)
    media = m3u8.load(str(folder / "index.m3u8"))
    parts = rung_files(folder)
    segments = parts[len(parts) - len(media.segments) :]
    kbps = bandwidths([p.stat().st_size for p in segments], [float(s.duration) for s in media.segments])[1] / 1000
    return RungQuality(folder.name, score, kbps, count_frames(parts), sum(p.stat().st_size for p in parts))

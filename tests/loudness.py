"""Test audio at a chosen loudness, and the loudness of a published audio rendition, both measured by ffmpeg's
ebur128 filter (the EBU R128 meter) run apart from the product's own measurement."""

import re
import subprocess
from pathlib import Path

from tests.media import FFMPEG, ffmpeg
from workers.loudness import Measurement, parse_ebur128

# Programme-like audio: pink noise and a tone whose level swells and fades (tremolo), stereo 48 kHz.
PROGRAMME = (
    "anoisesrc=color=pink:sample_rate=48000:amplitude=0.2:seed=7[n];sine=frequency=330:sample_rate=48000[t];"
    "[n][t]amix=inputs=2,tremolo=f=0.4:d=0.5,aformat=channel_layouts=stereo"
)
# The same with 2 ms clicks near full scale every CLICK_PERIOD s: a quiet recording with loud transients (a door, a
# cough, a microphone knock), whose peaks stand far above its loudness.
CLICK_PERIOD = 1.5
CLICKS = f"aevalsrc=exprs=0.9*sin(2*PI*2000*t)*lt(mod(t\\,{CLICK_PERIOD})\\,0.002):sample_rate=48000"
SILENCE = "anullsrc=channel_layout=stereo:sample_rate=48000"


def ebur128(path: Path) -> Measurement:
    """Integrated loudness, LRA and true peak of a file's first audio stream."""
    return _measure(["-i", f"file:{path}", "-map", "0:a:0"])


def _measure(inputs: list[str]) -> Measurement:
    run = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", *inputs, "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_ebur128(run.stderr)


def momentary(path: Path) -> dict[float, float]:
    """ebur128's momentary loudness (LUFS of the 400 ms block ending 100 ms after it) every 100 ms, by time."""
    run = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", f"file:{path}", "-map", "0:a:0", "-af",
         "ebur128=metadata=1:framelog=verbose,ametadata=print:key=lavfi.r128.M:file=-", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.findall(r"pts_time:([\d.]+)\s*\nlavfi\.r128\.M=(-?[\d.]+)", run.stdout)
    return {round(float(t), 1): float(m) for t, m in found}


def between_clicks(blocks: dict[float, float]) -> dict[float, float]:
    """The blocks of a CLICKS source that hold neither a click nor the 50 ms a limiter takes to let go of it."""
    kept = {}
    for t, m in blocks.items():
        start, end = t - 0.3, t + 0.1
        first = int((start - 0.25) // CLICK_PERIOD)
        if t >= 0.4 and not any(start - 0.25 <= k * CLICK_PERIOD <= end + 0.05 for k in range(first, first + 3)):
            kept[t] = m
    return kept


def _graph(clicks: bool) -> str:
    if not clicks:
        return PROGRAMME
    programme = PROGRAMME.replace(",aformat=channel_layouts=stereo", "[p]")
    return f"{programme};{CLICKS}[c];[p][c]amix=inputs=2:normalize=0,aformat=channel_layouts=stereo"


def make_at_level(path: Path, lufs: float, *, seconds: float = 6, video: bool = False, clicks: bool = False) -> Path:
    """`seconds` of programme audio at `lufs` integrated (within about 0.3 LU), lossless FLAC (in Matroska, beside
    a small 320x180 picture, when `video`). A level near full scale goes through a limiter, as mastered music does."""
    graph = _graph(clicks)
    gain = lufs - _measure(["-f", "lavfi", "-t", str(seconds), "-i", graph]).integrated
    for _ in range(3):  # a limiter lowers the loudness a little: measure the result and correct the gain
        chain = f"{graph},volume={gain:.2f}dB,alimiter=limit=0.95:level=0:latency=1"
        args = ["-f", "lavfi", "-t", str(seconds), "-i", chain]
        if video:
            args += ["-f", "lavfi", "-t", str(seconds), "-i", "testsrc2=size=320x180:rate=25"]
            args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        ffmpeg(*args, "-c:a", "flac", str(path))
        miss = lufs - ebur128(path).integrated
        if abs(miss) < 0.3:
            return path
        gain += miss
    return path


def make_silent(path: Path, *, seconds: float = 4) -> Path:
    """Digital silence on a real audio track (a muted screen recording)."""
    ffmpeg("-f", "lavfi", "-t", str(seconds), "-i", SILENCE, "-c:a", "flac", str(path))
    return path


def joined(init: bytes, segments: list[bytes], path: Path) -> Path:
    """A rendition as a player reads it (its init segment, then every segment in order), as one fMP4 file."""
    path.write_bytes(init + b"".join(segments))
    return path


def rendition_file(folder: Path, path: Path) -> Path:
    """The published audio rendition in `folder` (its index.m3u8, init.mp4 and segments) as one file."""
    playlist = (folder / "index.m3u8").read_text().splitlines()
    segments = [(folder / line).read_bytes() for line in playlist if line and not line.startswith("#")]
    return joined((folder / "init.mp4").read_bytes(), segments, path)

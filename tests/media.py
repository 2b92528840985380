"""Test media, generated with the same ffmpeg binary the product uses."""

import subprocess
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_clip(
    path: Path,
    *,
    size: str = "1920x1080",
    rate: int = 30,
    seconds: float = 9,
    audio: bool = True,
    video: bool = True,
    channels: int = 6,
    extra: tuple[str, ...] = (),
) -> Path:
    """testsrc2 with light temporal noise (so the encoder has real work) and a multichannel tone."""
    args: list[str] = []
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate},noise=alls=6:allf=t"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds)]
    if video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "6M", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-ac", str(channels), "-b:a", "192k"]
    ffmpeg(*args, *extra, str(path))
    return path


def make_rotated(src: Path, path: Path, degrees: int) -> Path:
    """What a phone writes: landscape-coded frames plus a display matrix that says to turn them."""
    ffmpeg("-display_rotation", str(degrees), "-i", str(src), "-c", "copy", str(path))
    return path

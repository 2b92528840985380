"""Which ffmpeg binary to run: a configured system one, else the FFmpeg 9 build shipped by imageio-ffmpeg."""

import shutil

import imageio_ffmpeg

from core.settings import Settings


def ffmpeg_exe(settings: Settings) -> str:
    if settings.ffmpeg_path:
        found = shutil.which(settings.ffmpeg_path)
        if not found:
            raise RuntimeError(f"configured ffmpeg {settings.ffmpeg_path!r} not found")
        return found
    return imageio_ffmpeg.get_ffmpeg_exe()

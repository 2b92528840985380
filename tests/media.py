"""Test media, generated with the same ffmpeg binary the product uses."""

import re
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
    sample_rate: int = 48000,
    extra: tuple[str, ...] = (),
) -> Path:
    """testsrc2 with light temporal noise (so the encoder has real work) and a multichannel tone."""
    args: list[str] = []
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate},noise=alls=6:allf=t"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}"]
    args += ["-t", str(seconds)]
    if video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "6M", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-ac", str(channels), "-b:a", f"{min(192, sample_rate * channels * 6 // 1000)}k"]
    ffmpeg(*args, *extra, str(path))
    return path


def make_rotated(src: Path, path: Path, degrees: int) -> Path:
    """What a phone writes: landscape-coded frames plus a display matrix that says to turn them."""
    ffmpeg("-display_rotation", str(degrees), "-i", str(src), "-c", "copy", str(path))
    return path


# Real-world sources (issue 12 finding 10): what cameras, phones, broadcasts and screen recorders write.


def make_interlaced(path: Path, *, size: str = "720x576", seconds: float = 3) -> Path:
    """576i25: 50p weaved into interlaced frames. `.ts`: MPEG-2 video, bottom field first, as DVB broadcasts and
    DVD/DV captures carry it; otherwise H.264 top field first, as AVCHD camcorders write it."""
    weave = (
        "tinterlace=interleave_bottom,setfield=bff"
        if path.suffix == ".ts"
        else "tinterlace=interleave_top,setfield=tff"
    )
    if path.suffix == ".ts":
        codec = ["-c:v", "mpeg2video", "-b:v", "6M", "-flags", "+ilme+ildct", "-c:a", "mp2", "-f", "mpegts"]
    else:
        codec = [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-flags",
            "+ilme+ildct",
            "-x264opts",
            "tff=1",
            "-c:a",
            "aac",
        ]
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=50",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-vf", weave, "-pix_fmt", "yuv420p", *codec, str(path),
    )  # fmt: skip
    return path


def make_sdr_reference(path: Path, *, size: str = "640x360", seconds: float = 2) -> Path:
    """A lossless BT.709 picture: the HDR sources below are made from it, so it is what they should look like."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30", "-t", str(seconds), "-pix_fmt", "yuv420p",
        "-c:v", "libx264", "-qp", "0", "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
        str(path),
    )  # fmt: skip
    return path


def make_hdr(reference: Path, path: Path, transfer: str) -> Path:
    """What a phone records: 10-bit HEVC, BT.2020, PQ (`smpte2084`, with HDR10 mastering display and content light
    levels) or HLG (`arib-std-b67`), SDR white at the 203 nits of BT.2408, plus an AAC track."""
    x265 = "log-level=error"
    if transfer == "smpte2084":
        x265 += ":hdr10=1:max-cll=1000,400"
        x265 += ":master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
    ffmpeg(
        "-i", str(reference), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-shortest",
        "-vf", f"zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t={transfer}:m=bt2020nc:p=bt2020:r=tv:npl=203,"
        "format=yuv420p10le",
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", x265, "-tag:v", "hvc1",
        "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc", "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


def make_multi_language(path: Path, *, seconds: float = 3) -> Path:
    """A film with two dubs: French (440 Hz) first, English (1000 Hz) second and marked default."""
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
        "-t", str(seconds), "-map", "0:v", "-map", "1:a", "-map", "2:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-metadata:s:a:0", "language=fre", "-metadata:s:a:1", "language=eng",
        "-disposition:a:0", "0", "-disposition:a:1", "default", str(path),
    )  # fmt: skip
    return path


def make_cover_art(path: Path, *, seconds: float = 3, with_video: bool = False) -> Path:
    """Music with its album cover (an `attached_pic` video stream); with_video adds a real video track (in MP4 the
    cover is stored as a `covr` tag and read back as the last stream)."""
    args = ["-t", str(seconds), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    args += ["-t", "0.04", "-f", "lavfi", "-i", "color=c=red:size=600x600:rate=25,format=yuvj420p"]
    if with_video:
        args += ["-t", str(seconds), "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"]
        args += ["-map", "1:v", "-map", "2:v", "-map", "0:a", "-c:v:1", "libx264", "-preset", "ultrafast"]
        args += ["-pix_fmt:v:1", "yuv420p", "-c:v:0", "mjpeg", "-disposition:v:0", "attached_pic"]
    else:
        args += ["-map", "1:v", "-map", "0:a", "-c:v", "mjpeg", "-disposition:v", "attached_pic"]
    codec = ["-c:a", "libmp3lame", "-id3v2_version", "3"] if path.suffix == ".mp3" else ["-c:a", "aac"]
    ffmpeg(*args, *codec, str(path))
    return path


def idet(path: Path) -> tuple[int, int]:
    """(interlaced, progressive) frames as ffmpeg's `idet` filter judges them from the picture itself (combing),
    whatever the stream's flags say."""
    run = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-map", "0:v:0", "-vf", "idet", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    # The last report: ffmpeg may build the graph twice (once before the first frame) and report both.
    found = re.findall(r"Multi frame detection: TFF:\s*(\d+)\s*BFF:\s*(\d+)\s*Progressive:\s*(\d+)", run.stderr)
    assert found, run.stderr[-2000:]
    tff, bff, progressive = map(int, found[-1])
    return tff + bff, progressive


def psnr(path: Path, reference: Path, size: tuple[int, int] | None = None) -> float:
    """Average PSNR (dB, all planes) of a video against a reference of the same frame rate, the reference scaled to
    `size` (the video's) when given."""
    ref = f"[1:v:0]scale={size[0]}:{size[1]}:flags=lanczos[ref];" if size else "[1:v:0]null[ref];"
    run = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-i", str(reference),
         "-lavfi", f"{ref}[0:v:0][ref]psnr", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"PSNR .* average:([0-9.]+|inf)", run.stderr)
    assert found, run.stderr[-2000:]
    return float(found.group(1))

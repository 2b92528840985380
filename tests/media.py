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


# --- Hostile and broken inputs (tests/test_hostile_corpus.py, tests/test_bad_input.py) ------------------------------
# Each is tiny and built in well under a second, except the one real 16000x16000 frame (a few seconds of x264).


def _patch(data: bytes, old: bytes, new: bytes, count: int = 1) -> bytes:
    assert data.count(old) >= count, f"{old!r} not found {count} times"
    return data.replace(old, new, count)


def _wav(channels: int, rate: int, *, bits: int = 16, frames: int = 800, declared_bytes: int | None = None) -> bytes:
    """A PCM WAV by hand (ffmpeg will not write 64 channels); `declared_bytes` makes its header lie about its size."""
    import struct

    block = channels * bits // 8
    data = bytes(block * frames)
    size = len(data) if declared_bytes is None else declared_bytes
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", size)
        + data
    )


def _mp4_box(data: bytes, name: bytes) -> tuple[int, int]:
    """Offset and size of the first top-level MP4 box called `name`."""
    import struct

    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == name:
            return at, size
        at += size
    raise ValueError(f"no {name!r} box")


def make_pixel_bomb(d: Path) -> Path:
    """One real 16000x16000 frame: ~750 KB, 256 M pixels (the issue's 1.5 MB file that cost the API 1.5 GB)."""
    return _gen(
        d / "pixels_16000.mp4",
        "-f", "lavfi", "-i", "color=gray:s=16000x16000:r=1", "-frames:v", "1",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "51", "-pix_fmt", "yuv420p",
    )  # fmt: skip


def _gen(path: Path, *args: str) -> Path:
    ffmpeg(*args, str(path))
    return path


def broken_inputs(d: Path, *, good: Path, secret: Path) -> dict[str, Path]:
    """Non-media, reference-following and broken uploads. `good`: a valid MP4 with its index at the end."""
    files = {}
    (files.setdefault("empty", d / "empty.mp4")).write_bytes(b"")
    (files.setdefault("text", d / "notes.mp4")).write_text("just some notes, not a video\n" * 50)
    # Playlists and concat lists are how ffmpeg is tricked into reading other files or URLs.
    (files.setdefault("hls", d / "evil.m3u8")).write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{secret}\n#EXTINF:10,\n"
        "http://169.254.169.254/latest/meta-data/\n#EXT-X-ENDLIST\n"
    )
    (files.setdefault("hls_as_mp4", d / "holiday.mp4")).write_bytes((d / "evil.m3u8").read_bytes())
    (files.setdefault("concat", d / "list.ffconcat")).write_text(f"ffconcat version 1.0\nfile '{secret}'\n")
    # A real container that holds nothing a viewer could watch or hear: subtitles only.
    srt = d / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:02,000\nhello\n")
    ffmpeg("-i", str(srt), "-c:s", "srt", str(d / "subs_only.mkv"))
    files["no_streams"] = d / "subs_only.mkv"
    # An MP4 with its index at the end, cut off before it: the header says mp4 but nothing can be read.
    data = good.read_bytes()
    (files.setdefault("truncated_tail_moov", d / "cut.mp4")).write_bytes(data[: len(data) // 2])
    # An MP4 with a valid index up front (faststart) but its media data cut: only the encode can tell.
    faststart = make_clip(d / "fast.mp4", size="640x360", seconds=8, channels=2, extra=("-movflags", "+faststart"))
    data = faststart.read_bytes()
    (files.setdefault("truncated_faststart", d / "cut_fast.mp4")).write_bytes(data[: int(len(data) * 0.4)])
    # Garbage behind a valid MP4 signature.
    (files.setdefault("garbage_mp4", d / "garbage.mp4")).write_bytes(
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 400
    )
    return files


def hostile_inputs(d: Path, *, good: Path, secret: Path) -> dict[str, Path]:
    """Bombs by pixels, streams, duration, rates and channels, crafted and broken containers, non-media files.
    `good` is a small valid MP4 with audio (the base of the crafted ones); `secret` a local file to point at."""
    files: dict[str, Path] = {}

    def put(name: str, filename: str, data: bytes) -> None:
        (files.setdefault(name, d / filename)).write_bytes(data)

    def gen(name: str, filename: str, *args: str) -> None:
        files[name] = _gen(d / filename, *args)

    x264 = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "51", "-pix_fmt", "yuv420p")

    # Pixels: the real frame in three containers, then headers that say small while the bitstream says huge.
    bomb = make_pixel_bomb(d)
    files["pixels_mp4"] = bomb
    gen("pixels_mkv", "pixels.mkv", "-i", str(bomb), "-c", "copy")
    gen("pixels_ts", "pixels.ts", "-i", str(bomb), "-c", "copy")  # MPEG-TS has no header: the parser tells
    # Two seconds at 320x240, then the big frame: the probe sees a small video, the encode meets the big one.
    small = _gen(d / "small.ts", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-t", "2", *x264)
    late = _gen(d / "late.ts", "-i", str(bomb), "-c", "copy", "-output_ts_offset", "3")
    put("pixels_switch_midway_ts", "switch.ts", small.read_bytes() + late.read_bytes())
    small.unlink()
    late.unlink()
    big = (16000).to_bytes(2, "big")
    put("pixels_lying_mkv", "lying.mkv", _patch(_patch(files["pixels_mkv"].read_bytes(),
        b"\xb0\x82" + big, b"\xb0\x82\x01\x40"), b"\xba\x82" + big, b"\xba\x82\x00\xf0"))  # fmt: skip
    mp4 = bomb.read_bytes()  # the avc1 sample entry's width and height, 24 bytes past its name
    at = mp4.index(b"avc1") + 4 + 24
    put("pixels_lying_mp4", "lying.mp4", mp4[:at] + (320).to_bytes(2, "big") + (240).to_bytes(2, "big") + mp4[at + 4 :])
    # A 64x64 MJPEG frame in AVI whose JPEG header (SOF0) is patched to 16000x16000: the AVI header still says 64x64.
    gen("mjpeg_small", "mjpeg.avi", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=25", "-frames:v", "3", "-c:v", "mjpeg")
    avi = files.pop("mjpeg_small").read_bytes()
    sof = avi.index(b"\xff\xc0")  # FF C0, length (2), precision (1), height (2), width (2)
    put("pixels_mjpeg_sof", "mjpeg_sof.avi", avi[: sof + 5] + big + big + avi[sof + 9 :])

    # Streams: 200 tiny video streams (the file), in MKV and MP4, and 70 audio streams.
    tiny = _gen(d / "tiny.mp4", "-f", "lavfi", "-i", "color=gray:s=1920x1080:r=30", "-t", "0.34", *x264, "-g", "5")
    many = [arg for _ in range(200) for arg in ("-map", "0:v")]
    gen("streams_200_mkv", "streams200.mkv", "-i", str(tiny), *many, "-c", "copy")
    gen("streams_200_mp4", "streams200.mp4", "-i", str(tiny), *many, "-c", "copy")
    audio_maps = [arg for _ in range(70) for arg in ("-map", "0:a")]
    gen("streams_70_audio", "audio70.mka", "-i", str(good), *audio_maps, "-c", "copy")
    tiny.unlink()

    # Duration: two frames ten hours apart (declared, or only in the timestamps: MPEG-TS, a live WebM), two hours
    # apart (under the duration cap, over the gap).
    two = ("-f", "lavfi", "-i", "testsrc2=s=320x240:r=1", "-frames:v", "2", "-fps_mode", "passthrough", *x264)
    gen("duration_10h_mp4", "dur10h.mp4", *two, "-vf", "setpts=N*36000/TB")
    gen("duration_10h_mkv", "dur10h.mkv", *two, "-vf", "setpts=N*36000/TB")
    gen("duration_10h_ts", "dur10h.ts", *two, "-vf", "setpts=N*36000/TB")
    gen("frame_gap_2h", "gap2h.mkv", *two, "-vf", "setpts=N*7200/TB")
    gen("duration_10h_live_webm", "dur10h.webm", *two[:6], "-vf", "setpts=N*36000/TB", "-c:v", "libvpx-vp9",
        "-deadline", "realtime", "-live", "1")  # fmt: skip

    # Rates and channels.
    gen("frame_rate_100k", "fps100k.mkv", "-f", "lavfi", "-i", "color=gray:s=64x64:r=100000", "-frames:v", "400",
        *x264)  # fmt: skip
    put("sample_rate_768k", "rate768k.wav", _wav(1, 768_000))
    put("sample_rate_2g", "rate2g.wav", _wav(1, 2_000_000_000))
    put("channels_64", "ch64.wav", _wav(64, 48000, frames=100))
    gen("channels_64_mka", "ch64.mka", "-i", str(d / "ch64.wav"), "-c:a", "pcm_s16le")

    # Crafted and broken containers.
    data = good.read_bytes()
    at, size = _mp4_box(data, b"moov")
    put("mp4_without_moov", "nomoov.mp4", data[:at] + data[at + size :])
    mdat, _ = _mp4_box(data, b"mdat")  # before the moov: make_clip writes no faststart
    put("mp4_empty_mdat", "emptymdat.mp4", data[:mdat] + b"\x00\x00\x00\x08mdat" + data[at:])
    put("mkv_magic_then_garbage", "garbage.mkv", b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 64)
    put("ts_sync_then_garbage", "garbage.ts", b"".join(b"\x47" + bytes([i % 256]) * 187 for i in range(64)))
    put("avi_riff_then_garbage", "garbage.avi", b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(range(256)) * 16)
    put("ffconcat_as_mp4", "concat.mp4", f"ffconcat version 1.0\nfile '{secret}'\n".encode())

    # Not audio or video at all.
    gen("png_image", "picture.png", "-f", "lavfi", "-i", "testsrc2=s=64x64", "-frames:v", "1")
    gen("jpeg_image", "picture.jpg", "-f", "lavfi", "-i", "testsrc2=s=64x64", "-frames:v", "1")
    gen("gif_animated", "anim.gif", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=10", "-frames:v", "20")
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("video.mp4", good.read_bytes())
    put("zip_of_a_video", "video.zip", buf.getvalue())
    put("elf_binary", "program.mp4", b"\x7fELF\x02\x01\x01" + bytes(500))
    return files

"""Chunked encoding against sources that stress the seams between time ranges (real ffmpeg, small and short).

Each range is encoded into its own folder, as workers on different machines would, and the renditions are then
put together the way a player reads them: one init segment, then every segment in order. A seam must be
invisible: no duplicated or missing frame, evenly spaced timestamps, a keyframe at every segment start.
"""

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest

from core.hls import media_playlist
from core.media_keys import AUDIO_NAME, INIT_NAME, segment_name
from core.settings import Settings
from tests.hls_checks import first_video_packet_is_key
from tests.media import ffmpeg
from workers.pipeline import Prepared, RangeOutput, Segment, encode_audio, encode_range, prepare, transcode

SIZE = "480x270"  # two rungs (240p and the native 270p), little to encode
AAC_FRAME = 1024 / 48000


def settings(tmp_path: Path, **kw) -> Settings:
    # Small ranges, so a 10 s clip has four: 0-2 s (the first, one keyframe interval), 2-6, 6-10, the tail. The
    # fixed ladder: per-title would drop the 240p rung, barely smaller than the native 270p (a seam less to check).
    return Settings(
        data_dir=tmp_path / "data", **{"first_range_seconds": 2, "range_seconds": 4, "per_title": False, **kw}
    )


def tone(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-t", str(seconds), "-i", "sine=frequency=440:sample_rate=44100"]


def picture(seconds: float, rate: int = 30) -> list[str]:
    return ["-f", "lavfi", "-t", str(seconds), "-i", f"testsrc2=size={SIZE}:rate={rate},noise=alls=6:allf=t"]


X264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "96k"]


def cfr_with_short_tail(path: Path, noise: bool = True) -> Path:
    """10.5 s: the last range (10 s on) is half a second."""
    pic = picture(10.5) if noise else ["-f", "lavfi", "-t", "10.5", "-i", f"testsrc2=size={SIZE}:rate=30"]
    ffmpeg(*pic, *tone(10.5), *X264, *AAC, str(path))
    return path


def variable_frame_rate(path: Path) -> Path:
    """A 30 fps camera dropping every third frame (frames 1/30 s and 2/30 s apart, 20 fps on average): the rungs
    must come out at a constant 20 fps, evenly spaced across every seam."""
    ffmpeg(*picture(10.0), "-vf", r"select=not(eq(mod(n\,3)\,1))", "-fps_mode", "passthrough", *X264, "-an",
           str(path))  # fmt: skip
    return path


def long_open_gop(path: Path) -> Path:
    """Keyframes 10 s apart in an open GOP with B-frames: a range starting between them must decode from the one
    before and keep none of the frames before its start."""
    ffmpeg(*picture(12.0), *tone(12.0), *X264, "-g", "300", "-keyint_min", "300", "-sc_threshold", "0",
           "-x264-params", "open_gop=1", "-bf", "3", *AAC, str(path))  # fmt: skip
    return path


def late_audio(path: Path) -> Path:
    """Audio that starts 1.5 s after the video (and ends with it): the audio rendition still starts at 0."""
    ffmpeg(*picture(10.0), "-itsoffset", "1.5", *tone(8.5), "-map", "0:v", "-map", "1:a", *X264, *AAC, str(path))
    return path


@dataclass
class Encoded:
    prepared: Prepared
    ranges: list[RangeOutput]
    inits: dict[str, list[bytes]]  # per rung, the init segment of each range
    folders: list[Path]
    audio: list[Segment]
    audio_dir: Path | None
    source_audio_end: float = 0.0


def encode_apart(src: Path, tmp_path: Path, **kw) -> Encoded:
    """Every range in a folder of its own (as separate workers would), and the audio once."""
    s = settings(tmp_path, **kw)
    prepared = prepare(src, s)
    outputs, folders = [], []
    inits: dict[str, list[bytes]] = {r.name: [] for r in prepared.plan.renditions}
    for rng in prepared.ranges:
        folder = tmp_path / f"range{rng.index}"
        outputs.append(encode_range(src, prepared, rng, folder, s))
        folders.append(folder)
        for name in inits:
            inits[name].append((folder / name / INIT_NAME).read_bytes())
    audio: list[Segment] = []
    audio_dir = None
    if prepared.plan.audio_kbps is not None:
        reported: list[Segment] = []
        audio = encode_audio(src, prepared, tmp_path / "audio_enc", s, reported.append)
        assert reported == audio  # every segment was reported once, in order
        audio_dir = tmp_path / "audio_enc" / AUDIO_NAME
    end = 0.0
    if audio_dir is not None:
        with av.open(str(src)) as c:
            end = audio_end(list(c.decode(audio=0)))
    return Encoded(prepared, outputs, inits, folders, audio, audio_dir, end)


def rendition_bytes(enc: Encoded, name: str) -> tuple[bytes, list[bytes], list[Segment]]:
    segments, data = [], []
    for folder, out in zip(enc.folders, enc.ranges, strict=True):
        for seg in out.segments[name]:
            segments.append(seg)
            data.append((folder / name / segment_name(seg.sequence)).read_bytes())
    return enc.inits[name][0], data, segments


def decoded_video(init: bytes, segments: list[bytes], tmp_path: Path) -> list[float]:
    path = tmp_path / "joined.mp4"
    path.write_bytes(init + b"".join(segments))
    with av.open(str(path), format="mov") as c:
        return [float(f.time) for f in c.decode(video=0)]


def assert_seamless(enc: Encoded, tmp_path: Path, video_seconds: float) -> None:
    assert enc.prepared.info.duration == pytest.approx(video_seconds, abs=0.05)
    plan = enc.prepared.plan
    for r in plan.renditions:
        assert len(set(enc.inits[r.name])) == 1, f"{r.name}: the ranges' init segments differ"
        init, data, segments = rendition_bytes(enc, r.name)
        assert [s.sequence for s in segments] == list(range(len(segments)))  # global numbers, no gap
        assert all(round(s.duration) <= plan.segment_seconds for s in segments), [s.duration for s in segments]
        text = media_playlist([s.duration for s in segments], target_duration=plan.segment_seconds, complete=True)
        assert "DISCONTINUITY" not in text
        for i, seg in enumerate(data):
            assert first_video_packet_is_key(init, seg), f"{r.name} segment {i} does not start on a keyframe"
        times = decoded_video(init, data, tmp_path)
        step = 1 / Fraction(r.fps)
        assert len(times) == round(enc.prepared.info.duration * r.fps), (r.name, len(times))
        assert times[0] == pytest.approx(0, abs=1e-3)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        uneven = [(i, g) for i, g in enumerate(gaps) if abs(g - float(step)) > 1e-3]
        assert not uneven, f"{r.name}: frames not evenly spaced at {uneven[:5]}"
    if enc.audio_dir is not None:
        assert_audio_covers(enc, tmp_path)


def audio_end(frames: list[av.AudioFrame]) -> float:
    return float(frames[-1].time) + frames[-1].samples / frames[-1].sample_rate


def assert_audio_covers(enc: Encoded, tmp_path: Path) -> None:
    assert enc.audio_dir is not None
    path = tmp_path / "audio.mp4"
    data = b"".join((enc.audio_dir / segment_name(s.sequence)).read_bytes() for s in enc.audio)
    path.write_bytes((enc.audio_dir / INIT_NAME).read_bytes() + data)
    with av.open(str(path), format="mov") as c:
        frames = list(c.decode(audio=0))
    assert float(frames[0].time) == pytest.approx(0, abs=1e-3)
    # As long as the source's audio: never short, and over by at most what whole AAC frames at 48 kHz add (a
    # rendition carries no end trim) and the resampler's delay.
    assert enc.source_audio_end - AAC_FRAME <= audio_end(frames) <= enc.source_audio_end + 2 * AAC_FRAME
    assert all(round(s.duration) <= enc.prepared.plan.segment_seconds for s in enc.audio)


def test_last_range_under_a_second(tmp_path):
    enc = encode_apart(cfr_with_short_tail(tmp_path / "src.mp4"), tmp_path)
    assert [(r.start, r.end) for r in enc.prepared.ranges] == [(0, 2), (2, 6), (6, 10), (10, None)]
    assert len(enc.prepared.plan.renditions) == 2
    assert_seamless(enc, tmp_path, 10.5)


def test_variable_frame_rate(tmp_path):
    enc = encode_apart(variable_frame_rate(tmp_path / "src.mp4"), tmp_path)
    assert_seamless(enc, tmp_path, 10.0)


def test_long_open_gop(tmp_path):
    enc = encode_apart(long_open_gop(tmp_path / "src.mp4"), tmp_path)
    assert len(enc.prepared.ranges) == 4
    assert_seamless(enc, tmp_path, 12.0)


def test_audio_starting_late(tmp_path):
    enc = encode_apart(late_audio(tmp_path / "src.mp4"), tmp_path)
    assert enc.prepared.info.has_audio
    assert_seamless(enc, tmp_path, 10.0)


def test_chunked_and_one_range_encodes_agree(tmp_path):
    """Same frames and about the same bits. Ranges this short (2 and 4 s) cost a few % more than a real encode's
    (60 s): each starts x264's lookahead cold and ends without the future frames its mb-tree uses."""
    src = cfr_with_short_tail(tmp_path / "src.mp4", noise=False)
    chunked = transcode(src, tmp_path / "chunked", settings(tmp_path))
    whole = transcode(src, tmp_path / "whole", settings(tmp_path, range_seconds=0))
    for a, b in zip(chunked.variants, whole.variants, strict=True):
        assert a.name == b.name
        assert a.duration == pytest.approx(b.duration, abs=0.05)
        size_a = sum(p.stat().st_size for p in (tmp_path / "chunked" / a.name).glob("seg_*.m4s"))
        size_b = sum(p.stat().st_size for p in (tmp_path / "whole" / b.name).glob("seg_*.m4s"))
        assert size_a == pytest.approx(size_b, rel=0.10), a.name
        if a.name != AUDIO_NAME:
            count = [
                len(decoded_video((d / a.name / INIT_NAME).read_bytes(), segs(d / a.name), tmp_path))
                for d in (tmp_path / "chunked", tmp_path / "whole")
            ]
            assert count[0] == count[1] == round(10.5 * a.frame_rate)


def segs(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("seg_*.m4s"))]

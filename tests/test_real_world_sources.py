"""Real-world sources through the real ffmpeg (issue 12, finding 10): interlaced camcorder and broadcast footage,
phone HDR (PQ and HLG), several audio languages, cover art, 8 kHz mono, 16:10 screen captures at 15 fps and
long-GOP sources. Each source is generated small and short, transcoded by workers.pipeline.transcode into a
directory, and the HLS output is read back the way a player would."""

import array
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import httpx
import m3u8
import pytest

from core.media_keys import MASTER_NAME, MEDIA_PLAYLIST
from core.probe import HdrTransfer, probe
from core.settings import Settings
from tests.conftest import upload, wait_status
from tests.hls_checks import (
    Segment,
    Variant,
    decoded_stream_facts,
    fetch_ladder,
    first_video_packet_is_key,
)
from tests.media import (
    idet,
    make_clip,
    make_cover_art,
    make_hdr,
    make_interlaced,
    make_multi_language,
    make_sdr_reference,
    psnr,
)
from workers.pipeline import TranscodeResult, transcode

pytestmark = pytest.mark.slow  # each test encodes a few seconds of video with the real ffmpeg


def run(src: Path, tmp_path: Path, **settings) -> tuple[TranscodeResult, list[Variant]]:
    out = tmp_path / "hls"
    # The fixed ladder: these tests are about how a source is read (fields, HDR, tracks), not which rungs a
    # per-title decision keeps (tests/test_pertitle*.py); a synthetic source may lose a rung to it.
    settings = {"per_title": False, **settings}
    result = transcode(src, out, Settings(data_dir=tmp_path / "data", **settings))
    return result, local_ladder(out)


def audio_rendition(tmp_path: Path) -> Variant:
    """The one audio rendition every video variant plays beside its pictures (the master's AUDIO group)."""
    out = tmp_path / "hls"
    (media,) = [m for m in m3u8.load(str(out / MASTER_NAME)).media if m.type == "AUDIO"]
    return rendition(out, media.uri, None)


def assert_plays(variants: list[Variant], duration: float, *, min_variants: int) -> None:
    """What tests/hls_checks.assert_playable_ladder checks, with the decoded span measured from the first
    timestamp (ffmpeg shifts the whole presentation by the encoder's B-frame delay: 2 frames, 0.13 s at 15 fps)
    and segment lengths held to the RFC's rounding rule."""
    assert len(variants) >= min_variants, [v.uri for v in variants]
    for v in variants:
        info = v.stream_info
        assert info.codecs and "avc1" in info.codecs and "mp4a.40.2" in info.codecs, (v.uri, info.codecs)
        for i, seg in enumerate(v.segments):
            # RFC 8216 4.3.3.1: each EXTINF, rounded to the nearest integer, is <= EXT-X-TARGETDURATION.
            assert round(seg.duration) <= v.target_duration, (v.uri, i, seg.duration)
            assert first_video_packet_is_key(v.init, seg.data), f"{v.uri} segment {i} does not start on a keyframe"
        assert abs(v.duration - duration) <= 0.1, (v.uri, v.duration, duration)
        with rendition_file(v) as path, av.open(str(path), format="mov") as c:
            times = [
                (float(p.pts * p.time_base), float((p.pts + p.duration) * p.time_base))
                for p in c.demux()
                if p.size and p.pts is not None
            ]
            assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == tuple(
                info.resolution
            )
        span = max(end for _, end in times) - min(start for start, _ in times)
        assert abs(span - duration) <= 0.1, (v.uri, span, duration)


def local_ladder(out: Path) -> list[Variant]:
    """The published files, read as tests/hls_checks.fetch_ladder reads them over HTTP."""
    master = m3u8.load(str(out / MASTER_NAME))
    return [rendition(out, v.uri, v.stream_info) for v in master.playlists]


def rendition(out: Path, uri: str, stream_info: object) -> Variant:
    media_dir = out / Path(uri).parent
    media = m3u8.load(str(media_dir / MEDIA_PLAYLIST))
    init = (media_dir / media.segments[0].init_section.uri).read_bytes()
    segments = [Segment(s.duration, (media_dir / s.uri).read_bytes(), httpx.Headers()) for s in media.segments]
    return Variant(uri, stream_info, media.target_duration, init, httpx.Headers(), segments)


@contextmanager
def rendition_file(variant: Variant) -> Iterator[Path]:
    """One rendition as a plain fragmented MP4 (init + every segment), for ffmpeg filters and PyAV."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rendition.mp4"
        path.write_bytes(variant.init + b"".join(s.data for s in variant.segments))
        yield path


def keyframe_times(variant: Variant) -> list[float]:
    with rendition_file(variant) as path, av.open(str(path), format="mov") as c:
        stream = c.streams.video[0]
        return [
            round(float(p.pts * p.time_base), 3)
            for p in c.demux(stream)
            if p.size and p.is_keyframe and p.pts is not None
        ]


def video_frames(variant: Variant) -> int:
    with rendition_file(variant) as path, av.open(str(path), format="mov") as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def audio_facts(variant: Variant) -> tuple[int, int, float]:
    """(sample rate, channels, dominant frequency in Hz from zero crossings of the first channel)."""
    with rendition_file(variant) as path, av.open(str(path), format="mov") as c:
        stream = c.streams.audio[0]
        samples = array.array("f")
        for frame in c.decode(stream):
            assert frame.format.name == "fltp"
            samples.frombytes(bytes(frame.planes[0])[: frame.samples * 4])
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
    body = samples[len(samples) // 10 : -len(samples) // 10]  # the encoder's priming and tail are not the tone
    crossings = sum(1 for a, b in zip(body, body[1:], strict=False) if (a < 0) != (b < 0))
    return rate, channels, crossings / 2 / (len(body) / rate)


# --- interlaced ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["camcorder.mp4", "broadcast.ts"], ids=["H.264 TFF", "MPEG-2 TS BFF"])
def test_interlaced_footage_is_deinterlaced_at_the_field_rate(name, tmp_path):
    src = make_interlaced(tmp_path / name)
    interlaced, progressive = idet(src)
    assert interlaced > 10 * max(progressive, 1), (interlaced, progressive)  # the source really is combed
    info = probe(src)
    assert info.interlaced and info.fps == 25

    result, variants = run(src, tmp_path)
    assert_plays(variants, info.duration, min_variants=3)
    top = variants[0]
    assert tuple(top.stream_info.resolution) == (720, 576)
    # 25 interlaced frames are 50 fields a second: each field becomes a frame, as broadcasters deinterlace.
    assert top.stream_info.frame_rate == 50 and result.plan.renditions[0].fps == 50
    assert abs(video_frames(top) - 50 * info.duration) <= 1
    for v in variants:
        with rendition_file(v) as path:
            combed, clean = idet(path)
        assert combed <= 0.05 * (combed + clean), (v.uri, combed, clean)


def test_progressive_source_is_not_deinterlaced(tmp_path):
    src = make_clip(tmp_path / "p.mp4", size="640x360", rate=25, seconds=2, channels=2)
    info = probe(src)
    assert not info.interlaced
    result, variants = run(src, tmp_path)
    assert not result.plan.deinterlace
    assert variants[0].stream_info.frame_rate == 25 and video_frames(variants[0]) == 50


# --- HDR ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transfer", "max_height"),
    [(HdrTransfer.pq, 1080), (HdrTransfer.hlg, 1080), (HdrTransfer.pq, 240)],
    ids=["PQ", "HLG", "PQ above the top rung"],  # the last is scaled to the top rung before tone mapping
)
def test_phone_hdr_is_tone_mapped_to_bt709_sdr(transfer, max_height, tmp_path):
    reference = make_sdr_reference(tmp_path / "sdr.mp4")  # 640x360, what the HDR source should look like
    src = make_hdr(reference, tmp_path / "hdr.mp4", transfer.value)
    info = probe(src)
    assert info.hdr is transfer
    with av.open(str(src)) as c:
        first = next(c.decode(video=0))
        assert first.format.name == "yuv420p10le"
        if transfer is HdrTransfer.pq:  # HDR10: the static metadata a PQ phone video carries
            assert av.sidedata.sidedata.Type.MASTERING_DISPLAY_METADATA in {sd.type for sd in first.side_data}
    # Shown as if it were SDR (what the ladder did before), the picture is flat and its colours are off.
    assert psnr(src, reference) < 18

    result, variants = run(src, tmp_path, ladder_max_height=max_height)
    assert result.plan.tonemap is transfer
    assert_plays(variants, info.duration, min_variants=1 if max_height == 240 else 2)
    for v in variants:
        with rendition_file(v) as path, av.open(str(path), format="mov") as c:
            ctx = c.streams.video[0].codec_context
            frame = next(c.decode(video=0))
        assert ctx.pix_fmt == "yuv420p" and ctx.profile == "High", (v.uri, ctx.pix_fmt, ctx.profile)  # 8-bit
        tags = (frame.color_primaries, frame.color_trc, frame.colorspace)
        assert tags == (1, 1, 1), f"{v.uri}: not tagged BT.709: {tags}"  # 1 = BT.709 in all three tables
        assert b"colrnclx\x00\x01\x00\x01\x00\x01" in v.init  # the container says so too
        # No HDR10 metadata left behind to make a player switch the screen to HDR for an SDR picture.
        hdr_data = {av.sidedata.sidedata.Type.MASTERING_DISPLAY_METADATA, av.sidedata.sidedata.Type.CONTENT_LIGHT_LEVEL}
        assert not {sd.type for sd in frame.side_data} & hdr_data
        assert b"mdcv" not in v.init and b"clli" not in v.init
    top = variants[0]
    size = (640, 360) if max_height == 1080 else (426, 240)
    assert tuple(top.stream_info.resolution) == size
    with rendition_file(top) as path:
        assert psnr(path, reference, size) > 22  # close to the SDR picture the HDR one was made from


# --- audio --------------------------------------------------------------------------------------------------


def test_several_audio_languages_publish_the_default_track(tmp_path):
    src = make_multi_language(tmp_path / "film.mkv")  # French 440 Hz first, English 1000 Hz marked default
    info = probe(src)
    assert info.audio_stream == 2 and info.audio_language == "eng"
    _, variants = run(src, tmp_path)
    assert_plays(variants, info.duration, min_variants=2)
    rate, channels, hz = audio_facts(audio_rendition(tmp_path))
    assert (rate, channels) == (48000, 2)
    assert abs(hz - 1000) < 50, f"the audio plays the {hz:.0f} Hz track, not the default (English) one"


@pytest.mark.parametrize("video", [True, False], ids=["with video", "audio only"])
def test_8_khz_mono_is_published_as_48_khz_stereo_aac(video, tmp_path):
    name = "cctv.mp4" if video else "voice.m4a"
    src = make_clip(tmp_path / name, size="320x240", rate=15, seconds=3, channels=1, sample_rate=8000, video=video)
    info = probe(src)
    assert info.audio_channels == 1 and info.audio_sample_rate == 8000
    result, variants = run(src, tmp_path)
    assert result.plan.audio_only is not video
    for v in variants:
        assert "mp4a.40.2" in v.stream_info.codecs
    for v in [audio_rendition(tmp_path)] if video else variants:
        rate, channels, hz = audio_facts(v)
        assert (rate, channels) == (48000, 2) and abs(hz - 440) < 30, (v.uri, rate, channels, hz)
        assert abs(v.duration - info.duration) <= 0.1
        # The decoder keeps the padding of the source's last AAC frame (1024 samples = 128 ms at 8 kHz): the
        # sound may run that much past the picture, never short of it.
        decoded = decoded_stream_facts(v)["duration"]
        assert info.duration - 0.05 <= decoded <= info.duration + 1024 / 8000 + 0.02, (v.uri, decoded)
    if video:
        for v in variants:
            assert all(s.duration <= v.target_duration + 1e-3 for s in v.segments)
            assert all(first_video_packet_is_key(v.init, s.data) for s in v.segments)


# --- cover art ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["song.mp3", "song.m4a"])
def test_album_cover_is_not_a_video(name, tmp_path):
    src = make_cover_art(tmp_path / name)
    info = probe(src)
    assert not info.has_video and info.has_audio
    result, variants = run(src, tmp_path)
    assert result.plan.audio_only and [v.uri for v in variants] == ["audio/index.m3u8"]
    with rendition_file(variants[0]) as path, av.open(str(path), format="mov") as c:
        assert not c.streams.video and len(c.streams.audio) == 1
    assert variants[0].stream_info.codecs == "mp4a.40.2"
    assert abs(variants[0].duration - info.duration) <= 0.1


def test_video_with_a_cover_image_publishes_the_film_only(tmp_path):
    src = make_cover_art(tmp_path / "clip.mp4", with_video=True)  # streams: 640x360 film, audio, 600x600 JPEG
    info = probe(src)
    assert (info.video_stream, info.display_width, info.display_height, info.fps) == (0, 640, 360, 25)
    _, variants = run(src, tmp_path)
    assert_plays(variants, info.duration, min_variants=2)
    assert tuple(variants[0].stream_info.resolution) == (640, 360) and variants[0].stream_info.frame_rate == 25
    assert video_frames(variants[0]) == 75
    with rendition_file(variants[0]) as path, av.open(str(path), format="mov") as c:
        assert len(c.streams.video) == 1 and not c.streams.audio  # the audio is its own rendition
    with rendition_file(audio_rendition(tmp_path)) as path, av.open(str(path), format="mov") as c:
        assert not c.streams.video and len(c.streams.audio) == 1


# --- screen capture and long GOP ----------------------------------------------------------------------------


def test_16x10_screen_capture_at_15_fps(tmp_path):
    src = make_clip(tmp_path / "screen.mp4", size="1280x800", rate=15, seconds=3, channels=2)  # a WXGA laptop
    info = probe(src)
    result, variants = run(src, tmp_path)
    assert_plays(variants, info.duration, min_variants=4)
    grids = set()
    for v in variants:
        w, h = v.stream_info.resolution
        assert w % 2 == 0 and h % 2 == 0 and abs(Fraction(w, h) - Fraction(16, 10)) < 0.02, (v.uri, w, h)
        assert v.stream_info.frame_rate == 15
        assert video_frames(v) == 45, v.uri  # 3 s at 15 fps: no frame invented or dropped
        grids.add(tuple(keyframe_times(v)))
    assert [tuple(v.stream_info.resolution) for v in variants] == [
        (1280, 800),
        (1152, 720),
        (768, 480),
        (576, 360),
        (384, 240),
    ]
    # One keyframe grid, every gop_seconds (30 frames at 15 fps), identical in every rung: players switch on
    # aligned segments. (The grid starts at the B-frame delay by which ffmpeg shifts the whole presentation.)
    assert len(grids) == 1, grids
    (grid,) = grids
    assert len(grid) == 2 and round(grid[1] - grid[0], 3) == result.plan.gop_seconds == 2, grid


def test_long_gop_source_still_gets_short_keyframe_aligned_segments(tmp_path):
    src = make_clip(
        tmp_path / "longgop.mp4", size="640x360", rate=30, seconds=6, channels=2,
        extra=("-g", "600", "-keyint_min", "600", "-sc_threshold", "0"),
    )  # fmt: skip
    with av.open(str(src)) as c:
        assert sum(1 for p in c.demux(video=0) if p.is_keyframe) == 1  # one keyframe in 6 s
    info = probe(src)
    result, variants = run(src, tmp_path)
    assert_plays(variants, info.duration, min_variants=2)  # segments start on keyframes, <= target
    for v in variants:
        assert v.target_duration <= result.plan.segment_seconds
        # The first range (4 s) in keyframe-interval segments for a fast start, then the ordinary length.
        assert [round(s.duration, 3) for s in v.segments] == [2.0, 2.0, 2.0], v.uri
        assert all(first_video_packet_is_key(v.init, s.data) for s in v.segments)


# --- the whole path ---------------------------------------------------------------------------------------------


def test_real_world_sources_publish_through_the_stack(stack, tmp_path):
    """Upload, API checks, Celery worker, Azurite, playlists as a player fetches them: an album with its cover,
    an interlaced broadcast and an HLG phone video each come out as a viewer expects."""
    song = make_cover_art(tmp_path / "song.mp3")
    broadcast = make_interlaced(tmp_path / "broadcast.ts")
    phone = make_hdr(make_sdr_reference(tmp_path / "sdr.mp4"), tmp_path / "phone.mp4", HdrTransfer.hlg.value)
    with stack.client() as client:
        ids = [upload(client, path).json()["id"] for path in (song, broadcast, phone)]
        song_v, broadcast_v, phone_v = (wait_status(client, video_id) for video_id in ids)
        assert [v["status"] for v in (song_v, broadcast_v, phone_v)] == ["ready"] * 3, [
            v["error"] for v in (song_v, broadcast_v, phone_v)
        ]
        assert song_v["has_video"] is False
        assert [(r["name"], r["codecs"]) for r in song_v["renditions"]] == [("audio", "mp4a.40.2")]
        _, broadcast_ladder = fetch_ladder(client, stack.url, broadcast_v["playback_url"])
        _, phone_ladder = fetch_ladder(client, stack.url, phone_v["playback_url"])
    top = broadcast_ladder[0]
    assert top.stream_info.frame_rate == 50
    with rendition_file(top) as path:
        combed, clean = idet(path)
    assert combed <= 0.05 * (combed + clean), (combed, clean)
    for v in phone_ladder:
        with rendition_file(v) as path, av.open(str(path), format="mov") as c:
            frame = next(c.decode(video=0))
        assert (frame.format.name, frame.color_primaries, frame.color_trc, frame.colorspace) == ("yuv420p", 1, 1, 1)

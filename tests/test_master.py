"""finalize_master / master_problems on master playlists shaped like the ones ffmpeg's HLS muxer writes."""

import m3u8
import pytest

from workers.master import VariantFacts, finalize_master, master_problems, uri_for

# What ffmpeg writes for a CRF ladder: BANDWIDTH guessed from maxrate (or nonsense), CODECS missing on
# some variants, never FRAME-RATE, and a variant it had no bitrate for left out entirely (240p here).
FFMPEG_MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-STREAM-INF:BANDWIDTH=140800,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"
720p/index.m3u8

#EXT-X-STREAM-INF:BANDWIDTH=140800,RESOLUTION=640x360
360p/index.m3u8

"""

FACTS = [
    VariantFacts(
        name="720p",
        bandwidth=3_051_234,
        average_bandwidth=2_004_321,
        codecs="avc1.64001f,mp4a.40.2",
        width=1280,
        height=720,
        frame_rate=60000 / 1001,
        duration=30.0,
    ),
    VariantFacts(
        name="360p",
        bandwidth=901_000,
        average_bandwidth=650_500,
        codecs="avc1.64001e,mp4a.40.2",
        width=640,
        height=360,
        frame_rate=30.0,
        duration=30.0,
    ),
    VariantFacts(
        name="240p",
        bandwidth=420_000,
        average_bandwidth=300_000,
        codecs="avc1.640015,mp4a.40.2",
        width=426,
        height=240,
        frame_rate=30.0,
        duration=30.0,
    ),
]

AUDIO_MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-STREAM-INF:BANDWIDTH=0
audio/index.m3u8

"""
AUDIO_FACTS = [VariantFacts(name="audio", bandwidth=140_000, average_bandwidth=131_000, codecs="mp4a.40.2")]


def variants(text: str) -> dict[str, m3u8.model.StreamInfo]:
    playlist = m3u8.loads(text)
    assert playlist.is_variant
    return {p.uri: p.stream_info for p in playlist.playlists}


def test_ffmpeg_master_is_reported_broken():
    problems = master_problems(FFMPEG_MASTER)
    assert "360p/index.m3u8: no CODECS" in problems
    assert "720p/index.m3u8: no FRAME-RATE" in problems
    # 360p has no CODECS, so whether it is video cannot be told; 720p has a RESOLUTION.
    assert not any("RESOLUTION" in p for p in problems)
    assert not any("BANDWIDTH" in p for p in problems)


def test_finalize_rewrites_every_variant_from_measured_facts():
    fixed = finalize_master(FFMPEG_MASTER, FACTS)
    got = variants(fixed)
    assert set(got) == {uri_for(f.name) for f in FACTS}
    for fact in FACTS:
        info = got[uri_for(fact.name)]
        assert info.bandwidth == fact.bandwidth
        assert info.average_bandwidth == fact.average_bandwidth
        assert info.codecs == fact.codecs
        assert info.resolution == (fact.width, fact.height)
        assert info.frame_rate == pytest.approx(fact.frame_rate, abs=0.001)
    assert "BANDWIDTH=140800" not in fixed
    assert "FRAME-RATE=59.94," in fixed  # 60000/1001 written with 3 decimals at most
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in fixed


def test_finalized_master_has_no_problems():
    assert master_problems(finalize_master(FFMPEG_MASTER, FACTS)) == []


def test_variant_ffmpeg_left_out_is_added():
    assert "240p/index.m3u8" not in FFMPEG_MASTER
    fixed = finalize_master(FFMPEG_MASTER, FACTS)
    uris = [p.uri for p in m3u8.loads(fixed).playlists]
    assert uris[:2] == ["720p/index.m3u8", "360p/index.m3u8"]  # ffmpeg's order kept
    assert uris.count("240p/index.m3u8") == 1
    assert variants(fixed)["240p/index.m3u8"].resolution == (426, 240)


def test_finalize_is_idempotent():
    once = finalize_master(FFMPEG_MASTER, FACTS)
    assert finalize_master(once, FACTS) == once


def test_master_listing_a_variant_that_was_not_produced_is_rejected():
    with pytest.raises(ValueError, match="360p/index.m3u8"):
        finalize_master(FFMPEG_MASTER, [f for f in FACTS if f.name != "360p"])


def test_audio_only_master_needs_no_resolution_or_frame_rate():
    assert master_problems(AUDIO_MASTER) == ["audio/index.m3u8: no BANDWIDTH", "audio/index.m3u8: no CODECS"]
    fixed = finalize_master(AUDIO_MASTER, AUDIO_FACTS)
    info = variants(fixed)["audio/index.m3u8"]
    assert (info.bandwidth, info.codecs) == (140_000, "mp4a.40.2")
    assert info.resolution is None and info.frame_rate is None
    assert master_problems(fixed) == []


def test_video_variant_without_frame_rate_stays_reported():
    facts = [f if f.name != "360p" else VariantFacts(**{**f.__dict__, "frame_rate": None}) for f in FACTS]
    assert master_problems(finalize_master(FFMPEG_MASTER, facts)) == ["360p/index.m3u8: no FRAME-RATE"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["master lists no variants"]),
        ("#EXTM3U\n", ["master lists no variants"]),
        # A media playlist where a master was expected.
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg_00000.m4s\n#EXT-X-ENDLIST\n",
            ["master lists no variants"],
        ),
        (
            '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=0,CODECS="avc1.64001f",RESOLUTION=1280x720,FRAME-RATE=30\n'
            "720p/index.m3u8\n",
            ["720p/index.m3u8: no BANDWIDTH"],
        ),
        (
            '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.64001f,mp4a.40.2",FRAME-RATE=30\n'
            "720p/index.m3u8\n",
            ["720p/index.m3u8: no RESOLUTION"],
        ),
        (
            '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.64001f",RESOLUTION=1280x720,FRAME-RATE=30\n'
            "720p/index.m3u8\n",
            [],
        ),
    ],
    ids=["empty", "header only", "media playlist", "zero bandwidth", "no resolution", "complete"],
)
def test_master_problems(text, expected):
    assert master_problems(text) == expected


def test_variant_without_bandwidth_attribute_is_reported_not_crashed():
    text = '#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1280x720,CODECS="avc1.64001f"\n720p/index.m3u8\n'
    assert master_problems(text) == ["master has a variant with no BANDWIDTH"]

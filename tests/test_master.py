"""core.hls.master_playlist / master_problems: the master a chunked encode publishes, checked the way players
read it (every variant complete, the one audio group referenced and present)."""

import m3u8
import pytest

from core.hls import AudioEntry, VariantEntry, master_playlist, master_problems, uri_for

FACTS = [
    VariantEntry("720p", 3_051_234, 2_004_321, "avc1.64001f", 1280, 720, 60000 / 1001),
    VariantEntry("360p", 901_000, 650_500, "avc1.64001e", 640, 360, 30.0),
    VariantEntry("240p", 420_000, 300_000, "avc1.640015", 426, 240, 30.0),
]
AUDIO = AudioEntry(bandwidth=140_000, average_bandwidth=131_000)
MASTER = master_playlist(FACTS, AUDIO)


def variants(text: str) -> dict[str, m3u8.model.StreamInfo]:
    playlist = m3u8.loads(text)
    assert playlist.is_variant
    return {p.uri: p.stream_info for p in playlist.playlists}


def test_every_rung_is_a_complete_variant_that_plays_the_audio_group():
    assert master_problems(MASTER) == []
    got = variants(MASTER)
    assert list(got) == [uri_for(f.name) for f in FACTS]  # highest first, as planned
    for fact in FACTS:
        info = got[uri_for(fact.name)]
        # Players budget for video and audio together: both figures include the audio rendition's.
        assert info.bandwidth == fact.bandwidth + AUDIO.bandwidth
        assert info.average_bandwidth == fact.average_bandwidth + AUDIO.average_bandwidth
        assert info.codecs == f"{fact.codecs},mp4a.40.2"
        assert info.resolution == (fact.width, fact.height)
        assert info.frame_rate == round(fact.frame_rate, 3)
        assert info.audio == "audio"
    assert m3u8.loads(MASTER).is_independent_segments


def test_one_default_audio_rendition():
    (media,) = m3u8.loads(MASTER).media
    assert (media.type, media.group_id, media.default, media.autoselect, media.uri, media.channels) == (
        "AUDIO", "audio", "YES", "YES", "audio/index.m3u8", "2"
    )  # fmt: skip


def test_audio_only_source_is_one_audio_variant():
    text = master_playlist([], AUDIO)
    assert master_problems(text) == []
    playlist = m3u8.loads(text)
    assert not playlist.media
    (only,) = playlist.playlists
    assert (only.uri, only.stream_info.codecs, only.stream_info.bandwidth) == ("audio/index.m3u8", "mp4a.40.2", 140_000)
    assert only.stream_info.resolution is None


def test_silent_video_has_no_audio_group():
    text = master_playlist(FACTS[:1], None)
    assert master_problems(text) == []
    assert not m3u8.loads(text).media
    assert variants(text)["720p/index.m3u8"].codecs == "avc1.64001f"
    assert "AUDIO=" not in text


def test_nothing_to_list_is_refused():
    with pytest.raises(ValueError):
        master_playlist([], None)


def test_variant_pointing_at_a_missing_audio_group_is_reported():
    text = MASTER.replace('GROUP-ID="audio"', 'GROUP-ID="other"')
    assert master_problems(text) == [f"{uri_for(f.name)}: AUDIO group 'audio' has no rendition" for f in FACTS]


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

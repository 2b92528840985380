"""core.hls.media_playlist and bandwidths: the rendition playlists written from segment facts (pure)."""

import m3u8
import pytest

from core.hls import bandwidths, media_playlist


def test_complete_playlist_is_vod_with_endlist_and_numbered_segments():
    text = media_playlist([2.0, 2.0, 4.0, 1.5], target_duration=4, complete=True)
    playlist = m3u8.loads(text)
    assert playlist.playlist_type == "vod" and playlist.is_endlist
    assert playlist.target_duration == 4 and playlist.media_sequence == 0
    assert playlist.is_independent_segments and playlist.version == 7
    assert [s.uri for s in playlist.segments] == ["seg_00000.m4s", "seg_00001.m4s", "seg_00002.m4s", "seg_00003.m4s"]
    assert [s.duration for s in playlist.segments] == [2.0, 2.0, 4.0, 1.5]
    assert playlist.segment_map[0].uri == "init.mp4"
    assert "#EXT-X-DISCONTINUITY" not in text  # ranges join seamlessly: one timeline, one init


def test_growing_playlist_is_an_event_playlist_without_endlist():
    """While the video encodes, players may play and seek up to the end of what is listed, and poll for more."""
    playlist = m3u8.loads(media_playlist([2.0, 2.0], target_duration=4, complete=False))
    assert playlist.playlist_type == "event" and not playlist.is_endlist
    assert len(playlist.segments) == 2


def test_first_sequence_numbers_the_segments():
    playlist = m3u8.loads(media_playlist([4.0], first_sequence=7, target_duration=4, complete=False))
    assert playlist.media_sequence == 7 and playlist.segments[0].uri == "seg_00007.m4s"


def test_aac_segments_a_frame_longer_than_the_target_are_fine_but_a_long_segment_is_refused():
    media_playlist([4.010667, 3.989333], target_duration=4, complete=True)  # rounds to 4, as the spec says
    with pytest.raises(ValueError, match="exceeds the target duration"):
        media_playlist([4.0, 4.6], target_duration=4, complete=True)


def test_bandwidths_are_the_peak_and_average_bit_rates():
    peak, average = bandwidths([500_000, 1_000_000, 100_000], [4.0, 4.0, 0.4])
    assert peak == 2_000_000  # the 4 s segment of 1 MB
    assert average == pytest.approx(1_600_000 * 8 / 8.4, abs=1)


def test_a_short_tail_segment_does_not_set_the_peak():
    peak, average = bandwidths([400_000, 100_000], [4.0, 0.1])  # 8 Mb/s over 0.1 s is a rounding artefact
    assert peak == average < 1_000_000  # never below the average, which a player must sustain


def test_bandwidths_need_segments():
    with pytest.raises(ValueError):
        bandwidths([], [])

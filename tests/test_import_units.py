"""Pure parts of imports from a URL: the download's limits, names and keys, the playlist refusal."""

import uuid
from pathlib import Path

import pytest

from core.errors import Refused
from core.fetch import FetchFailed, FetchLimits, RateWindow, declared_too_large
from core.media_keys import imported_source_key, media_prefix, source_key
from core.settings import Settings
from core.sniff import sniff_demuxer
from ingest.imports import url_file_name
from schemas.tables import FailureKind
from tests.import_server import PLAYLIST

LIMITS = FetchLimits(max_bytes=1000, timeout_seconds=100, min_bytes_per_second=10, window_seconds=5)


def _kind(window: RateWindow, now: float, received: int) -> FailureKind | None:
    try:
        window.check(now, received)
    except FetchFailed as exc:
        return exc.kind
    return None


def test_a_download_is_never_too_slow_before_a_whole_window_has_passed():
    window = RateWindow(LIMITS, start=0.0)
    assert _kind(window, 1.0, 1) is None
    assert _kind(window, 4.9, 2) is None  # 2 bytes in 4.9 s, but the window is 5 s
    assert _kind(window, 5.0, 3) == FailureKind.fetch_too_slow


def test_the_rate_is_the_last_windows_not_the_average_since_the_start():
    window = RateWindow(LIMITS, start=0.0)
    assert _kind(window, 1.0, 900) is None  # a fast start...
    for t in range(2, 6):
        assert _kind(window, float(t), 900 + t) is None  # ...carries the windows that include it
    assert _kind(window, 6.0, 906) == FailureKind.fetch_too_slow  # 6 bytes over the last 5 s


def test_a_steady_download_at_the_floor_passes_and_one_under_it_fails():
    steady = RateWindow(LIMITS, start=0.0)
    assert all(_kind(steady, float(t), 10 * t) is None for t in range(1, 60))
    slow = RateWindow(LIMITS, start=0.0)
    kinds = [_kind(slow, float(t), 9 * t) for t in range(1, 10)]
    assert kinds[:4] == [None] * 4 and FailureKind.fetch_too_slow in kinds


def test_a_gap_longer_than_the_window_counts_as_slow_even_after_a_burst():
    window = RateWindow(LIMITS, start=0.0)
    assert _kind(window, 5.0, 500) is None
    assert _kind(window, 20.0, 600) == FailureKind.fetch_too_slow  # 100 bytes in 15 s


def test_no_floor_means_only_size_and_time_count():
    window = RateWindow(FetchLimits(1000, 100, 0, 5), start=0.0)
    assert _kind(window, 50.0, 1) is None
    assert _kind(window, 101.0, 2) == FailureKind.fetch_timeout


def test_over_the_size_limit_and_over_the_time_limit():
    assert _kind(RateWindow(LIMITS, 0.0), 1.0, 1001) == FailureKind.fetch_too_large
    assert _kind(RateWindow(LIMITS, 0.0), 1.0, 1000) is None
    assert _kind(RateWindow(LIMITS, 0.0), 100.5, 1000) == FailureKind.fetch_timeout


def test_a_declared_length_over_the_limit_is_refused_before_any_byte():
    assert declared_too_large("1001", LIMITS)
    assert not declared_too_large("1000", LIMITS)
    assert not declared_too_large(None, LIMITS)
    assert not declared_too_large("lots", LIMITS)  # says nothing: the bytes are counted as they come


def test_limits_come_from_the_settings(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        max_upload_bytes=5_000,
        import_timeout_seconds=9,
        import_min_bytes_per_second=7,
        import_rate_window_seconds=3,
    )
    assert FetchLimits.from_settings(settings) == FetchLimits(5_000, 9, 7, 3)


def test_messages_name_the_limit():
    with pytest.raises(FetchFailed, match="under 10 bytes/s over 5 s"):
        RateWindow(LIMITS, 0.0).check(6.0, 1)
    with pytest.raises(FetchFailed, match="the limit is 1000 bytes"):
        RateWindow(LIMITS, 0.0).check(1.0, 2000)


def test_the_title_defaults_to_the_urls_file_name():
    assert url_file_name("https://example.com/media/My%20Clip.mp4?sig=1") == "My Clip.mp4"
    assert url_file_name("https://example.com/") == ""
    assert url_file_name("https://example.com") == ""


def test_each_import_attempt_stores_its_own_copy_under_the_videos_prefix():
    video, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert imported_source_key(video, a).startswith(media_prefix(video))
    assert imported_source_key(video, a) != imported_source_key(video, b)
    assert not imported_source_key(video, a).startswith(source_key(video) + "/")


def test_an_hls_playlist_is_refused_as_not_media_and_named(tmp_path: Path):
    path = tmp_path / "list.m3u8"
    path.write_bytes(b"\xef\xbb\xbf" + PLAYLIST)
    with pytest.raises(Refused) as refused:
        sniff_demuxer(path)
    assert refused.value.kind == FailureKind.refused_format
    assert "HLS playlist" in refused.value.detail

"""core.timeutil: timestamps read back from SQLite (no zone) compare with aware ones as the UTC they were."""

from datetime import UTC, datetime, timedelta, timezone

from core.timeutil import aware


def test_naive_timestamps_are_read_as_utc_and_aware_ones_are_kept():
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert aware(naive) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert aware(naive) - datetime(2026, 1, 2, 3, 4, 0, tzinfo=UTC) == timedelta(seconds=5)
    paris = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert aware(paris) is paris and aware(paris) == aware(naive)
    assert aware(None) is None

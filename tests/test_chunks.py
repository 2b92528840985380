"""plan_ranges: how a source is cut into time ranges that workers encode apart (pure, no ffmpeg)."""

import pytest

from workers.chunks import TimeRange, plan_ranges, range_label

DEFAULTS = {"segment_seconds": 4, "gop_seconds": 2, "first_range_seconds": 4, "range_seconds": 60}


def spans(ranges: tuple[TimeRange, ...]) -> list[tuple[float, float | None]]:
    return [(r.start, r.end) for r in ranges]


def assert_seamless(ranges: tuple[TimeRange, ...], duration: float) -> None:
    """Every second of the source in exactly one range, segment numbers continuing from range to range."""
    assert ranges[0].start == 0 and ranges[0].first_segment == 0
    assert [r.index for r in ranges] == list(range(len(ranges)))
    assert ranges[-1].end is None and all(r.end is not None for r in ranges[:-1])
    for a, b in zip(ranges, ranges[1:], strict=False):
        assert a.end == b.start
        assert b.first_segment == a.first_segment + a.segment_count(duration)
        assert (a.end - a.start) % a.segment_seconds == 0  # whole segments: the next one starts on the grid
    assert sum(r.length(duration) for r in ranges) == pytest.approx(duration)


def test_first_range_is_short_with_keyframe_long_segments_then_ranges_double_up_to_the_longest():
    ranges = plan_ranges(600.0, **DEFAULTS)
    assert [r.end - r.start for r in ranges[:-1]] == [4, 8, 16, 32, 60, 60, 60, 60, 60, 60, 60, 60, 28, 16, 8]
    assert ranges[0].segment_seconds == 2 and ranges[0].segment_count(600) == 2  # two segments after 4 s
    assert {r.segment_seconds for r in ranges[1:]} == {4}
    assert ranges[1].first_segment == 2 and ranges[2].first_segment == 4
    assert_seamless(ranges, 600.0)


@pytest.mark.parametrize("duration", [4.5, 12.3, 12.9, 60.0, 61.0, 125.04, 3599.97, 7200.0])
def test_any_duration_is_covered_seamlessly(duration):
    assert_seamless(plan_ranges(duration, **DEFAULTS), duration)


@pytest.mark.parametrize("duration", [600.0, 3600.0, 601.5])
def test_the_tail_tapers_so_no_worker_waits_long_for_a_last_big_range(duration):
    """Two workers finishing the tail: the last ranges halve, so the last one is two segments, not 60 s."""
    lengths = [r.length(duration) for r in plan_ranges(duration, **DEFAULTS)]
    tail = lengths[lengths.index(60.0) :]
    assert max(tail[-3:]) <= 16 and tail[-1] <= 2 * DEFAULTS["segment_seconds"]
    for done, length in enumerate(tail[:-1]):  # none longer than half of what is left when it starts
        assert length <= max(sum(tail[done:]) / 2, 2 * DEFAULTS["segment_seconds"])


def test_a_last_range_under_a_second_stays_its_own_range():
    ranges = plan_ranges(12.4, **DEFAULTS)  # 0-4, 4-12, then 0.4 s
    assert spans(ranges) == [(0, 4), (4, 12), (12, None)]
    assert ranges[-1].length(12.4) == pytest.approx(0.4) and ranges[-1].segment_count(12.4) == 1
    assert ranges[-1].first_segment == 4


def test_a_container_duration_a_hair_past_a_range_end_adds_no_empty_range():
    assert spans(plan_ranges(12.01, **DEFAULTS)) == [(0, 4), (4, None)]


@pytest.mark.parametrize("duration", [0.5, 3.0, 4.0])
def test_short_source_is_one_range_of_short_segments(duration):
    (only,) = plan_ranges(duration, **DEFAULTS)
    assert (only.start, only.end, only.first_segment, only.segment_seconds) == (0, None, 0, 2)


def test_chunking_off_is_one_range_of_ordinary_segments():
    (only,) = plan_ranges(600.0, **{**DEFAULTS, "range_seconds": 0})
    assert (only.start, only.end, only.segment_seconds) == (0, None, 4)
    assert only.segment_count(600.0) == 150


def test_lengths_stay_on_the_segment_grid_whatever_the_settings():
    ranges = plan_ranges(100.0, segment_seconds=6, gop_seconds=2, first_range_seconds=5, range_seconds=20)
    assert ranges[0].end == 4  # the first range: whole keyframe intervals
    assert [r.end - r.start for r in ranges[1:-1]] == [6, 12, 18, 18, 18, 12]  # doubling, in whole segments
    assert_seamless(ranges, 100.0)


@pytest.mark.parametrize(
    ("rng", "label"),
    [
        (TimeRange(3, 40.0, 70.0, 10, 4), "0:40–1:10"),
        (TimeRange(9, 3540.0, 3660.0, 80, 4), "59:00–1:01:00"),
        (TimeRange(4, 70.0, None, 18, 4), "1:10–end"),
    ],
)
def test_range_label_names_the_time_span_for_a_failure_reason(rng, label):
    assert range_label(rng) == label


def test_range_label_of_the_last_range_with_the_duration():
    assert range_label(TimeRange(4, 70.0, None, 18, 4), 95.5) == "1:10–1:35"

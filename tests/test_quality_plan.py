"""Measured quality, pure (workers.quality): which windows of a rung are compared with the source, the ffmpeg
argv that compares one, and what libvmaf's log says. No ffmpeg runs here (tests/test_quality_stack.py runs them).
"""

import json
from fractions import Fraction
from pathlib import Path

import pytest

from core.probe import HdrTransfer
from workers.ladder import LadderPlan, VideoRendition
from workers.quality import (
    PREROLL_SECONDS,
    Score,
    VmafLogError,
    Window,
    build_vmaf_argv,
    frame_grids,
    parse_vmaf_log,
    plan_windows,
    pooled,
    reference_size,
)

NTSC = Fraction(30000, 1001)
# A chunked 63.5 s encode (workers.chunks): 2 s segments in the 4 s first range, then 4 s segments in ranges
# of 8, 16 and 32 s, the last one short.
RANGES = [0.0, 4.0, 12.0, 28.0]
DURATIONS = [2.0, 2.0] + [4.0] * 2 + [4.0] * 4 + [4.0] * 8 + [3.5]


def _starts(durations):
    out, t = [], 0.0
    for d in durations:
        out.append(t)
        t += d
    return out


def _check_on_segments(windows, durations):
    starts = _starts(durations)
    for w in windows:
        assert w.start == pytest.approx(starts[w.first])
        assert w.length == pytest.approx(sum(durations[w.first : w.first + w.count]))
    ends = [(w.first, w.first + w.count) for w in windows]
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:], strict=False)), "windows overlap or go backwards"


def test_a_short_video_is_measured_whole_in_one_window_when_its_ranges_share_a_frame_grid():
    # 30 fps: range starts are whole numbers of frames apart, so the rung's frames are on one grid.
    whole = plan_windows(DURATIONS, RANGES, Fraction(30), full_seconds=64, sample_seconds=30)
    assert whole == (Window(0, len(DURATIONS), 0.0, 63.5, 0.0, 0.0),)


def test_at_29_97_fps_each_range_is_its_own_frame_grid_and_window():
    """Range starts 4 s apart are 119.88 frames apart: each range's rung frames start on its own start."""
    assert frame_grids(RANGES, NTSC) == RANGES
    assert frame_grids(RANGES, Fraction(30)) == [0.0] * 4
    assert frame_grids([0.0, 1001 / 30000 * 120], NTSC) == [0.0, 0.0]  # a whole number of frames apart: same grid
    windows = plan_windows(DURATIONS, RANGES, NTSC, full_seconds=64, sample_seconds=30)
    assert [(w.start, w.length, w.origin, w.seek) for w in windows] == [
        (0.0, 4.0, 0.0, 0.0),
        (4.0, 8.0, 4.0, 4.0),
        (12.0, 16.0, 12.0, 12.0),
        (28.0, 35.5, 28.0, 28.0),
    ]
    _check_on_segments(windows, DURATIONS)


@pytest.mark.parametrize("fps", [Fraction(30), NTSC, Fraction(25)])
def test_a_long_video_is_sampled_in_windows_spread_over_it_on_segment_boundaries(fps):
    durations = [2.0, 2.0] + [4.0] * 2 + [4.0] * 4 + [4.0] * 8 + [4.0] * 15 + [4.0] * 150 + [1.5]  # ~12.9 min
    ranges = [0.0, 4.0, 12.0, 28.0, 60.0] + [120.0 + 60 * i for i in range(10)]
    total = sum(durations)
    windows = plan_windows(durations, ranges, fps, full_seconds=60, sample_seconds=30)
    _check_on_segments(windows, durations)
    measured = sum(w.length for w in windows)
    assert 30 - 4 <= measured <= 30 + 4, measured
    assert windows[0].start < total / 4 and windows[-1].start + windows[-1].length > total * 3 / 4
    gaps = [b.start - a.start for a, b in zip(windows, windows[1:], strict=False)]
    assert min(gaps) > total / 8, gaps  # spread, not bunched
    for w in windows:
        # Never across a change of frame grid; the reference is read from the range start or just before.
        in_range = max(s for s in ranges if s <= w.start)
        grid = frame_grids(ranges, fps)
        assert all(
            grid[ranges.index(max(s for s in ranges if s <= t))] == w.origin
            for t in _starts(durations)[w.first : w.first + w.count]
        )
        assert w.seek == (w.start if w.start == in_range else max(in_range, w.start - PREROLL_SECONDS))


def test_sample_no_shorter_than_the_video_measures_it_whole():
    windows = plan_windows([4.0, 4.0, 2.0], [0.0], Fraction(30), full_seconds=5, sample_seconds=30)
    assert windows == (Window(0, 3, 0.0, 10.0, 0.0, 0.0),)
    assert plan_windows([], [0.0], Fraction(30), full_seconds=60, sample_seconds=30) == ()


PLAN = LadderPlan(
    renditions=(
        VideoRendition("720p", 1280, 720, Fraction(60), 4200, 8400),
        VideoRendition("360p", 640, 360, Fraction(30), 800, 1600),
    ),
    audio_kbps=128,
    segment_seconds=4,
    gop_seconds=2,
    crf=21,
    preset="veryfast",
)


def _argv(plan=PLAN, rung_index=1, window=Window(3, 2, 8.0, 8.0, 4.0, 7.0)):
    return build_vmaf_argv(
        plan, plan.renditions[rung_index], window, Path("/src/source"), "matroska", Path("/w/360p.0.mp4"),
        Path("/w/360p.0.json"), n_threads=2, max_pixels=1234, ffmpeg_exe="ffmpeg-9",
    )  # fmt: skip


def _graph(argv):
    return argv[argv.index("-filter_complex") + 1]


def _input_options(argv, name):
    """The options given to the input `name` (between the previous -i's file and its own -i)."""
    at = argv.index(f"file:{name}")
    before = [i for i, a in enumerate(argv[: at - 1]) if a == "-i"]
    start = before[-1] + 2 if before else argv.index("pipe:1") + 1
    return argv[start : at - 1]


def test_argv_reads_the_source_warily_from_the_windows_seek_on_the_rungs_frame_grid():
    argv = _argv()
    assert argv[0] == "ffmpeg-9" and argv[-3:] == ["-f", "null", "-"]
    source = _input_options(argv, "/src/source")
    assert source[source.index("-f") + 1] == "matroska"  # the sniffed demuxer, forced
    assert source[source.index("-protocol_whitelist") + 1] == "file"
    assert source[source.index("-max_pixels") + 1] == "1234"
    assert source[source.index("-ss") + 1] == "7"  # a second before the window, inside its range
    rung = _input_options(argv, "/w/360p.0.mp4")
    assert rung[rung.index("-f") + 1] == "mov" and "-ss" not in rung
    graph = _graph(argv)
    # The reference: the rung's frame rate on its range's grid (origin 4 s = 3 s before the seek), the window's
    # frames from the 120th of that grid (8 s - 4 s at 30 fps) for 8 s and one spare, at the top rung's size as the
    # encode scaled it; numbered frames on both sides.
    assert "fps=fps=30:start_time=-3" in graph
    assert "trim=end_frame=361:start_frame=120" in graph
    assert "scale=1280:720:flags=lanczos" in graph and "scale=1280:720:flags=bicubic" in graph
    assert graph.count("settb=1/30") == 2 and graph.count("setpts=N") == 2
    vmaf = graph.rsplit(";", 1)[1]
    assert vmaf.startswith("[") and "libvmaf=" in vmaf
    assert "log_fmt=json" in vmaf and "log_path=/w/360p.0.json" in vmaf and "n_threads=2" in vmaf
    assert "shortest=1" in vmaf and "model" not in vmaf  # the default model
    # libvmaf's first input is the distorted one: traced back filter by filter, it starts from the rung file.
    assert _origin(graph, vmaf[1 : vmaf.index("]")]) == "0:v:0", "the distorted side must be the rung"
    assert _origin(graph, vmaf.split("]")[1][1:]) == "1:v:0", "the reference side must be the source"


def _origin(graph: str, label: str) -> str:
    """The input a filter chain's output label comes from (each ffmpeg-python step is `[in]filter[out]`)."""
    made_from = {c.rsplit("[", 1)[1].rstrip("]"): c[1 : c.index("]")] for c in graph.split(";")[:-1]}
    while label in made_from:
        label = made_from[label]
    return label


def test_argv_at_a_range_start_seeks_exactly_there_and_from_zero_not_at_all():
    at_range = _graph_and_source(Window(2, 2, 4.0, 8.0, 4.0, 4.0))
    assert at_range[1][at_range[1].index("-ss") + 1] == "4" and "start_time=0" in at_range[0]
    from_zero = _graph_and_source(Window(0, 2, 0.0, 4.0, 0.0, 0.0))
    assert "-ss" not in from_zero[1] and "trim=end_frame=121:start_frame=0" in from_zero[0]


def _graph_and_source(window):
    argv = _argv(window=window)
    return _graph(argv), _input_options(argv, "/src/source")


def test_reference_is_the_picture_the_encode_prepared():
    interlaced = LadderPlan(**{**PLAN.__dict__, "deinterlace": True})
    assert "bwdif=" in _graph(_argv(interlaced))
    hdr = LadderPlan(**{**PLAN.__dict__, "tonemap": HdrTransfer.pq})
    assert "tonemap=" in _graph(_argv(hdr)) and "zscale=" in _graph(_argv(hdr))
    assert "bwdif" not in _graph(_argv()) and "tonemap" not in _graph(_argv())
    assert reference_size(PLAN) == (1280, 720)
    with pytest.raises(ValueError):
        build_vmaf_argv(LadderPlan(**{**PLAN.__dict__, "renditions": ()}), PLAN.renditions[0],
                        Window(0, 1, 0.0, 4.0, 0.0, 0.0), Path("/a"), "mov", Path("/b"), Path("/c"), n_threads=1,
                        max_pixels=1)  # fmt: skip


def _log(scores):
    return json.dumps(
        {
            "version": "3.0.0",
            "frames": [{"frameNum": i, "metrics": {"vmaf": s}} for i, s in enumerate(scores)],
            "pooled_metrics": {"vmaf": {"min": min(scores), "max": max(scores), "mean": sum(scores) / len(scores)}},
        }
    )


def test_parse_vmaf_log_reads_the_pooled_mean_and_frames():
    assert parse_vmaf_log(_log([90.0, 94.0, 98.0])) == Score(94.0, 3)
    for bad in ["", "{}", '{"frames": [], "pooled_metrics": {"vmaf": {"mean": 0}}}', '{"frames": [1]}', "[1, 2]"]:
        with pytest.raises(VmafLogError):
            parse_vmaf_log(bad)


def test_windows_pool_per_frame():
    assert pooled([Score(90.0, 100), Score(60.0, 50)]) == Score(80.0, 150)
    with pytest.raises(ValueError):
        pooled([])


def test_playlist_durations_that_round_still_find_their_range():
    """EXTINF durations are the encoder's, not the plan's: 3.992 s into the video is the 4 s range's start."""
    windows = plan_windows([2.002, 1.99, 4.004, 3.99], [0.0, 4.0], NTSC, full_seconds=60, sample_seconds=30)
    assert [(w.first, w.count, w.origin, w.seek) for w in windows] == [(0, 2, 0.0, 0.0), (2, 2, 4.0, 4.0)]

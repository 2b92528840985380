"""Loudness normalization, pure: ebur128's summary parsed, the gain planned, and the argvs that measure and apply it
(workers.loudness, workers.command), without running ffmpeg."""

import json
import math
import re
from pathlib import Path

import pytest

from core.probe import SourceInfo
from workers.command import build_audio_argv, build_loudness_argv
from workers.ladder import plan_ladder
from workers.loudness import (
    CODEC_MARGIN_DB,
    FULL_MEASURE_SECONDS,
    MAX_GAIN_DB,
    MAX_LIMITING_DB,
    MEASURE_WINDOWS,
    SILENCE_LUFS,
    WINDOW_SECONDS,
    Measurement,
    measure_windows,
    parse_ebur128,
    plan_level,
)

# What this build's ebur128 (peak=true, framelog=verbose) printed at the end of a measurement: the log's tail,
# after the progress lines.
REAL_SUMMARY = """\
[Parsed_ebur128_2 @ 0x7f904c001c00] Summary:

  Integrated loudness:
    I:         -35.1 LUFS
    Threshold: -45.2 LUFS

  Loudness range:
    LRA:         2.4 LU
    Threshold: -55.2 LUFS
    LRA low:   -36.3 LUFS
    LRA high:  -33.9 LUFS

  True peak:
    Peak:      -20.3 dBFS
[out#0/null @ 0x557d42de3600] video:0KiB audio:11250KiB subtitle:0KiB other streams:0KiB global headers:0KiB muxing \
overhead: unknown
size=N/A time=00:01:00.00 bitrate=N/A speed= 123x elapsed=0:00:00.48
"""

SILENT_SUMMARY = """\
[Parsed_ebur128_2 @ 0x5633] Summary:

  Integrated loudness:
    I:         -70.0 LUFS
    Threshold:   0.0 LUFS

  Loudness range:
    LRA:         0.0 LU
    Threshold:   0.0 LUFS
    LRA low:     0.0 LUFS
    LRA high:    0.0 LUFS

  True peak:
    Peak:       -inf dBFS
"""

TARGET_I, TARGET_TP = -16.0, -1.0
CEILING = TARGET_TP - CODEC_MARGIN_DB


def test_parses_the_summary_ebur128_prints():
    m = parse_ebur128(REAL_SUMMARY)
    assert (m.integrated, m.true_peak, m.lra, m.sampled, m.silent) == (-35.1, -20.3, 2.4, False, False)


def test_silence_has_no_true_peak_and_no_integrated_loudness():
    m = parse_ebur128(SILENT_SUMMARY, sampled=True)
    assert m.integrated == SILENCE_LUFS and m.true_peak is None and m.silent and m.sampled


@pytest.mark.parametrize(
    "log",
    [
        "",  # ffmpeg died before printing anything
        REAL_SUMMARY.split("  True peak:")[0],  # cut short: a partial log is no measurement
        REAL_SUMMARY.replace("Summary:", "Summry:"),
        "[Parsed_ebur128_0] t: 5.0 TARGET:-23 LUFS M: -20.1 S: -20.3 I: -20.2 LUFS LRA: 1.0 LU TPK: -3.0 dBFS",
    ],
)
def test_no_summary_is_an_error_not_a_measurement(log):
    with pytest.raises(ValueError):
        parse_ebur128(log)


def test_the_last_summary_counts():
    m = parse_ebur128(SILENT_SUMMARY + REAL_SUMMARY)
    assert m.integrated == -35.1


def test_quiet_source_is_raised_to_the_target_by_a_constant_gain():
    plan = plan_level(Measurement(-35.0, -25.0, 3.0), TARGET_I, TARGET_TP)
    assert plan.gain_db == 19.0 and not plan.limited and not plan.silent


def test_loud_source_is_lowered_to_the_target():
    plan = plan_level(Measurement(-8.0, -0.2, 4.0), TARGET_I, TARGET_TP)
    assert plan.gain_db == -8.0 and not plan.limited


def test_peaks_a_little_over_the_ceiling_are_limited_at_full_gain():
    # -30 LUFS with peaks at -17 dBTP: +14 dB puts them at -3, 1 dB over the ceiling (target_tp - codec margin).
    m = Measurement(-30.0, CEILING - 14.0 + 1.0, 6.0)
    plan = plan_level(m, TARGET_I, TARGET_TP)
    assert plan.gain_db == 14.0 and plan.limited and plan.limit_dbfs == CEILING


def test_gain_is_lowered_rather_than_limiting_hard():
    """A quiet source with loud transients: the full gain would need 10 dB of limiting (pumping); the gain is
    lowered until the limiter takes at most MAX_LIMITING_DB, and the output stays under the target."""
    m = Measurement(-30.0, CEILING - 14.0 + 10.0, 12.0)
    plan = plan_level(m, TARGET_I, TARGET_TP)
    assert plan.limited and plan.limit_dbfs == CEILING
    assert m.true_peak is not None
    assert m.true_peak + plan.gain_db - CEILING == pytest.approx(MAX_LIMITING_DB)
    assert plan.gain_db == pytest.approx(14.0 - (10.0 - MAX_LIMITING_DB))


def test_silence_stays_silent():
    plan = plan_level(Measurement(SILENCE_LUFS, None, 0.0), TARGET_I, TARGET_TP)
    assert plan.gain_db == 0.0 and plan.silent and not plan.limited
    # A faint hiss under the absolute gate: nothing passed it, nothing to normalize.
    assert plan_level(Measurement(SILENCE_LUFS, -60.0, 0.0), TARGET_I, TARGET_TP).gain_db == 0.0


def test_a_near_silent_track_is_not_raised_to_speech_level():
    plan = plan_level(Measurement(-65.0, -55.0, 1.0), TARGET_I, TARGET_TP)
    assert plan.gain_db == MAX_GAIN_DB and not plan.silent


def test_a_measurement_on_windows_always_has_the_limiter():
    """Windows may have missed the loudest peak: the limiter (idle under the ceiling) is there for it."""
    plan = plan_level(Measurement(-20.0, -12.0, 3.0, sampled=True), TARGET_I, TARGET_TP)
    assert plan.gain_db == 4.0 and plan.limited


@pytest.mark.parametrize("integrated", [-69.9, -50.0, -35.0, -23.0, -16.0, -8.0, -1.0])
@pytest.mark.parametrize("plr", [0.0, 3.0, 9.0, 15.0, 25.0])  # peak to loudness ratio
def test_the_peaks_never_need_more_than_the_limiter_may_take(integrated, plr):
    m = Measurement(integrated, integrated + plr, 5.0)
    plan = plan_level(m, TARGET_I, TARGET_TP)
    assert math.isfinite(plan.gain_db) and plan.gain_db <= TARGET_I - integrated + 1e-9
    over = integrated + plr + plan.gain_db - CEILING
    assert over <= MAX_LIMITING_DB + 1e-6
    assert plan.limited == (over > 1e-9)


def test_the_job_record_is_json_in_the_shared_format():
    record = plan_level(Measurement(SILENCE_LUFS, None, 0.0), TARGET_I, TARGET_TP).to_json()
    text = json.dumps(record, allow_nan=False)  # PostgreSQL's JSON has no -inf or NaN
    assert json.loads(text) == {
        "input_i": -70.0, "input_tp": None, "input_lra": 0.0, "target_i": -16.0, "target_tp": -1.0,
        "gain_db": 0.0, "limited": False, "silent": True, "sampled": False,
    }  # fmt: skip
    quiet = plan_level(parse_ebur128(REAL_SUMMARY), TARGET_I, TARGET_TP).to_json()
    assert (quiet["input_i"], quiet["input_tp"], quiet["input_lra"], quiet["gain_db"]) == (-35.1, -20.3, 2.4, 19.1)


def test_short_files_are_measured_whole():
    assert measure_windows(4.0) is None and measure_windows(FULL_MEASURE_SECONDS) is None


@pytest.mark.parametrize("duration", [FULL_MEASURE_SECONDS + 1, 600.0, 6 * 3600.0])
def test_long_files_are_measured_on_windows_spread_over_them(duration):
    windows = measure_windows(duration)
    assert windows is not None and len(windows) == MEASURE_WINDOWS
    assert all(w.length == WINDOW_SECONDS for w in windows)  # the same cost whatever the length
    assert windows[0].start >= 0 and windows[-1].start + windows[-1].length <= duration
    assert all(a.start + a.length <= b.start for a, b in zip(windows, windows[1:], strict=False))
    assert windows[0].start < duration / MEASURE_WINDOWS < windows[1].start  # from the start...
    assert windows[-1].start > duration * (1 - 1 / MEASURE_WINDOWS)  # ...to the end


SOURCE = SourceInfo(demuxer="mov", duration=30.0, has_video=True, has_audio=True, width=1280, height=720, fps=30)
AUDIO_ONLY = SourceInfo(demuxer="mp3", duration=30.0, has_video=False, has_audio=True, audio_channels=6)


def _opt(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


def _chain(graph: str) -> str:
    """The audio filters of a filter graph, without the stream labels ffmpeg-python numbers."""
    return re.sub(r"\[[^\]]*\]", "", graph)


@pytest.mark.parametrize("src", [SOURCE, AUDIO_ONLY], ids=["video", "audio only"])
def test_the_measurement_hears_what_the_encoder_gets(src, tmp_path: Path):
    """The same stream and the same 48 kHz stereo downmix as the audio rendition, then ebur128 into nothing."""
    plan = plan_ladder(src)
    measure = build_loudness_argv(plan, tmp_path / "src.bin", src.demuxer, None)
    encode = build_audio_argv(plan, tmp_path / "src.bin", src.demuxer, tmp_path / "hls")
    graph, encoded = _opt(measure, "-filter_complex"), _chain(_opt(encode, "-filter_complex"))
    assert _chain(graph) == f"{encoded};ebur128=framelog=verbose:peak=true"
    assert measure[-3:] == ["-f", "null", "-"]
    assert measure.count("-i") == 1 and "-ss" not in measure and "-t" not in measure
    assert _opt(measure, "-i") == _opt(encode, "-i")  # file protocol, forced demuxer: workers.command._input


def test_a_long_file_is_measured_on_its_windows_joined(tmp_path: Path):
    plan = plan_ladder(SourceInfo(**{**SOURCE.__dict__, "duration": 600.0}))
    windows = measure_windows(600.0)
    assert windows is not None
    argv = build_loudness_argv(plan, tmp_path / "src.bin", "mov", windows)
    assert argv.count("-i") == MEASURE_WINDOWS
    starts = [argv[i + 1] for i, a in enumerate(argv) if a == "-ss"]
    assert starts == [f"{w.start:g}" for w in windows]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-t"] == [f"{WINDOW_SECONDS:g}"] * MEASURE_WINDOWS
    graph = _opt(argv, "-filter_complex")
    assert f"concat=a=1:n={MEASURE_WINDOWS}:v=0" in graph and graph.count("ebur128") == 1
    assert graph.count("channel_layouts=stereo") == MEASURE_WINDOWS  # each window downmixed as the encoder's


def _level_filters(argv: list[str]) -> str:
    return _chain(_opt(argv, "-filter_complex")).split("sample_rates=48000", 1)[1]


def test_the_planned_gain_and_limiter_are_applied_after_the_downmix(tmp_path: Path):
    plan = plan_ladder(SOURCE)
    limited = plan_level(Measurement(-30.0, -8.0, 6.0), TARGET_I, TARGET_TP)
    assert limited.limit_dbfs is not None
    argv = build_audio_argv(plan, tmp_path / "src.bin", "mov", tmp_path / "hls", level=limited)
    limit = 10 ** (limited.limit_dbfs / 20)
    assert _level_filters(argv) == (f";volume={limited.gain_db:.2f}dB;alimiter=latency=1:level=0:limit={limit:.4f}")
    plain = plan_level(Measurement(-35.0, -25.0, 3.0), TARGET_I, TARGET_TP)
    argv = build_audio_argv(plan, tmp_path / "src.bin", "mov", tmp_path / "hls", level=plain)
    assert _level_filters(argv) == ";volume=19.00dB"


def test_silence_and_no_plan_leave_the_audio_untouched(tmp_path: Path):
    plan = plan_ladder(SOURCE)
    untouched = build_audio_argv(plan, tmp_path / "src.bin", "mov", tmp_path / "hls")
    silent = plan_level(Measurement(SILENCE_LUFS, None, 0.0), TARGET_I, TARGET_TP)
    assert build_audio_argv(plan, tmp_path / "src.bin", "mov", tmp_path / "hls", level=silent) == untouched
    assert _level_filters(untouched) == ""

"""Loudness normalization with real ffmpeg and no services (`streamify transcode`, workers.pipeline.transcode):
every source's published audio rendition, decoded as a player reads it, measured by ebur128 apart from the
product's own measurement."""

from pathlib import Path

import pytest

from core.media_keys import AUDIO_NAME
from core.settings import Settings
from schemas.tables import FailureKind
from tests.loudness import between_clicks, ebur128, make_at_level, make_silent, momentary, rendition_file
from workers import pipeline
from workers.command import build_loudness_argv
from workers.loudness import FULL_MEASURE_SECONDS, MAX_LIMITING_DB

pytestmark = pytest.mark.slow

TARGET, CEILING = -16.0, -1.0


def _transcode(src: Path, tmp_path: Path, **kw) -> tuple[pipeline.TranscodeResult, Path]:
    settings = Settings(data_dir=tmp_path / "data", **kw)
    out = tmp_path / "out"
    result = pipeline.transcode(src, out, settings)
    return result, rendition_file(out / AUDIO_NAME, tmp_path / "published.mp4")


@pytest.mark.parametrize(
    ("level", "video"), [(-35.0, True), (-8.0, False)], ids=["quiet video -35 LUFS", "loud audio only -8 LUFS"]
)
def test_quiet_and_loud_sources_come_out_at_the_target(level, video, tmp_path):
    src = make_at_level(tmp_path / ("src.mkv" if video else "src.flac"), level, video=video)
    source = ebur128(src)
    assert abs(source.integrated - level) < 0.5  # the source is what the test says it is

    result, published = _transcode(src, tmp_path)

    out = ebur128(published)
    assert abs(out.integrated - TARGET) <= 1.0, out
    assert out.true_peak is not None and out.true_peak <= CEILING, out
    assert result.loudness is not None
    assert result.loudness["input_i"] == pytest.approx(source.integrated, abs=0.3)
    assert result.loudness["gain_db"] == pytest.approx(TARGET - result.loudness["input_i"], abs=0.01)
    assert result.loudness["silent"] is False and result.plan.audio_only is not video


def test_peaky_quiet_source_is_raised_without_pumping(tmp_path):
    """-30 LUFS with clicks near full scale: the full gain would need ~10 dB of limiting. The gain is lowered so
    the limiter takes at most MAX_LIMITING_DB off the clicks: the output's true peak is under the ceiling, and
    everything but the clicks moved by the one planned gain (nothing pumped)."""
    src = make_at_level(tmp_path / "src.flac", -30.0, clicks=True)
    source = ebur128(src)
    assert source.true_peak is not None and source.true_peak - source.integrated > 20  # peaks far above loudness

    result, published = _transcode(src, tmp_path)

    out = ebur128(published)
    record = result.loudness
    assert record is not None and record["limited"] is True
    assert record["gain_db"] < TARGET - record["input_i"] - 5  # less than the full gain: not limited hard
    assert record["input_tp"] + record["gain_db"] - (CEILING - 1.0) <= MAX_LIMITING_DB + 0.01
    assert out.true_peak is not None and out.true_peak <= CEILING, out
    # Between the clicks, every 100 ms block of the published audio is the source's raised by the planned gain:
    # a limiter that pumped (or loudnorm's dynamic mode) would move them with the clicks.
    before, after = between_clicks(momentary(src)), momentary(published)
    moved = [after[t] - m for t, m in before.items() if t in after]
    assert len(moved) > len(before) / 2
    assert max(abs(d - record["gain_db"]) for d in moved) < 0.3, moved


def test_silence_stays_silent(tmp_path):
    src = make_silent(tmp_path / "silent.flac")
    result, published = _transcode(src, tmp_path)
    out = ebur128(published)
    assert out.silent and out.true_peak is None, out  # still digital silence: no gain made noise of it
    assert result.loudness is not None
    assert result.loudness["silent"] is True and result.loudness["gain_db"] == 0.0
    assert result.loudness["input_tp"] is None  # -inf is no JSON number


def test_normalization_off_keeps_the_level(tmp_path):
    src = make_at_level(tmp_path / "src.flac", -35.0, seconds=4)
    result, published = _transcode(src, tmp_path, loudness_normalize=False)
    assert result.loudness is None
    assert ebur128(published).integrated == pytest.approx(ebur128(src).integrated, abs=0.5)


def test_a_failed_measurement_keeps_the_level_and_still_publishes(tmp_path, monkeypatch):
    """The measurement's ffmpeg fails (a fault forced here: an option this ebur128 does not have); the audio is
    encoded anyway, at the source's level."""

    def broken(*args, **kwargs):
        argv = build_loudness_argv(*args, **kwargs)
        return [a.replace("ebur128=", "ebur128=no_such_option=1:") for a in argv]

    monkeypatch.setattr(pipeline, "build_loudness_argv", broken)
    src = make_at_level(tmp_path / "src.flac", -35.0, seconds=4)
    result, published = _transcode(src, tmp_path)
    assert result.loudness is None
    assert ebur128(published).integrated == pytest.approx(ebur128(src).integrated, abs=0.5)


def test_a_long_source_is_measured_on_windows_and_still_lands_on_the_target(tmp_path):
    """Longer than the windows together: measured on them alone (a bounded cost before the first audio segment),
    the limiter standing by for a peak they missed; the whole output is at the target all the same."""
    src = make_at_level(tmp_path / "long.flac", -30.0, seconds=FULL_MEASURE_SECONDS + 10)
    result, published = _transcode(src, tmp_path)
    assert result.loudness is not None
    assert result.loudness["sampled"] is True and result.loudness["limited"] is True
    assert result.loudness["input_i"] == pytest.approx(ebur128(src).integrated, abs=0.5)
    out = ebur128(published)
    assert abs(out.integrated - TARGET) <= 1.0, out
    assert out.true_peak is not None and out.true_peak <= CEILING, out


def test_a_measurement_the_watchdog_kills_fails_at_once(tmp_path):
    """A source that hangs ffmpeg would hang the encode too: the measurement's watchdog kill (here a budget too
    short for any run) fails the job then, instead of encoding anyway and waiting out a second kill."""
    src = make_at_level(tmp_path / "src.flac", -20.0, seconds=4)
    with pytest.raises(pipeline.TranscodeError) as err:
        _transcode(src, tmp_path, encode_time_factor=0.001, encode_time_floor_seconds=0.001)
    assert err.value.kind == FailureKind.too_long
    assert not (tmp_path / "out" / AUDIO_NAME).exists()  # the audio encode never started

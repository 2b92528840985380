"""Encoder and queue settings that would fail every job are refused when read: `Settings(...)` raises, and
`streamify worker` / `streamify api` exit 2 with one paragraph naming the variable instead of starting."""

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from core.settings import Settings, refusal
from tests.conftest import ROOT


def _refused(**values) -> str:
    with pytest.raises(ValidationError) as err:
        Settings(**values)
    return refusal(err.value)


@pytest.mark.parametrize(
    ("values", "variable", "why"),
    [
        ({"segment_seconds": 5, "gop_seconds": 2}, "STREAMIFY_SEGMENT_SECONDS", "whole multiple of the keyframe"),
        ({"segment_seconds": 0}, "STREAMIFY_SEGMENT_SECONDS", "1 to 30 s, not 0"),
        ({"segment_seconds": 32}, "STREAMIFY_SEGMENT_SECONDS", "1 to 30 s, not 32"),
        ({"gop_seconds": 0}, "STREAMIFY_GOP_SECONDS", "at least 1 s and at most 2 s, not 0"),
        ({"gop_seconds": 4, "segment_seconds": 8}, "STREAMIFY_GOP_SECONDS", "at most 2 s, not 4"),
        ({"x264_crf": 0}, "STREAMIFY_X264_CRF", "0 is lossless"),
        ({"x264_crf": 52}, "STREAMIFY_X264_CRF", "1 (best quality) to 51 (smallest files), not 52"),
        ({"x264_preset": "quick"}, "STREAMIFY_X264_PRESET", "'veryfast'"),
        ({"queue": ""}, "STREAMIFY_QUEUE", "is not a queue name"),
        ({"queue": "transcode,thumbnails"}, "STREAMIFY_QUEUE", "a comma would make workers consume two queues"),
        ({"queue": "../elsewhere"}, "STREAMIFY_QUEUE", "is not a queue name"),
    ],
)
def test_a_setting_that_would_fail_every_job_is_refused_by_name(values, variable, why):
    message = _refused(**values)
    assert f"{variable}: " in message and why in message, message
    assert message.count("STREAMIFY_") == 1, message  # only the one at fault


def test_every_problem_is_named_at_once_and_a_secret_is_never_repeated():
    secret = "too-short-secret"
    message = _refused(x264_crf=99, x264_preset="Fastest", playback_secret=secret)
    for variable in ("STREAMIFY_X264_CRF", "STREAMIFY_X264_PRESET", "STREAMIFY_PLAYBACK_SECRET"):
        assert variable in message, message
    assert secret not in message
    assert "\n" not in message  # one paragraph


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"segment_seconds": 6, "gop_seconds": 1},
        {"segment_seconds": 6, "gop_seconds": 2},
        {"segment_seconds": 30, "gop_seconds": 2},
        {"x264_crf": 1, "x264_preset": "placebo"},
        {"x264_crf": 51, "x264_preset": "ultrafast"},
        {"queue": "transcode-test-1a2b.eu_west"},
    ],
)
def test_sound_settings_are_taken_as_given(values):
    settings = Settings(**values)
    assert {name: getattr(settings, name) for name in values} == values


@pytest.mark.parametrize("command", ["worker", "api"])
def test_the_cli_refuses_to_start_in_words_not_a_traceback(command, tmp_path):
    env = {**os.environ, "STREAMIFY_DATA_DIR": str(tmp_path), "STREAMIFY_SEGMENT_SECONDS": "5",
           "STREAMIFY_GOP_SECONDS": "2"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done
    said = " ".join(done.stderr.split())  # the console wraps it to the terminal's width
    assert said.startswith("Invalid settings, nothing started. STREAMIFY_SEGMENT_SECONDS: "), done.stderr
    assert "whole multiple of the keyframe interval (2 s)" in said
    assert "Traceback" not in done.stderr + done.stdout

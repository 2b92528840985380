"""The ffmpeg watchdog and the transient-failure rules, without a real encode: an ffmpeg that stops writing
progress is killed, one that keeps going past its budget is killed, a cancel acts while ffmpeg is silent, and
the failures worth retrying are told apart by type, never by message."""

import errno
import sys
import time
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from sqlalchemy.exc import OperationalError

from core.settings import Settings
from core.transient import RETRY_MAX_SECONDS, retry_delay, transient_kind
from schemas.tables import FailureKind
from workers.pipeline import Stopped, TranscodeError, Watchdog, run_ffmpeg, watchdog_for

# An "ffmpeg" that reports progress `blocks` times, `every` seconds apart, then hangs without a word.
SILENT_AFTER = """
import sys, time
blocks, every = int(sys.argv[1]), float(sys.argv[2])
for i in range(blocks):
    sys.stdout.write(f"frame={i}\\nout_time_us={i * 1000000}\\nprogress=continue\\n")
    sys.stdout.flush()
    time.sleep(every)
time.sleep(3600)
"""


def fake(blocks: int, every: float) -> list[str]:
    return [sys.executable, "-c", SILENT_AFTER, str(blocks), str(every)]


def test_an_ffmpeg_that_stops_progressing_is_killed(tmp_path: Path):
    started = time.monotonic()
    with pytest.raises(TranscodeError) as err:
        run_ffmpeg(fake(2, 0.1), 30.0, tmp_path / "log", watchdog=Watchdog(stall_seconds=1.0, budget_seconds=60))
    assert err.value.kind == FailureKind.stalled and "no progress for 1 s" in err.value.reason
    assert time.monotonic() - started < 10


def test_an_ffmpeg_that_outlasts_its_budget_is_killed_even_while_progressing(tmp_path: Path):
    with pytest.raises(TranscodeError) as err:
        run_ffmpeg(fake(1000, 0.1), 30.0, tmp_path / "log", watchdog=Watchdog(stall_seconds=5, budget_seconds=1.0))
    assert err.value.kind == FailureKind.too_long


def test_cancel_acts_while_ffmpeg_is_silent(tmp_path: Path):
    asked = time.monotonic() + 0.5
    with pytest.raises(Stopped):
        run_ffmpeg(fake(1, 0), 30.0, tmp_path / "log", should_stop=lambda: time.monotonic() > asked)
    assert time.monotonic() - asked < 3


def test_the_budget_grows_with_the_source_and_has_a_floor():
    settings = Settings(encode_time_factor=4, encode_time_floor_seconds=300, ffmpeg_stall_seconds=90)
    assert watchdog_for(10, settings) == Watchdog(stall_seconds=90, budget_seconds=300)
    assert watchdog_for(3600, settings).budget_seconds == 4 * 3600


def test_transient_failures_are_told_apart_by_type():
    assert transient_kind(ServiceRequestError("connection refused")) == FailureKind.unavailable
    assert transient_kind(HttpResponseError(response=None, message="busy")) is None  # no status: not retried
    assert transient_kind(OperationalError("SELECT 1", {}, Exception("server closed"))) == FailureKind.unavailable
    assert transient_kind(OSError(errno.ENOSPC, "No space left on device")) == FailureKind.disk_full
    assert transient_kind(ResourceNotFoundError("gone")) is None  # a missing blob is not worth another try
    assert transient_kind(ValueError("bad plan")) is None
    wrapped = RuntimeError("publish failed")
    wrapped.__cause__ = ServiceRequestError("refused")
    assert transient_kind(wrapped) == FailureKind.unavailable


def test_retry_delays_grow_and_stop_growing():
    assert [retry_delay(n, 10) for n in (1, 2, 3)] == [10, 30, 90]
    assert retry_delay(20, 10) == RETRY_MAX_SECONDS

"""parse_progress on ffmpeg `-progress` output, and run_ffmpeg's reading of that stream.

run_ffmpeg is driven by a stand-in Python process that prints a recorded progress stream: no ffmpeg.
"""

import sys
import textwrap

import pytest

from schemas.tables import FailureKind
from workers.pipeline import Progress, Stopped, TranscodeError, parse_progress, run_ffmpeg

# Recorded from `ffmpeg -progress pipe:1` (values trimmed), including the startup block where nothing
# is known yet, the negative timestamp of AAC priming, and the final block.
STREAM = """\
frame=0
fps=0.00
stream_0_0_q=0.0
bitrate=N/A
total_size=44
out_time_us=N/A
out_time_ms=N/A
out_time=N/A
dup_frames=0
drop_frames=0
speed=N/A
progress=continue
frame=0
fps=0.00
stream_0_0_q=0.0
bitrate=N/A
total_size=44
out_time_us=-23220
out_time_ms=-23220
out_time=-00:00:00.023220
dup_frames=0
drop_frames=0
speed=N/A
progress=continue
frame=181
fps=120.33
stream_0_0_q=28.0
bitrate=1523.3kbits/s
total_size=1142784
out_time_us=6000000
out_time_ms=6000000
out_time=00:00:06.000000
dup_frames=0
drop_frames=0
speed=   4x
progress=continue
frame=902
fps=119.87
stream_0_0_q=28.0
bitrate=1499.1kbits/s
total_size=5622784
out_time_us=30066667
out_time_ms=30066667
out_time=00:00:30.066667
dup_frames=0
drop_frames=0
speed=1.5x
progress=continue
frame=903
fps=119.80
stream_0_0_q=-1.0
bitrate=1500.0kbits/s
total_size=5625000
out_time_us=30100000
out_time_ms=30100000
out_time=00:00:30.100000
dup_frames=0
drop_frames=0
speed=3.99x
progress=end
"""
DURATION = 30.0


def blocks(text: str) -> list[dict[str, str]]:
    """Split a progress stream into blocks, each ending with its `progress=` line."""
    out, block = [], {}
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        block[key] = value
        if key == "progress":
            out.append(block)
            block = {}
    return out


def test_progress_through_a_recorded_stream():
    got = [parse_progress(b, DURATION) for b in blocks(STREAM)]
    assert [p.fraction for p in got] == pytest.approx([0.0, 0.0, 0.2, 0.999, 1.0])
    assert [p.speed for p in got] == pytest.approx([None, None, 4.0, 1.5, 3.99])
    assert [p.out_time for p in got] == pytest.approx([0.0, 0.0, 6.0, 30.066667, 30.1])
    fractions = [p.fraction for p in got]
    assert fractions == sorted(fractions)


@pytest.mark.parametrize(
    ("block", "fraction", "out_time"),
    [
        ({"out_time_us": "7500000", "progress": "continue"}, 0.25, 7.5),
        # Older ffmpeg only writes out_time_ms, which despite its name is in microseconds.
        ({"out_time_ms": "15000000", "progress": "continue"}, 0.5, 15.0),
        ({"out_time_us": "0", "progress": "continue"}, 0.0, 0.0),
        ({"out_time_us": "-23220", "progress": "continue"}, 0.0, 0.0),
        ({"out_time_us": "N/A", "out_time_ms": "N/A", "out_time": "N/A", "progress": "continue"}, 0.0, 0.0),
        ({"out_time_us": "", "progress": "continue"}, 0.0, 0.0),
        ({"out_time_us": "12abc", "progress": "continue"}, 0.0, 0.0),
        ({"out_time_us": "1.5e6", "progress": "continue"}, 0.0, 0.0),
        ({"progress": "continue"}, 0.0, 0.0),
        ({}, 0.0, 0.0),
    ],
    ids=["us", "ms is us", "zero", "negative", "N/A", "empty", "garbage", "float", "missing", "empty block"],
)
def test_out_time(block, fraction, out_time):
    p = parse_progress(block, DURATION)
    assert isinstance(p, Progress)
    assert p.fraction == pytest.approx(fraction)
    assert p.out_time == pytest.approx(out_time)


def test_out_time_us_is_preferred_over_out_time_ms():
    p = parse_progress({"out_time_us": "3000000", "out_time_ms": "9000000", "progress": "continue"}, DURATION)
    assert p.out_time == pytest.approx(3.0)


@pytest.mark.parametrize("out_time_us", ["30000000", "45000000", "999999999999"])
def test_fraction_stays_below_one_until_ffmpeg_says_end(out_time_us):
    # The muxer may still be writing segments and the master: 100 % only on progress=end.
    running = parse_progress({"out_time_us": out_time_us, "progress": "continue"}, DURATION)
    assert 0.99 <= running.fraction < 1.0
    done = parse_progress({"out_time_us": out_time_us, "progress": "end"}, DURATION)
    assert done.fraction == 1.0


def test_end_is_complete_even_when_the_output_is_shorter():
    assert parse_progress({"out_time_us": "1000000", "progress": "end"}, DURATION).fraction == 1.0


@pytest.mark.parametrize("duration", [0.0, -1.0])
def test_unknown_duration_reports_no_fraction_instead_of_dividing_by_zero(duration):
    p = parse_progress({"out_time_us": "5000000", "speed": "2x", "progress": "continue"}, duration)
    assert p.fraction == 0.0
    assert p.out_time == pytest.approx(5.0)
    assert p.speed == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("speed", "expected"),
    [
        ("1.5x", 1.5),
        ("   4x", 4.0),
        ("0.987x", 0.987),
        ("1.23e+03x", 1230.0),
        ("0x", 0.0),
        ("N/A", None),
        (" N/A", None),
        ("", None),
        ("fast", None),
        ("x", None),
    ],
)
def test_speed(speed, expected):
    p = parse_progress({"out_time_us": "1000000", "speed": speed, "progress": "continue"}, DURATION)
    assert p.speed == (pytest.approx(expected) if expected is not None else None)


def test_missing_speed_is_none():
    assert parse_progress({"out_time_us": "1000000", "progress": "continue"}, DURATION).speed is None


# run_ffmpeg reads the real pipe: garbage and blank lines mixed into the stream must not break it.
FAKE_FFMPEG = """
import sys
sys.stderr.write("ffmpeg version n7.1\\n[libx264 @ 0x1] using cpu capabilities\\n")
sys.stdout.write(sys.argv[1])
sys.stdout.flush()
sys.stderr.write(sys.argv[2])
sys.exit(int(sys.argv[3]))
"""


def fake_ffmpeg(stream: str, stderr: str = "", code: int = 0) -> list[str]:
    return [sys.executable, "-c", FAKE_FFMPEG, stream, stderr, str(code)]


def test_run_ffmpeg_reports_each_progress_block(tmp_path):
    noisy = STREAM.replace("progress=continue\n", "progress=continue\n\ngarbage without equals\n=\n", 1)
    seen: list[Progress] = []
    run_ffmpeg(fake_ffmpeg(noisy), DURATION, tmp_path / "log", on_progress=seen.append)
    assert [p.fraction for p in seen] == pytest.approx([0.0, 0.0, 0.2, 0.999, 1.0])
    assert seen[2].speed == pytest.approx(4.0)
    assert "using cpu capabilities" in (tmp_path / "log").read_text()


def test_run_ffmpeg_failure_carries_the_last_meaningful_stderr_line(tmp_path):
    stderr = textwrap.dedent("""\
        [mov,mp4 @ 0x2] moov atom not found
        file:/in/x.mp4: Invalid data found when processing input
        [out#0 @ 0x3] nothing written
        """)
    with pytest.raises(TranscodeError) as err:
        run_ffmpeg(fake_ffmpeg("", stderr, code=1), DURATION, tmp_path / "log")
    assert err.value.reason == "ffmpeg exited with status 1: file:/in/x.mp4: Invalid data found when processing input"
    assert err.value.kind == FailureKind.ffmpeg  # what /metrics counts it as, whatever the words
    assert "moov atom not found" in err.value.log_tail


def test_run_ffmpeg_can_be_stopped_between_blocks(tmp_path):
    seen: list[Progress] = []
    with pytest.raises(Stopped):  # not a TranscodeError: a stopped encode is cancelled, never failed
        run_ffmpeg(
            fake_ffmpeg(STREAM), DURATION, tmp_path / "log", on_progress=seen.append, should_stop=lambda: len(seen) >= 2
        )
    assert len(seen) == 2

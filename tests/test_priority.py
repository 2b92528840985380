"""Background encodes (later ranges, audio, storyboard) must leave the CPU to a video's first range."""

import os
import signal
import subprocess
import sys
import time

import psutil

from core.processes import die_with_parent
from workers.pipeline import BACKGROUND_NICE

_SPIN = [sys.executable, "-c", "while True: pass"]


def _spinner(nice: int) -> subprocess.Popen[bytes]:
    """A CPU-bound child started the way run_ffmpeg starts ffmpeg: its own session, lowered by `nice`."""
    return subprocess.Popen(
        ["taskset", "-c", str(min(os.sched_getaffinity(0))), *_SPIN],
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGKILL, nice),
    )


def test_a_background_encode_yields_the_core_to_the_first_range() -> None:
    """Two busy processes on one core, each in its own session like two ffmpegs of a worker: the niced one gets
    a small share. Before the autogroup write, sessions shared the core equally whatever the nice value."""
    foreground, background = _spinner(0), _spinner(BACKGROUND_NICE)
    try:
        time.sleep(0.5)  # both started and pinned
        fg, bg = psutil.Process(foreground.pid), psutil.Process(background.pid)
        fg0, bg0 = sum(fg.cpu_times()[:2]), sum(bg.cpu_times()[:2])
        time.sleep(2.0)
        fg_cpu, bg_cpu = sum(fg.cpu_times()[:2]) - fg0, sum(bg.cpu_times()[:2]) - bg0
    finally:
        for p in (foreground, background):
            p.kill()
            p.wait()
    assert fg_cpu > 3 * bg_cpu, f"first range {fg_cpu:.2f} CPU s vs background {bg_cpu:.2f} CPU s on one core"

"""Child processes that die with their parent: a killed worker or `streamify up` leaves nothing running."""

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, nice: int = 0) -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to send `sig` to the child when its parent dies (None elsewhere), and to lower
    the child's CPU priority by `nice`.

    A child started with `start_new_session=True` is also a new scheduler autogroup when the kernel has them
    (CONFIG_SCHED_AUTOGROUP, on by default in Debian and Ubuntu): the CPU is then shared fairly between sessions
    and a process's own nice value only counts inside its session, so a niced ffmpeg still took half the cores
    from the first range. Writing the value to /proc/self/autogroup lowers the whole session's weight too.
    Only a prctl, a nice call and one write, so it is safe between fork and exec."""
    if sys.platform != "linux":
        return None

    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
        if nice:
            with contextlib.suppress(OSError):
                os.nice(nice)
            with contextlib.suppress(OSError):  # no autogroups (kernel option off, or a cgroup owns the task)
                fd = os.open("/proc/self/autogroup", os.O_WRONLY)
                try:
                    os.write(fd, str(nice).encode())
                finally:
                    os.close(fd)

    return preexec

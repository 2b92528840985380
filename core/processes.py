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

    Only a prctl and a nice call, so it is safe between fork and exec."""
    if sys.platform != "linux":
        return None

    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
        if nice:
            with contextlib.suppress(OSError):
                os.nice(nice)

    return preexec

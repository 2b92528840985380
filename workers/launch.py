"""How a Celery process of this app is started: one command line for `streamify worker` / `up`, the local
stack (cli/stack.py) and the tests, so what the tests run is what production runs.

Only argv lists: importing this never loads the Celery app.
"""

import os
import sys


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app", *args]


def worker_argv(concurrency: int, pool: str, queue: str) -> list[str]:
    """A transcode worker on `queue`. Gossip and mingle are off: liveness and job state live in the database
    (workers/supervision.py), not in messages between workers."""
    return _celery(
        "worker", "--loglevel", "INFO", "--pool", pool, "--concurrency", str(concurrency), "--queues", queue,
        "--without-gossip", "--without-mingle",
    )  # fmt: skip


def local_worker_argv(concurrency: int, queue: str) -> list[str]:
    """The worker `streamify up` starts beside the API: `concurrency` parts at once (0: one per CPU core, so a
    video's first range and its audio encode side by side and it plays within seconds). One process alone runs
    the solo pool (no fork), as before chunked encoding."""
    n = concurrency or os.cpu_count() or 1
    return worker_argv(n, "solo" if n == 1 else "prefork", queue)


def flower_argv(host: str, port: int, extra: list[str]) -> list[str]:
    """Flower, Celery's monitor, on the same app (so on the configured broker)."""
    return _celery("flower", f"--address={host}", f"--port={port}", *extra)

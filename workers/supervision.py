"""What every worker process does beside encoding: say it is alive, and rescue jobs of dead workers.

Started from Celery's worker_ready signal in the worker's main process. A worker that is killed (or
whose machine is gone) stops beating; any other worker's reaper re-queues its job within
STALE_AFTER + REAP_INTERVAL (40 s), or fails it after MAX_ATTEMPTS lost workers.

Queued jobs never depend on one broker message: every REAP_INTERVAL the supervisor rings again for jobs
that waited past RING_AFTER (a Redis restart without persistence loses every doorbell) and for webhook deliveries
that are due with nobody attempting them, and removes scratch folders that no live attempt owns (a killed worker
leaves its folder on a volume others share).
"""

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psutil
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from core.blobs import make_stores
from core.db import get_engine
from core.downloads import fail_pending
from core.imports import imports_waiting, live_import_attempts, queued_imports, reap_stale_imports
from core.jobqueue import STALE_AFTER, cancelled_idle, live_attempts, live_generations, reap_stale, waiting
from core.logs import outside_jobs
from core.media_keys import media_prefix
from core.notes import add_note
from core.parts import complete_unfinished, give_up_part, lost_too_often, requeue_part, stale_parts
from core.settings import Settings
from core.webhook_outbox import due_count
from schemas.tables import FailureKind, JobState, NoteKind, PartKind, TranscodeJob, WorkerNode, utcnow
from workers.sources import sources_dir

log = logging.getLogger(__name__)
REGISTRY_INTERVAL = 5.0
REAP_INTERVAL = 10.0
RING_AFTER = timedelta(seconds=10)  # a queued job no worker took this long after it was due: ring again


def node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def report_alive(engine, name: str, concurrency: int | None) -> None:
    host, pid = name.rsplit(":", 1)
    with Session(engine) as s:
        node = s.get(WorkerNode, name) or WorkerNode(name=name, host=host, pid=int(pid))
        node.last_seen = utcnow()
        me = psutil.Process()
        node.pids = ",".join(str(p) for p in [me.pid, *(c.pid for c in me.children())])[:255]
        node.load1 = os.getloadavg()[0]
        node.cpus = concurrency or os.cpu_count()
        s.add(node)
        s.commit()


def forget(engine, name: str) -> None:
    with Session(engine) as s:
        s.execute(delete(WorkerNode).where(col(WorkerNode.name) == name))
        s.commit()


def queued_count(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(TranscodeJob).where(TranscodeJob.state == JobState.queued)).one()


class Supervisor:
    """Registry heartbeat + reaper, on a daemon thread of the worker's main process."""

    def __init__(
        self,
        settings: Settings,
        ring: Callable[[str], None],
        concurrency: int | None = None,
        ring_webhooks: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = get_engine(settings)
        self.settings = settings
        self.scratch = settings.tmp_dir / "jobs"
        self.downloads = settings.tmp_dir / "imports"  # workers.imports.download_path
        self.ring = ring
        self.ring_webhooks = ring_webhooks
        self.name = node_name()
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamify-supervisor", daemon=True)

    def start(self) -> None:
        # Doorbells may have been lost with a dead broker or worker: one per queued job costs nothing.
        try:
            for _ in range(queued_count(self.engine) + queued_imports(self.engine)):
                self.ring("startup")
        except Exception:
            log.warning("could not ring doorbells for queued jobs", exc_info=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            forget(self.engine, self.name)
        except Exception:
            log.warning("could not remove worker %s from the registry", self.name, exc_info=True)

    def _run(self) -> None:
        outside_jobs()  # in a solo worker a job runs in this process too: its ids are not ours
        since_reap = REAP_INTERVAL
        while not self._stop.is_set():
            try:
                report_alive(self.engine, self.name, self.concurrency)
                if since_reap >= REAP_INTERVAL:
                    since_reap = 0.0
                    for job_id in reap_stale(self.engine):
                        log.warning("job %s lost its worker: re-queued", job_id)
                        self.ring(str(job_id))
                    self.reap_parts()
                    self.reap_imports()
                    self.end_cancelled()
                    self.finish_complete()
                    self.ring_waiting()
                    self.ring_deliveries()
                    sweep_scratch(self.scratch, live_attempts(self.engine))
                    sweep_scratch(sources_dir(self.settings), live_generations(self.engine))
                    sweep_scratch(self.downloads, live_import_attempts(self.engine))
            except Exception:
                log.warning("supervisor round failed", exc_info=True)
            self._stop.wait(REGISTRY_INTERVAL)
            since_reap += REGISTRY_INTERVAL

    def reap_parts(self) -> None:
        """Parts whose worker stopped beating go back to the queue, alone; after MAX_ATTEMPTS the video fails."""
        from workers.job import end_generation  # noqa: PLC0415 (the worker's code, loaded in the worker only)

        for lost in stale_parts(self.engine):
            if lost_too_often(lost) and lost.after_ready:
                gave_up = give_up_part(self.engine, lost)
                if gave_up and lost.kind == PartKind.quality:
                    add_note(self.engine, lost.job_id, NoteKind.vmaf_failed,
                             f"VMAF not measured: its worker was lost {lost.attempts} times")  # fmt: skip
                elif gave_up and lost.kind == PartKind.download:  # its rows say so, never pending for ever
                    fail_pending(self.engine, lost.job_id, f"its worker was lost {lost.attempts} times")
            elif lost_too_often(lost):
                reason = f"{lost.label} failed: its worker was lost {lost.attempts} times"
                end_generation(self.engine, make_stores(self.settings), lost.job_id, lost.generation,
                               JobState.failed, reason, FailureKind.worker_lost)  # fmt: skip
            elif requeue_part(self.engine, lost):
                log.warning("job %s: %s lost its worker: re-queued", lost.job_id, lost.label)
                self.ring(f"part of {lost.job_id}")

    def reap_imports(self) -> None:
        """Imports whose worker stopped beating go back to the queue; after MAX_ATTEMPTS the video fails, and any
        copy a dead attempt stored goes (its download file goes with the scratch sweep)."""
        reaped = reap_stale_imports(self.engine)
        for import_id in reaped.requeued:
            log.warning("import %s lost its worker: re-queued", import_id)
            self.ring(f"import {import_id}")
        for video_id in reaped.failed:
            make_stores(self.settings).sources.delete_prefix(media_prefix(video_id))

    def end_cancelled(self) -> None:
        """A cancelled job none of whose parts is running: nobody else would notice."""
        from workers.job import end_generation  # noqa: PLC0415

        for job_id, generation in cancelled_idle(self.engine):
            end_generation(self.engine, make_stores(self.settings), job_id, generation, JobState.cancelled,
                           "cancelled by an operator", None)  # fmt: skip

    def finish_complete(self) -> None:
        """Jobs whose every part is in but whose video the last part could not finish."""
        from workers.parts import finish_if_complete  # noqa: PLC0415

        for generation in complete_unfinished(self.engine):
            stores = make_stores(self.settings)
            if finish_if_complete(self.engine, generation, stores, self.ring, measure_vmaf=self.settings.measure_vmaf):
                log.warning("job %s: finished by the supervisor after its last part", generation.job_id)

    def ring_deliveries(self) -> None:
        """Ring once for webhook deliveries that are due and nobody is attempting: their doorbell was lost with the
        broker, or their worker died mid-attempt and its lease ran out (a woken worker attempts every due one)."""
        if self.ring_webhooks is not None and due_count(self.engine):
            self.ring_webhooks("due deliveries")

    def ring_waiting(self) -> None:
        """Ring for queued jobs and imports nobody took (at most one per pool process: a woken process drains the
        queue)."""
        due = waiting(self.engine, ring_after=RING_AFTER) + imports_waiting(self.engine, RING_AFTER)
        for _ in range(min(due, self.concurrency or os.cpu_count() or 1)):
            self.ring("waiting")


def sweep_scratch(folder: Path, live: set[tuple[uuid.UUID, uuid.UUID]], now: float | None = None) -> list[Path]:
    """Remove what a killed worker left behind: entries named `<id>.<id>[.anything]` whose pair is not `live` and
    that nobody touched for STALE_AFTER. Attempt folders (`<job or part>.<lease>`, workers.job.scratch_dir) and
    source copies with their lock (`<video>.<generation>[.lock]`, workers.sources) alike."""
    now = now or time.time()
    removed = []
    for path in folder.glob("*.*") if folder.is_dir() else []:
        first, _, rest = path.name.partition(".")
        try:
            key = (uuid.UUID(first), uuid.UUID(rest.partition(".")[0]))
            idle = now - path.stat().st_mtime
        except (ValueError, OSError):
            continue
        if key not in live and idle > STALE_AFTER.total_seconds():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed

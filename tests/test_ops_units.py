"""Pure pieces of the operator side, without services: the ffmpeg log excerpt a failed job keeps, which log
lines carry a job's ids, and the terminal frame of `streamify jobs`."""

import io
import json
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta

from rich.console import Console

from cli.jobs import render, sparkline
from core.logs import JobContextFilter, job_context, json_formatter, outside_jobs
from schemas.api import HourStats, JobRead, QueueSnapshot, WorkerRead
from workers.pipeline import log_excerpt


def test_log_excerpt_puts_ffmpegs_complaints_before_its_last_lines():
    stats = [f"[libx264 @ 0x1] frame stats line {i}" for i in range(100)]
    log = "\n".join(
        ["ffmpeg version 9", "[h264 @ 0x2] Invalid NAL unit size (24589 > 6630).", *stats[:50],
         "[in#0/mov @ 0x3] stream 1, offset 0x279204: partial file", "", *stats[50:]]
    )  # fmt: skip
    lines = log_excerpt(log, limit=10).splitlines()
    assert lines[:2] == ["[h264 @ 0x2] Invalid NAL unit size (24589 > 6630).",
                         "[in#0/mov @ 0x3] stream 1, offset 0x279204: partial file"]  # fmt: skip
    assert lines[2] == "..." and lines[3:] == stats[-8:]
    assert log_excerpt("\n".join(stats), limit=5).splitlines() == stats[-5:]  # nothing to complain about
    assert log_excerpt("") == ""


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(JobContextFilter())
    logger = logging.getLogger(f"test.ops.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, stream


def _lines(stream: io.StringIO) -> dict[str, dict]:
    return {d["message"]: d for d in map(json.loads, stream.getvalue().splitlines())}


def test_lines_logged_during_a_job_carry_its_ids_and_no_others_do():
    log, stream = _capture()
    job, video = uuid.uuid4(), uuid.uuid4()
    log.info("before")
    with job_context(job, video):
        log.info("during")
        # A thread a library starts during the job (no context of its own): it borrows the job's ids.
        t = threading.Thread(target=lambda: log.info("library thread"))
        t.start()
        t.join()
        # A thread that is never part of a job (the worker's supervisor) says so and borrows nothing.
        t = threading.Thread(target=lambda: (outside_jobs(), log.info("supervisor")))
        t.start()
        t.join()
    log.info("after")
    lines = _lines(stream)
    for message in ("during", "library thread"):
        assert (lines[message]["job_id"], lines[message]["video_id"]) == (str(job), str(video)), message
    for message in ("before", "supervisor", "after"):
        assert "job_id" not in lines[message] and "video_id" not in lines[message], message
    assert {"level", "logger", "timestamp", "process", "threadName"} <= set(lines["during"])


def test_two_jobs_in_one_process_never_swap_ids():
    log, stream = _capture()
    ids = {name: (uuid.uuid4(), uuid.uuid4()) for name in ("a", "b")}
    inside, release = threading.Barrier(3), threading.Event()

    def run(name: str) -> None:
        with job_context(*ids[name]):
            inside.wait()
            log.info(name)
            release.wait()

    threads = [threading.Thread(target=run, args=(name,)) for name in ids]
    for t in threads:
        t.start()
    inside.wait()
    orphan = threading.Thread(target=lambda: log.info("orphan"))  # two jobs running: whose would it be?
    orphan.start()
    orphan.join()
    release.set()
    for t in threads:
        t.join()
    lines = _lines(stream)
    for name, (job, video) in ids.items():
        assert (lines[name]["job_id"], lines[name]["video_id"]) == (str(job), str(video))
    assert "job_id" not in lines["orphan"]


def _job(**kw) -> JobRead:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    base = dict(id=uuid.uuid4(), video_id=uuid.uuid4(), video_title="t", owner_name="ann", state="queued",
                cancel_requested=False, priority=0, position=None, attempts=1, progress=0.0, speed=None, fps=None,
                eta_seconds=None, duration=60.0, worker=None, parts={}, first_playable_seconds=None,
                error=None, failure_kind=None, log_tail=None,
                queued_at=now - timedelta(minutes=3), started_at=None, heartbeat_at=None, finished_at=None)  # fmt: skip
    return JobRead(**{**base, **kw})


def test_jobs_frame_shows_what_the_dashboard_shows():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    running = _job(video_title="Keynote", state="running", progress=0.42, speed=1.5, fps=45.0, eta_seconds=65,
                   worker="enc-1:4242", started_at=now)  # fmt: skip
    snap = QueueSnapshot(
        at=now,
        counts={"queued": 2, "running": 1, "succeeded": 7, "failed": 1, "cancelled": 0},
        running=[running],
        queue=[_job(video_title="Next up", position=1, priority=10), _job(video_title="Later", position=2)],
        failures=[
            _job(
                video_title="Broken",
                state="failed",
                error="source is truncated or corrupt: only 2.9 s",
                failure_kind="corrupt_source",
                finished_at=now - timedelta(seconds=30),
            )
        ],  # fmt: skip
        workers=[
            WorkerRead(
                name="enc-1:4240",
                host="enc-1",
                pid=4240,
                started_at=now,
                last_seen=now,
                load1=1.25,
                cpus=2,
                running_jobs=[running.id],
            ),
            WorkerRead(
                name="enc-2:77",
                host="enc-2",
                pid=77,
                started_at=now,
                last_seen=now - timedelta(seconds=4),
                load1=None,
                cpus=1,
                running_jobs=[],
            ),
        ],  # fmt: skip
        history=[
            HourStats(
                hour=now - timedelta(hours=23 - i), jobs=i % 3, encoded_minutes=i / 2, mean_speed=1.0 if i % 3 else None
            )
            for i in range(24)
        ],  # fmt: skip
    )
    console = Console(record=True, width=140, color_system=None)
    console.print(render(snap.model_dump(mode="json")))  # exactly what GET /api/v1/ops/snapshot answers
    text = console.export_text()
    assert "queued 2" in text and "running 1" in text and "succeeded 7" in text and "workers 2" in text
    keynote = next(line for line in text.splitlines() if "Keynote" in line and "42%" in line)
    assert "1.50x" in keynote and "45" in keynote and "1m05s" in keynote and "enc-1:4242" in keynote
    assert text.index("Next up") < text.index("Later")
    assert "source is truncated or corrupt" in text and "30s" in text
    assert "corrupt_source" in next(line for line in text.splitlines() if "Broken" in line)
    assert "enc-2:77" in text and "idle" in text and "4s ago" in text
    assert "24 jobs, 138.0 min encoded, mean speed 1.00x" in text
    assert sparkline([0, 1, 2]) == " ▄█" and sparkline([0, 0]) == "  "

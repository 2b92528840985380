"""A bad day in production, on stacks of their own (PostgreSQL, Redis, Azurite, Celery worker processes):
a frozen worker that wakes after its job was re-run, Redis restarted with jobs queued, a hung ffmpeg, a
storage outage, a full scratch disk. No job is lost, stuck or clobbered, and creators see no internals."""

import re
import signal
import subprocess
import time
from pathlib import Path

import m3u8
import psutil
import pytest

from core.jobqueue import STALE_AFTER
from core.transient import PUBLIC_REASONS
from schemas.tables import FailureKind
from tests.conftest import make_user, upload, wait_finished, wait_for, wait_status
from tests.faults import FaultStack, empty_redis, fault_stack, parts_of, published_files, signal_tree, worker_tree
from tests.media import make_clip
from workers.supervision import REAP_INTERVAL, RING_AFTER

RESCUE = STALE_AFTER.total_seconds() + REAP_INTERVAL + 15
CHUNKED = {"first_range_seconds": "4", "range_seconds": "8"}  # a 20 s clip in four ranges
HOST_OR_PORT = re.compile(r"127\.0\.0\.1|localhost|:\d{2,5}\b|Traceback|Error\(")


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fault-clips")
    return {
        "long": make_clip(d / "long.mp4", size="1280x720", seconds=20, channels=2),
        "short": make_clip(d / "short.mp4", size="640x360", seconds=3, channels=2),
    }


def _job(stack: FaultStack, video_id: str) -> dict:
    return stack.sql("SELECT * FROM transcode_jobs WHERE video_id = %s", video_id)[0]


def _running(stack: FaultStack, video_id: str, min_progress: float = 0.05, timeout: float = 120) -> dict:
    def check():
        job = _job(stack, video_id)
        return job if job["state"] == "running" and job["progress"] >= min_progress else None

    return wait_for(check, "job to be encoding", timeout=timeout)


def _running_part(stack: FaultStack, video_id: str, timeout: float = 120) -> dict:
    """A video range being encoded (progress under way), other than the first."""

    def check():
        parts = [p for p in parts_of(stack, video_id) if p["kind"] == "video" and p["index"] >= 1]
        return next((p for p in parts if p["state"] == "running" and p["progress"] > 0), None)

    return wait_for(check, "a range to be encoding", timeout=timeout)


def _owner(stack: FaultStack, part: dict) -> subprocess.Popen:
    pid = int(part["worker"].rsplit(":", 1)[1])
    return next(w for w in stack.workers if pid in {p.pid for p in worker_tree(w)})


def _ffmpegs(video_id: str, attempt: dict | None = None) -> list[psutil.Process]:
    """The video's ffmpegs (each reads the source, whose path names the video), or one part attempt's."""
    mark = f"{attempt['id']}.{attempt['lease'].hex}" if attempt else str(video_id)
    return [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if "ffmpeg" in (p.info["name"] or "") and mark in " ".join(p.info["cmdline"] or [])
    ]


def test_frozen_worker_that_wakes_never_touches_the_newer_attempt(tmp_path, fault_logs, sources):
    with fault_stack(tmp_path, fault_logs, workers=2, **CHUNKED) as stack, stack.client() as creator:
        video_id = upload(creator, sources["long"], title="survives a frozen worker").json()["id"]
        first = _running_part(stack, video_id)
        frozen = worker_tree(_owner(stack, first))  # a VM pause: the worker, its pool and its ffmpeg
        signal_tree(frozen, signal.SIGSTOP)
        try:
            video = wait_finished(creator, video_id, timeout=RESCUE + 180)  # its storyboard too
            second = next(p for p in parts_of(stack, video_id) if p["id"] == first["id"])
            assert second["worker"] != first["worker"] and second["lease"] != first["lease"]
            published = published_files(stack, video_id)
        finally:
            signal_tree(frozen, signal.SIGCONT)
        # The frozen attempt wakes up mid-encode: within a few heartbeats it must notice it lost its range.
        wait_for(lambda: not _ffmpegs(video_id, first), "the stale attempt's ffmpeg to stop", timeout=30)
        time.sleep(3)  # ... and whatever it would still do (upload, record, cleanup, progress) has happened
        after = creator.get(f"/api/v1/videos/{video_id}").json()
        assert after["status"] == "ready" and after["progress"] == 1.0
        unmeasured = [{k: v for k, v in r.items() if not k.startswith("vmaf")} for r in after["renditions"]]
        assert unmeasured == [{k: v for k, v in r.items() if not k.startswith("vmaf")} for r in video["renditions"]]
        assert published_files(stack, video_id) == published
        job = _job(stack, video_id)
        assert job["state"] == "succeeded" and job["progress"] == 1.0
        scratch = Path(stack.env["STREAMIFY_DATA_DIR"]) / "tmp" / "jobs"
        assert not list(scratch.glob(f"{first['id']}.{first['lease'].hex}")), "the stale attempt left its scratch"
        # The player path works end to end, through the API.
        master = creator.get(f"/api/v1/videos/{video_id}/master.m3u8")
        assert master.status_code == 200
        first_rendition = m3u8.loads(master.text).playlists[0].uri
        assert creator.get(f"/api/v1/videos/{video_id}/{first_rendition}").status_code == 200


def test_jobs_queued_when_redis_restarts_are_all_done(tmp_path, fault_logs, sources):
    with fault_stack(tmp_path, fault_logs, workers=1) as stack, stack.client() as creator:
        worker = worker_tree(stack.workers[0])
        signal_tree(worker, signal.SIGSTOP)  # busy elsewhere: the doorbells wait in Redis...
        try:
            ids = [upload(creator, sources["short"], title=f"queued {i}").json()["id"] for i in range(4)]
            empty_redis(stack)  # ... which restarts without persistence: every doorbell is lost
        finally:
            signal_tree(worker, signal.SIGCONT)
        bound = RING_AFTER.total_seconds() + REAP_INTERVAL + 4 * 60
        for video_id in ids:
            assert wait_status(creator, video_id, timeout=bound)["status"] == "ready"
        jobs = [_job(stack, v) for v in ids]
        assert all(j["state"] == "succeeded" and j["attempts"] == 1 for j in jobs)

        # Redis down while a creator uploads: the upload is kept (the database is the queue), and done once
        # Redis is back, although its doorbell could never be rung.
        assert stack.redis is not None
        stack.redis.kill()
        try:
            accepted = upload(creator, sources["short"], title="while the broker is down")
            assert accepted.status_code == 202, accepted.text
        finally:
            stack.redis.start()
        assert wait_status(creator, accepted.json()["id"], timeout=bound)["status"] == "ready"


def test_hung_ffmpeg_is_killed_and_cancel_works_whatever_ffmpeg_does(tmp_path, fault_logs, sources):
    stall = 8
    with fault_stack(tmp_path, fault_logs, workers=1, ffmpeg_stall_seconds=str(stall), **CHUNKED) as stack:
        _, op_token = make_user(stack.database_url, operator=True)
        with stack.client() as creator, stack.client(op_token) as operator:
            # A stopped ffmpeg (or one stuck on a hostile input) no longer holds its video for ever: each attempt
            # is killed by the watchdog, and the range that keeps hanging fails the video.
            hung = upload(creator, sources["long"], title="ffmpeg hangs").json()["id"]
            _running(stack, hung)

            def stop_every_ffmpeg():
                signal_tree(_ffmpegs(hung), signal.SIGSTOP)
                return creator.get(f"/api/v1/videos/{hung}").json()["status"] == "failed"

            wait_for(stop_every_ffmpeg, "the hanging video to fail", timeout=stall * 4 + 60)
            video = creator.get(f"/api/v1/videos/{hung}").json()
            assert "no progress" in video["error"]
            failed = _job(stack, hung)
            assert failed["failure_kind"] == FailureKind.stalled
            wait_for(lambda: not _ffmpegs(hung), "the stalled ffmpegs to be killed", timeout=stall + 10)

            # Cancel acts at once, even while ffmpeg writes nothing.
            cancelled = upload(creator, sources["long"], title="cancel a hung ffmpeg").json()["id"]
            job = _running(stack, cancelled)
            signal_tree(_ffmpegs(cancelled), signal.SIGSTOP)
            asked = time.monotonic()
            assert operator.post(f"/api/v1/ops/jobs/{job['id']}/cancel").status_code == 200
            wait_status(creator, cancelled, statuses=("cancelled",), timeout=stall)
            assert time.monotonic() - asked < stall, "cancel waited for the watchdog"
            assert _job(stack, cancelled)["state"] == "cancelled"
            wait_for(lambda: not _ffmpegs(cancelled), "the cancelled ffmpegs to be killed", timeout=10)


def test_storage_outage_is_retried_and_never_shows_internals(tmp_path, fault_logs, sources):
    settings = {"azure_retry_total": "0", "transient_retries": "2", "transient_retry_base_seconds": "2"}
    with fault_stack(tmp_path, fault_logs, workers=1, **settings) as stack, stack.client() as creator:
        assert stack.azurite is not None
        # Short outage: the job waits and is retried on its own, without counting as a lost worker.
        video_id = upload(creator, sources["long"], title="outlives an outage").json()["id"]
        _running(stack, video_id)
        stack.azurite.shut_down()
        retrying = wait_for(
            lambda: (j := _job(stack, video_id))["transient_failures"] >= 1 and j,
            "the job to wait for a retry",
            timeout=120,
        )
        assert retrying["failure_kind"] == FailureKind.unavailable
        stack.azurite.start()
        video = wait_status(creator, video_id, timeout=180)
        assert video["status"] == "ready", video["error"]
        done = _job(stack, video_id)
        assert done["state"] == "succeeded" and done["attempts"] == 1 and done["failure_kind"] is None
        assert all(p["failures"] == 0 for p in parts_of(stack, video_id)), "an outage counted against a range"
        published_files(stack, video_id)

        # A long outage: after the retries, the job fails, and its owner reads no host, port or trace.
        ready_id = video_id
        video_id = upload(creator, sources["long"], title="outage outlasts the retries").json()["id"]
        _running(stack, video_id)
        stack.azurite.shut_down()
        try:
            # Meanwhile viewers of a ready video still get its playlists: playback never waits on the store.
            with stack.client(anonymous=True) as viewer:
                master = viewer.get(f"/api/v1/videos/{ready_id}/master.m3u8")
                assert master.status_code == 200, master.text
                rendition = m3u8.loads(master.text).playlists[0].uri
                assert viewer.get(f"/api/v1/videos/{ready_id}/{rendition}").status_code == 200
            video = wait_status(creator, video_id, statuses=("failed",), timeout=180)
        finally:
            stack.azurite.start()
        assert video["error"] == PUBLIC_REASONS[FailureKind.unavailable]
        assert not HOST_OR_PORT.search(video["error"])
        job = _job(stack, video_id)
        assert job["failure_kind"] == FailureKind.unavailable and job["transient_failures"] == 2


def test_full_scratch_disk_is_reported_as_such(tmp_path, fault_logs, sources):
    scratch = tmp_path / "data" / "tmp"
    scratch.mkdir(parents=True)
    room = sources["short"].stat().st_size // 1024 + 192  # KiB: the source fits, its ladder does not
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room}k", "tmpfs", str(scratch)], check=True)
    try:
        settings = {"transient_retries": "1", "transient_retry_base_seconds": "1"}
        with fault_stack(tmp_path, fault_logs, workers=1, **settings) as stack, stack.client() as creator:
            video_id = upload(creator, sources["short"], title="fills the disk").json()["id"]
            video = wait_status(creator, video_id, statuses=("failed", "ready"), timeout=240)
            assert video["status"] == "failed"
            assert video["error"] == PUBLIC_REASONS[FailureKind.disk_full]
            job = _job(stack, video_id)
            assert job["failure_kind"] == FailureKind.disk_full and job["transient_failures"] == 1
            assert not list((scratch / "jobs").iterdir()), "the failed attempts left scratch files"
    finally:
        subprocess.run(["umount", "-l", str(scratch)], check=False)

"""Operators on the real stack (PostgreSQL, Redis, Azurite, Celery worker processes): a killed worker's
job is rescued, a cancel really stops ffmpeg, scheduling is fair, and only operators may steer."""

import os
import signal
import time

import psutil
import psycopg
import pytest
from azure.storage.blob import BlobServiceClient

from core.jobqueue import STALE_AFTER
from tests.conftest import start_worker, stop, upload, wait_for, wait_status
from tests.faults import parts_of, published_files
from tests.media import make_clip
from workers.supervision import REAP_INTERVAL

RESCUE_BOUND = STALE_AFTER.total_seconds() + REAP_INTERVAL + 5  # documented: re-queued within 45 s


def _job(stack, video_id: str) -> dict:
    with psycopg.connect(stack.database_url.replace("+psycopg", "")) as conn:
        conn.row_factory = psycopg.rows.dict_row
        return conn.execute("SELECT * FROM transcode_jobs WHERE video_id = %s", (video_id,)).fetchone()


def _video_root(stack, video_id: str) -> str:
    with psycopg.connect(stack.database_url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT media_root FROM videos WHERE id = %s", (video_id,)).fetchone()
    assert row and row[0], "a ready video names its encode's folder"
    return row[0]


def _ffmpeg_for(job_id) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "ffmpeg" in (p.info["name"] or "") and str(job_id) in cmd:
            found.append(p)
    return found


def _running(stack, video_id: str, min_progress: float = 0.05) -> dict:
    def check():
        job = _job(stack, video_id)
        return job if job["state"] == "running" and job["progress"] >= min_progress else None

    return wait_for(check, "job to be encoding", timeout=120)


@pytest.fixture
def operator(stack):
    _, token = stack.new_user(operator=True)
    with stack.client(token) as client:
        yield client


@pytest.fixture
def second_worker(stack):
    """Another worker process, so a job can move from one worker to another."""
    proc = start_worker(stack.env, stack.logs, name="worker-2")
    yield proc
    stop(proc)


def test_only_operators_reach_the_queue(stack):
    with stack.client() as creator, stack.client(anonymous=True) as anon:
        assert anon.get("/api/v1/ops/snapshot").status_code == 401
        refused = creator.get("/api/v1/ops/snapshot")
        assert refused.status_code == 403 and "operators only" in refused.json()["detail"]
        assert creator.get("/api/v1/ops/events").status_code == 403


def test_killed_worker_job_is_requeued_and_finishes_elsewhere(stack, clips, azurite, operator, second_worker):
    with stack.client() as creator:
        video_id = upload(creator, clips["1080p"], title="survives a dead worker").json()["id"]
        part = wait_for(
            lambda: next((p for p in parts_of(stack, video_id) if p["kind"] == "video" and p["state"] == "running"
                          and p["progress"] > 0), None),
            "a range to be encoding", timeout=120,
        )  # fmt: skip
        owner_pid = int(part["worker"].rsplit(":", 1)[1])
        victim = psutil.Process(owner_pid)
        main = victim.parent() if victim.parent() and "celery" in " ".join(victim.parent().cmdline()) else victim
        ffmpegs = _ffmpeg_for(part["id"])
        assert ffmpegs, "no ffmpeg found for the running range"
        # The machine is gone: the worker's main process, its pool and everything under them, at once.
        # (ffmpeg is left to die on its own: PDEATHSIG must take it down with its parent.)
        doomed = [main, *(p for p in main.children(recursive=True) if p not in ffmpegs)]
        for p in doomed:
            p.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        psutil.wait_procs(doomed, timeout=10)
        # ffmpeg dies with its worker: nobody keeps encoding for a dead part.
        wait_for(lambda: not _ffmpeg_for(part["id"]), "orphaned ffmpeg to exit", timeout=10)

        def rescued():
            again = next(p for p in parts_of(stack, video_id) if p["id"] == part["id"])
            return (
                again
                if again["lease"] != part["lease"] and again["state"] in ("queued", "running", "succeeded")
                else None
            )

        wait_for(rescued, "the range to be rescued", timeout=RESCUE_BOUND)
        assert time.monotonic() - killed_at <= RESCUE_BOUND
        video = wait_status(creator, video_id)
        assert video["status"] == "ready", video["error"]
        final = next(p for p in parts_of(stack, video_id) if p["id"] == part["id"])
        assert final["state"] == "succeeded" and final["attempts"] == 2 and final["worker"] != part["worker"]
        assert _job(stack, video_id)["state"] == "succeeded" and _job(stack, video_id)["attempts"] == 1

        # Exactly one set of renditions and blobs: every segment is one the published playlists name.
        names = [r["name"] for r in video["renditions"]]
        assert len(names) == len(set(names)) >= 4
        published_files(stack, video_id)
    # Keep the session's stack whole for later tests: replace the worker if it was the one killed.
    if stack.procs["worker"].pid == main.pid:
        stack.procs["worker"].wait()
        stack.procs["worker"] = start_worker(stack.env, stack.logs, name="worker-r")


def test_cancel_stops_ffmpeg_and_retry_succeeds(stack, clips, azurite, operator):
    with stack.client() as creator:
        video_id = upload(creator, clips["1080p"], title="cancel me").json()["id"]
        job = _running(stack, video_id)
        ffmpegs = _ffmpeg_for(video_id)  # every part's: each reads the source, whose path names the video
        assert ffmpegs
        parts = [p["id"] for p in parts_of(stack, video_id)]
        r = operator.post(f"/api/v1/ops/jobs/{job['id']}/cancel")
        assert r.status_code == 200 and r.json()["cancel_requested"] is True
        asked = time.monotonic()
        gone, alive = psutil.wait_procs(ffmpegs, timeout=5)
        assert not alive, f"ffmpeg still running {time.monotonic() - asked:.1f}s after cancel"
        video = wait_status(creator, video_id, statuses=("cancelled",), timeout=30)
        assert video["status"] == "cancelled" and video["renditions"] == []
        assert _job(stack, video_id)["state"] == "cancelled"
        media = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
            "streamify-media"
        )
        assert not list(media.list_blobs(name_starts_with=f"{video_id}/"))
        scratch = stack.settings().tmp_dir / "jobs"
        assert not [p for p in scratch.glob("*") if p.name.split(".")[0] in {str(i) for i in [job["id"], *parts]}]
        assert operator.post(f"/api/v1/ops/jobs/{job['id']}/cancel").status_code == 409

        retried = operator.post(f"/api/v1/ops/jobs/{job['id']}/retry")
        assert retried.status_code == 200 and retried.json()["state"] in ("queued", "running")
        assert wait_status(creator, video_id)["status"] == "ready"
        assert operator.post(f"/api/v1/ops/jobs/{job['id']}/retry").status_code == 409
        # A ready video can be encoded again on request.
        again = operator.post(f"/api/v1/ops/videos/{video_id}/retranscode")
        assert again.status_code == 200
        assert wait_status(creator, video_id)["status"] == "ready"
        assert _job(stack, video_id)["state"] == "succeeded"


def test_one_creators_backlog_does_not_starve_another(stack, tmp_path, operator):
    small = make_clip(tmp_path / "small.mp4", size="320x240", seconds=2, channels=2)
    _, busy_token = stack.new_user()
    _, other_token = stack.new_user()
    with stack.client(busy_token) as busy, stack.client(other_token) as other:
        backlog = [upload(busy, small, title=f"backlog {i}").json()["id"] for i in range(20)]
        late = upload(other, small, title="late but fair").json()["id"]
        snap = operator.get("/api/v1/ops/snapshot").json()
        queued = [j["video_id"] for j in snap["queue"]]
        if late in queued:  # still waiting: it must be at the head of the line, not behind 19 others
            assert queued.index(late) <= 1, queued.index(late)
            assert snap["queue"][queued.index(late)]["position"] == queued.index(late) + 1
        wait_status(other, late)
        late_job = _job(stack, late)
        jobs = [_job(stack, v) for v in backlog]
        # Backlog jobs still waiting when the other creator's upload arrived...
        waiting = [j for j in jobs if not j["started_at"] or j["started_at"] > late_job["queued_at"]]
        assert len(waiting) >= 10, f"only {len(waiting)} still queued: the test would prove nothing"
        # ...of which at most the one a worker was already picking up may go first.
        ahead = [j for j in waiting if j["started_at"] and j["started_at"] < late_job["started_at"]]
        assert len(ahead) <= 1, f"{len(ahead)} of {len(waiting)} waiting backlog jobs started first"
        for video_id in backlog:
            assert wait_status(busy, video_id, timeout=600)["status"] == "ready"


def test_priority_moves_a_job_to_the_front(stack, tmp_path, operator):
    small = make_clip(tmp_path / "small.mp4", size="320x240", seconds=2, channels=2)
    with stack.client() as creator:
        ids = [upload(creator, small, title=f"prio {i}").json()["id"] for i in range(6)]
        last_job = _job(stack, ids[-1])
        if last_job["state"] == "queued":
            r = operator.post(f"/api/v1/ops/jobs/{last_job['id']}/priority", json={"priority": 50})
            if r.status_code == 200:  # it may have started meanwhile on a fast machine
                assert r.json()["position"] == 1
        assert operator.post(f"/api/v1/ops/jobs/{last_job['id']}/priority", json={"priority": 500}).status_code == 422
        for video_id in ids:
            wait_status(creator, video_id)


def test_snapshot_tells_the_truth(stack, clips, operator):
    with stack.client() as creator:
        video_id = upload(creator, clips["1080p"], title="watched").json()["id"]
        _running(stack, video_id, min_progress=0.1)
        snap = operator.get("/api/v1/ops/snapshot").json()
        running = {j["video_id"]: j for j in snap["running"]}
        assert video_id in running
        job = running[video_id]
        assert job["video_title"] == "watched" and 0 < job["progress"] < 1
        assert job["parts"].get("running", 0) >= 1 and sum(job["parts"].values()) >= 3  # ranges and the audio
        for worker in job["worker"].split(", "):  # the processes running its parts
            assert psutil.pid_exists(int(worker.rsplit(":", 1)[1]))
        assert any(job["id"] in w["running_jobs"] for w in snap["workers"]), snap["workers"]
        assert all(w["pid"] != os.getpid() for w in snap["workers"])
        assert snap["counts"]["running"] >= 1
        wait_status(creator, video_id)
        done = operator.get(f"/api/v1/ops/jobs/{job['id']}").json()
        assert done["first_playable_seconds"] and done["first_playable_seconds"] > 0
        after = operator.get("/api/v1/ops/snapshot").json()
        assert sum(h["jobs"] for h in after["history"]) >= 1
        assert any(h["encoded_minutes"] > 0 for h in after["history"])

"""Chunked encoding across workers on stacks of their own (PostgreSQL, Redis, Azurite, two Celery workers): a
video plays while its ranges encode, a worker killed mid-range costs that range alone, a range that keeps
failing fails the video with the range named, cancel leaves nothing, and a private video needs its token."""

import signal
import time
from pathlib import Path
from urllib.parse import urljoin

import m3u8
import psutil
import pytest
from azure.storage.blob import BlobServiceClient

from core.jobqueue import STALE_AFTER
from schemas.tables import FailureKind
from tests.conftest import make_user, upload, wait_for, wait_status
from tests.faults import FaultStack, fault_stack, parts_of, published_files, signal_tree, worker_tree
from tests.hls_checks import assert_playable_ladder, fetch_ladder
from tests.media import make_clip
from workers.supervision import REAP_INTERVAL

RESCUE = STALE_AFTER.total_seconds() + REAP_INTERVAL + 15
# Small ranges so a half-minute clip has several: 4 s first (two 2 s segments), then 8 s ranges.
CHUNKED = {"first_range_seconds": "4", "range_seconds": "8", "ladder_max_height": "360"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("chunked") / "half-minute.mp4", size="640x360", seconds=30, channels=2)


def _running_range(stack: FaultStack, video_id: str, min_index: int = 1) -> dict:
    def check():
        return next((p for p in parts_of(stack, video_id) if p["kind"] == "video" and p["index"] >= min_index
                     and p["state"] == "running" and p["progress"] > 0), None)  # fmt: skip

    return wait_for(check, "a range to be encoding", timeout=120)


def _owner(stack: FaultStack, part: dict):
    pid = int(part["worker"].rsplit(":", 1)[1])
    return next(w for w in stack.workers if pid in {p.pid for p in worker_tree(w)})


def _ffmpegs_of(part: dict) -> list[psutil.Process]:
    scratch = f"{part['id']}.{part['lease'].hex}"
    return [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if "ffmpeg" in (p.info["name"] or "") and scratch in " ".join(p.info["cmdline"] or [])
    ]


def _stored(stack: FaultStack, video_id: str) -> set[str]:
    media = BlobServiceClient.from_connection_string(stack.azurite_conn).get_container_client("streamify-media")
    return {b.name for b in media.list_blobs(name_starts_with=f"{video_id}/")}


def test_a_worker_killed_mid_range_costs_that_range_alone(tmp_path, fault_logs, clip):
    with fault_stack(tmp_path, fault_logs, workers=2, **CHUNKED) as stack, stack.client() as creator:
        video_id = upload(creator, clip, title="survives a killed worker").json()["id"]
        doomed = _running_range(stack, video_id)
        signal_tree(worker_tree(_owner(stack, doomed)), signal.SIGKILL)  # the machine is gone, mid-range
        video = wait_status(creator, video_id, timeout=RESCUE + 180)
        assert video["status"] == "ready", video["error"]
        parts = {(p["kind"], p["index"]): p for p in parts_of(stack, video_id)}
        again = parts[("video", doomed["index"])]
        assert again["attempts"] == 2 and again["lease"] != doomed["lease"]
        after_ready = ("storyboard", "quality")  # may still be queued (0 attempts) once the video is ready
        others = [p for key, p in parts.items() if key != ("video", doomed["index"]) and p["kind"] not in after_ready]
        assert all(p["attempts"] == 1 for p in others), [(p["kind"], p["index"], p["attempts"]) for p in others]
        # One set of segments in the store: nothing from the killed attempt, nothing the playlists do not name.
        published_files(stack, video_id)
        with stack.client() as c:
            _, variants = fetch_ladder(c, stack.url, video["playback_url"])
        assert_playable_ladder([v for v in variants], 30.0, min_variants=2)


def test_a_range_that_fails_twice_fails_the_video_naming_the_range(tmp_path, fault_logs, clip):
    stall = 6
    with (
        fault_stack(tmp_path, fault_logs, workers=1, ffmpeg_stall_seconds=str(stall), **CHUNKED) as stack,
        stack.client() as creator,
    ):
        video_id = upload(creator, clip, title="a range that hangs").json()["id"]

        def third_range_encoding(attempt: int):
            third = next((p for p in parts_of(stack, video_id) if p["kind"] == "video" and p["index"] == 2), None)
            running = third is not None and third["state"] == "running" and third["attempts"] == attempt
            return third if running and _ffmpegs_of(third) else None

        for attempt in (1, 2):  # the same range hangs on both attempts: the watchdog kills it each time
            part = wait_for(lambda a=attempt: third_range_encoding(a), f"attempt {attempt} at the third range", 120)
            signal_tree(_ffmpegs_of(part), signal.SIGSTOP)
        video = wait_status(creator, video_id, statuses=("failed",), timeout=stall * 3 + 60)
        assert "0:12–0:20" in video["error"] and "no progress" in video["error"], video["error"]
        job = stack.sql("SELECT * FROM transcode_jobs WHERE video_id = %s", video_id)[0]
        assert job["failure_kind"] == FailureKind.stalled
        wait_for(lambda: not _stored(stack, video_id), "the failed video's files to go", timeout=30)


def test_cancel_during_a_chunked_encode_stops_every_range_and_leaves_no_file(tmp_path, fault_logs, clip):
    with fault_stack(tmp_path, fault_logs, workers=2, **CHUNKED) as stack:
        _, op_token = make_user(stack.database_url, operator=True)
        with stack.client() as creator, stack.client(op_token) as operator:
            video_id = upload(creator, clip, title="cancelled mid-encode").json()["id"]
            wait_for(lambda: any(p["state"] == "succeeded" for p in parts_of(stack, video_id)), "a part to land", 120)
            _running_range(stack, video_id)
            assert _stored(stack, video_id), "the parts that landed wrote files"
            job = stack.sql("SELECT id FROM transcode_jobs WHERE video_id = %s", video_id)[0]
            assert operator.post(f"/api/v1/ops/jobs/{job['id']}/cancel").status_code == 200
            assert wait_status(creator, video_id, statuses=("cancelled",), timeout=30)["status"] == "cancelled"
            wait_for(lambda: all(p["state"] in ("cancelled", "succeeded") for p in parts_of(stack, video_id)),
                     "every part to stop", timeout=30)  # fmt: skip
            time.sleep(2)  # a part that was uploading when the cancel came removes its own files
            assert not _stored(stack, video_id), sorted(_stored(stack, video_id))[:5]
            assert creator.get(f"/api/v1/videos/{video_id}/master.m3u8").status_code == 404


def test_a_private_video_plays_with_its_token_while_encoding_and_not_without(tmp_path, fault_logs, clip):
    with fault_stack(tmp_path, fault_logs, workers=1, **CHUNKED) as stack, stack.client() as creator:
        with clip.open("rb") as f:
            made = creator.post("/api/v1/videos", files={"file": (clip.name, f)}, data={"visibility": "private"})
        video_id = made.json()["id"]
        video = wait_for(
            lambda: (v := creator.get(f"/api/v1/videos/{video_id}").json())["playable"] and v, "playable", 120
        )
        assert video["status"] == "processing" and 0 < video["encoded_seconds"] < 30
        token = creator.post(f"/api/v1/videos/{video_id}/playback-token").json()
        with stack.client(anonymous=True) as viewer:
            master_url = urljoin(stack.url + "/", token["playback_url"])
            master = viewer.get(master_url)
            assert master.status_code == 200 and master.headers["cache-control"] == "no-store"
            media_url = urljoin(master_url, m3u8.loads(master.text).playlists[0].uri)
            media = viewer.get(media_url)
            assert media.status_code == 200 and "#EXT-X-PLAYLIST-TYPE:EVENT" in media.text
            assert "#EXT-X-ENDLIST" not in media.text
            segment = m3u8.loads(media.text).segments[0]
            assert viewer.get(urljoin(media_url, segment.uri)).status_code == 200
            # Without the token: the same answer as a video that does not exist.
            assert viewer.get(f"/api/v1/videos/{video_id}/master.m3u8").status_code == 404
            assert viewer.get(media_url.split("?")[0]).status_code == 404
        assert wait_status(creator, video_id)["status"] == "ready"

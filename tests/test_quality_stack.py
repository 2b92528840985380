"""Measured quality on the real stack (PostgreSQL, Redis, Azurite, a Celery worker): once a video is ready, every
rung gets a VMAF that an independent libvmaf run by this test (on the rung as a player downloads it) confirms;
the API returns it per rendition and the library and the operator's job page show it; a measurement that fails
leaves the video ready with a note and no score.
"""

import json
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from playwright.sync_api import Browser

from tests.browser import DESKTOP, shoot
from tests.conftest import upload, wait_finished, wait_for
from tests.hls_checks import fetch_ladder
from tests.media import FFMPEG, make_clip

PASSWORD = "correct horse battery"  # tests.conftest.make_user
SIZE = (640, 360)  # the source and top rung: every rung is compared at this size


@pytest.fixture(scope="module")
def quality_clip(tmp_path_factory) -> Path:
    """Uploaded twice: once measured, once with a rung that vanishes before it can be."""
    return make_clip(tmp_path_factory.mktemp("quality") / "clip.mp4", size="640x360", seconds=6, channels=2)


def _video_rungs(video: dict) -> list[dict]:
    return [r for r in video["renditions"] if r["width"] is not None]


def _measured(client, video_id: str, timeout: float = 180) -> dict:
    """The video once every rung has its VMAF (the quality part runs after `ready` and after the storyboard)."""

    def check():
        video = client.get(f"/api/v1/videos/{video_id}").json()
        return video if all(r["vmaf"] is not None for r in _video_rungs(video)) else None

    return wait_for(check, f"VMAF of every rung of {video_id}", timeout=timeout)


def independent_vmaf(rung_file: Path, source: Path, fps: float, log: Path) -> tuple[float, int]:
    """libvmaf run by the test on its own terms: the rung as downloaded, upscaled bicubic; the source at the rung's
    frame rate, scaled as the encoder scales; frames paired by their time from the start."""
    w, h = SIZE
    graph = (
        f"[0:v]scale={w}:{h}:flags=bicubic,format=yuv420p,setpts=PTS-STARTPTS[d];"
        f"[1:v]fps={fps:g},scale={w}:{h}:flags=lanczos,format=yuv420p,setpts=PTS-STARTPTS[r];"
        f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads=2"
    )
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(rung_file), "-i", str(source),
         "-filter_complex", graph, "-f", "null", "-"],
        check=True,
    )  # fmt: skip
    result = json.loads(log.read_text())
    return float(result["pooled_metrics"]["vmaf"]["mean"]), len(result["frames"])


@pytest.fixture(scope="module")
def measured(stack, quality_clip):
    """A creator of its own and a video of theirs whose rungs are all measured."""
    email, token = stack.new_user()
    with stack.client(token) as client:
        video_id = upload(client, quality_clip, title=f"measured {secrets.token_hex(3)}").json()["id"]
        wait_finished(client, video_id)
        video = _measured(client, video_id)
    return {"email": email, "token": token, "video": video}


def test_every_rung_vmaf_matches_an_independent_libvmaf_run(stack, quality_clip, measured, tmp_path):
    video = measured["video"]
    rungs = {r["name"]: r for r in _video_rungs(video)}
    assert list(rungs) == ["360p", "240p"], list(rungs)
    with stack.client(measured["token"]) as client:
        _, variants = fetch_ladder(client, stack.url, video["playback_url"])  # as a player downloads them
    assert len(variants) == len(rungs)
    for variant in variants:
        name = next(n for n in rungs if f"{n}/" in variant.uri)
        rung_file = tmp_path / f"{name}.mp4"
        rung_file.write_bytes(variant.init + b"".join(s.data for s in variant.segments))
        fps = variant.stream_info.frame_rate
        score, frames = independent_vmaf(rung_file, quality_clip, fps, tmp_path / f"{name}.json")
        stored = rungs[name]
        assert abs(stored["vmaf"] - score) <= 1.0, (name, stored["vmaf"], score)
        # The whole 6 s were measured (under STREAMIFY_VMAF_FULL_SECONDS), every frame of it.
        assert stored["vmaf_seconds"] == pytest.approx(video["duration"], abs=0.1)
        assert frames == pytest.approx(video["duration"] * fps, abs=1)
        assert 40 < score <= 100, (name, score)  # a real picture: frames paired one-to-one score well above chance
    # A rung upscaled from 240p loses detail the 360p rung keeps: its score is lower.
    assert rungs["240p"]["vmaf"] < rungs["360p"]["vmaf"]

    # Operators read the same scores on the job, with no note: nothing was skipped.
    op_email, op_token = stack.new_user(operator=True)
    job_id = stack.sql("SELECT id FROM transcode_jobs WHERE video_id = %s", video["id"])[0]["id"]
    with stack.client(op_token) as ops:
        job = ops.get(f"/api/v1/ops/jobs/{job_id}").json()
    assert {r["name"]: r["vmaf"] for r in job["renditions"] if r["width"]} == {n: r["vmaf"] for n, r in rungs.items()}
    assert job["notes"] == []
    # ... and the loudness the audio part measured and applied (workers.loudness), as it recorded it.
    recorded = stack.sql("SELECT loudness FROM transcode_jobs WHERE id = %s", job_id)[0]["loudness"]
    assert recorded and job["loudness"] == {k: recorded.get(k, False) for k in job["loudness"]}
    parts = stack.sql("SELECT state, error FROM job_parts WHERE job_id = %s AND kind = 'quality'", job_id)
    assert parts == [{"state": "succeeded", "error": None}]


@pytest.fixture(scope="module")
def broken(stack, quality_clip, azurite) -> dict:
    """A video whose 240p init segment vanishes from the store after the encode published it (and before the
    quality part, which runs after `ready` and the storyboard, fetches it)."""
    media = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client("streamify-media")
    _, token = stack.new_user()
    with stack.client(token) as client:
        video_id = upload(client, quality_clip, title=f"broken {secrets.token_hex(3)}").json()["id"]
        deadline = time.monotonic() + 120
        removed = None
        while removed is None and time.monotonic() < deadline:  # the first range lands well before ready
            names = [b.name for b in media.list_blobs(name_starts_with=f"{video_id}/")]
            removed = next((n for n in names if "/240p/" in n and n.endswith(".init.mp4")), None)
            if removed is None:
                time.sleep(0.05)
        assert removed, "the 240p init segment never appeared"
        media.delete_blob(removed)
        wait_finished(client, video_id)
        job_id = stack.sql("SELECT id FROM transcode_jobs WHERE video_id = %s", video_id)[0]["id"]
        wait_for(
            lambda: stack.sql("SELECT state FROM job_parts WHERE job_id = %s AND kind = 'quality' AND "
                              "state IN ('succeeded', 'failed')", job_id),
            "the quality part to end", timeout=180,
        )  # fmt: skip
        video = client.get(f"/api/v1/videos/{video_id}").json()
    return {"video": video, "job_id": job_id, "removed": removed}


def test_a_failed_measurement_leaves_the_video_ready_with_a_note(stack, broken):
    """The 240p rung cannot be fetched: the video is ready all the same, 240p has no score, the 360p rung has its
    own, and the job says why."""
    video = broken["video"]
    assert video["status"] == "ready" and video["playable"]
    scores = {r["name"]: (r["vmaf"], r["vmaf_seconds"]) for r in _video_rungs(video)}
    assert scores["240p"] == (None, None) and scores["360p"][0] is not None, scores
    _, op_token = stack.new_user(operator=True)
    with stack.client(op_token) as ops:
        job = ops.get(f"/api/v1/ops/jobs/{broken['job_id']}").json()
    assert job["state"] == "succeeded"
    assert [n["kind"] for n in job["notes"]] == ["vmaf_failed"]
    assert job["notes"][0]["message"] == f"VMAF not measured for 240p: {broken['removed']} is missing from the store"
    assert stack.sql("SELECT state FROM job_parts WHERE job_id = %s AND kind = 'quality'", broken["job_id"]) == [
        {"state": "succeeded"}  # one rung measured: the part did what it could, and ended
    ]


def test_library_and_job_page_show_each_rungs_vmaf(stack, measured, broken, browser: Browser):
    video = measured["video"]
    rungs = _video_rungs(video)
    context = browser.new_context(viewport=DESKTOP)
    try:
        r = context.request.post(f"{stack.url}/api/v1/auth/login", data={"email": measured["email"],
                                                                          "password": PASSWORD})  # fmt: skip
        assert r.status == 200, r.text()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{stack.url}/library")
        lines = page.locator(f'.lib-item[data-id="{video["id"]}"] .renditions li')
        lines.first.wait_for(timeout=15_000)
        shown = lines.all_inner_texts()
        assert len(shown) == len(rungs)
        for text, rung in zip(shown, rungs, strict=True):
            m = re.fullmatch(r"(\w+) · ([\d.]+) (Mb|kb)/s · VMAF (\d+)", text)
            assert m, text
            assert m.group(1) == rung["name"] and abs(int(m.group(4)) - rung["vmaf"]) <= 0.5
            rate = float(m.group(2)) * (1e6 if m.group(3) == "Mb" else 1e3)
            assert rate == pytest.approx(rung["average_bandwidth"], rel=0.06)
        shoot(page, "library-vmaf.png")
        assert not errors, errors
    finally:
        context.close()

    op_email, _ = stack.new_user(operator=True)
    job_id = stack.sql("SELECT id FROM transcode_jobs WHERE video_id = %s", video["id"])[0]["id"]
    context = browser.new_context(viewport=DESKTOP)
    try:
        r = context.request.post(f"{stack.url}/api/v1/auth/login", data={"email": op_email, "password": PASSWORD})
        assert r.status == 200, r.text()
        page = context.new_page()
        page.goto(f"{stack.url}/ops/jobs/{job_id}")
        page.locator("#job").wait_for(state="visible", timeout=15_000)
        assert page.locator("#job-title").inner_text() == video["title"]
        for rung in rungs:
            row = page.locator(f'#rungs tr[data-rung="{rung["name"]}"]')
            assert float(row.locator(".vmaf").inner_text()) == pytest.approx(rung["vmaf"], abs=0.05)
        assert page.locator('[data-empty-for="notes"]').is_visible()
        assert re.match(r"Input [−+]?\d+\.\d LUFS integrated, true peak ", page.locator("#loudness").inner_text())
        shoot(page, "ops-job-vmaf.png")
        # The job whose 240p rung could not be measured says so, beside the rung and in its notes.
        page.goto(f"{stack.url}/ops/jobs/{broken['job_id']}")
        page.locator("#job").wait_for(state="visible", timeout=15_000)
        assert page.locator('#rungs tr[data-rung="240p"] .vmaf').inner_text() == "not measured"
        assert page.locator('#rungs tr[data-rung="360p"] .vmaf').inner_text() != "not measured"
        note = page.locator('#notes li[data-kind="vmaf_failed"]')
        assert note.count() == 1 and "240p" in note.locator(".message").inner_text()
        shoot(page, "ops-job-vmaf-failed.png")
    finally:
        context.close()

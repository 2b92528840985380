"""Deleting a video while a worker still writes for it leaves nothing in the store.

Seen in CI: a video was deleted moments after it went ready, while its storyboard part (which runs after
`ready`) was uploading sprite sheets; the sheets and the track landed after the deletion's sweep and stayed
for ever, named by no row. The storyboard's file names carry no attempt tag, so the part's own cleanup did not
take them. The moments are forced here by running the deletion (the real API route) from inside the worker's
storyboard step, or the worker from inside the deletion's first sweep; everything else is real (SQLite, local
blobs, ffmpeg, the worker's own code in this process).
"""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import workers.pipeline
from core.blobs import make_stores
from tests.inprocess import LocalApp, local_app
from tests.media import make_clip
from workers.job import run_next, run_until_idle

SETTINGS = {"per_title": False, "measure_vmaf": False, "first_range_seconds": 2, "range_seconds": 4}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("delete") / "clip.mp4", size="320x180", seconds=4, channels=2)


@pytest.fixture
def site(tmp_path) -> Iterator[tuple[LocalApp, dict[str, str]]]:
    with local_app(tmp_path / "data", **SETTINGS) as install:
        yield install, install.as_user(install.user())


def ready_without_storyboard(install: LocalApp, auth: dict[str, str], clip: Path) -> str:
    """A video uploaded through the API and run by the worker until it is ready, its storyboard still queued."""
    with clip.open("rb") as f:
        r = install.client.post("/api/v1/videos", files={"file": ("clip.mp4", f)}, headers=auth)
    assert r.status_code == 202, r.text
    video_id = r.json()["id"]
    while install.client.get(f"/api/v1/videos/{video_id}", headers=auth).json()["status"] != "ready":
        assert run_next(install.settings, make_stores(install.settings)) != "idle"
    assert install.client.get(f"/api/v1/videos/{video_id}", headers=auth).json()["storyboard_url"] is None
    return video_id


def left_behind(install: LocalApp, video_id: str) -> list[str]:
    stores = make_stores(install.settings)
    return stores.media.list(f"{video_id}/") + stores.sources.list(f"{video_id}/")


def test_a_video_deleted_while_its_storyboard_is_made_leaves_no_files(site, clip, monkeypatch):
    install, auth = site
    video_id = ready_without_storyboard(install, auth, clip)
    real = workers.pipeline.make_storyboard
    deleted = []

    def deleted_meanwhile(*args, **kwargs):  # the owner deletes the video while the sheets are being made
        deleted.append(install.client.delete(f"/api/v1/videos/{video_id}", headers=auth).status_code)
        return real(*args, **kwargs)

    monkeypatch.setattr(workers.pipeline, "make_storyboard", deleted_meanwhile)
    run_until_idle(install.settings, make_stores(install.settings))

    assert deleted == [204]
    assert install.client.get(f"/api/v1/videos/{video_id}", headers=auth).status_code == 404
    assert left_behind(install, video_id) == []


def test_a_storyboard_recorded_during_the_deletions_sweep_is_removed_with_the_video(site, clip, monkeypatch):
    """The worker has its tiles when the deletion's first sweep runs, then uploads its sheets and records them
    before the deletion commits: the sweep never saw those files."""
    install, auth = site
    video_id = ready_without_storyboard(install, auth, clip)
    swept, recorded = threading.Event(), threading.Event()
    answers: list[int] = []
    owners: list[threading.Thread] = []
    api_media = install.app.state.stores.media
    sweep, make = api_media.delete_prefix, workers.pipeline.make_storyboard

    def first_sweep_then_wait(prefix: str) -> int:
        removed = sweep(prefix)
        if not swept.is_set():
            swept.set()
            assert recorded.wait(60)
        return removed

    def delete_now(*args, **kwargs):
        owner = threading.Thread(
            target=lambda: answers.append(install.client.delete(f"/api/v1/videos/{video_id}", headers=auth).status_code)
        )
        owner.start()
        owners.append(owner)
        assert swept.wait(60)
        return make(*args, **kwargs)

    monkeypatch.setattr(api_media, "delete_prefix", first_sweep_then_wait)
    monkeypatch.setattr(workers.pipeline, "make_storyboard", delete_now)
    outcomes = run_until_idle(install.settings, make_stores(install.settings))
    recorded.set()
    for owner in owners:
        owner.join(60)

    assert outcomes == ["succeeded"]  # the storyboard was made and recorded, the video row still there
    assert answers == [204]
    assert install.client.get(f"/api/v1/videos/{video_id}", headers=auth).status_code == 404
    assert left_behind(install, video_id) == []

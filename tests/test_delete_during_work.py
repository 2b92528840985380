"""Deleting a video while a worker still writes for it leaves nothing in the store.

Seen in CI: a video was deleted moments after it went ready, while its storyboard part (which runs after
`ready`) was uploading sprite sheets; the sheets and the track landed after the deletion's sweep and stayed
for ever, named by no row. The storyboard's file names carry no attempt tag, so the part's own cleanup did not
take them. The moments are forced here by running the deletion (the real API route) from inside the worker's
storyboard step, or the worker from inside the deletion's first sweep; everything else is real (SQLite, local
blobs, ffmpeg, the worker's own code in this process).

Also seen in CI, on PostgreSQL: the same deletion answered 503, its transaction aborted as a deadlock with the
worker recording the storyboard (each held a row the other needed). The last tests run the worker's own
transactions on a PostgreSQL database of their own and start the deletion while the worker holds its first row
lock (a hook on the worker's engine pauses it there until the deletion waits for that lock).
"""

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlmodel import Session, col, select

import api.video_deletion
import workers.pipeline
from core.blobs import make_stores
from core.db import get_engine
from schemas.tables import FailureKind, JobState, TranscodeJob
from tests.conftest import PG_ADMIN
from tests.inprocess import LocalApp, local_app
from tests.media import make_clip
from workers.job import end_generation, run_next, run_until_idle

SETTINGS = {"per_title": False, "measure_vmaf": False, "first_range_seconds": 2, "range_seconds": 4}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("delete") / "clip.mp4", size="320x180", seconds=4, channels=2)


@pytest.fixture
def site(tmp_path) -> Iterator[tuple[LocalApp, dict[str, str]]]:
    with local_app(tmp_path / "data", **SETTINGS) as install:
        yield install, install.as_user(install.user())


def uploaded(install: LocalApp, auth: dict[str, str], clip: Path) -> str:
    """A video uploaded through the API; its id."""
    with clip.open("rb") as f:
        r = install.client.post("/api/v1/videos", files={"file": ("clip.mp4", f)}, headers=auth)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def ready_without_storyboard(install: LocalApp, auth: dict[str, str], clip: Path) -> str:
    """A video uploaded through the API and run by the worker until it is ready, its storyboard still queued."""
    video_id = uploaded(install, auth, clip)
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


@pytest.fixture
def pg_site(tmp_path: Path, own_postgres: tuple[str, str]) -> Iterator[tuple[LocalApp, dict[str, str], str]]:
    """An install on a PostgreSQL database of its own, with PostgreSQL's default deadlock_timeout (1 s) whatever
    the server's: the tests order the deadlock's waiters by a margin below it."""
    database, url = own_postgres
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{database}\" SET deadlock_timeout = '1s'")
    with local_app(tmp_path / "data", database_url=url, playback_secret=secrets.token_urlsafe(48), **SETTINGS) as site:
        yield site, site.as_user(site.user()), database


@contextmanager
def paused_before(engine: Engine, statement: str, meanwhile: Callable[[], None]) -> Iterator[None]:
    """Runs `meanwhile` once, just before this engine first sends a statement starting with `statement`."""
    fired: list[str] = []

    def hook(conn: Any, cursor: Any, sent: str, parameters: Any, context: Any, executemany: bool) -> None:
        if sent.startswith(statement) and not fired:
            fired.append(sent)
            meanwhile()

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", hook)
    assert fired, f"the worker never sent {statement!r}"


def delete_in_background(install: LocalApp, auth: dict[str, str], video_id: str, database: str) -> Callable[[], int]:
    """Starts the owner's DELETE and returns once it waits for a row lock in `database`; call the result for
    its status code (a failure answers as a deployed server does, not raised into the test)."""
    answers: list[int] = []
    as_deployed = TestClient(install.app, raise_server_exceptions=False)
    owner = threading.Thread(
        target=lambda: answers.append(as_deployed.delete(f"/api/v1/videos/{video_id}", headers=auth).status_code)
    )
    owner.start()
    deadline = time.monotonic() + 30
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
        while not conn.execute(query, (database,)).fetchone()[0]:  # type: ignore[index]
            assert owner.is_alive() and time.monotonic() < deadline, f"the deletion never waited: {answers}"
            time.sleep(0.02)
    # PostgreSQL aborts the first waiter of a deadlock (its deadlock_timeout runs out first): keep the deletion
    # that waiter by a clear margin, whatever the machine's load.
    time.sleep(0.3)

    def answer() -> int:
        owner.join(60)
        return answers[0]

    return answer


@contextmanager
def deleted_before(
    statement: str, install: LocalApp, auth: dict[str, str], video_id: str, database: str
) -> Iterator[list[Callable[[], int]]]:
    """The owner deletes the video just before the worker (this process's engine) sends `statement`; yields
    the deletions started, each to be called for its status code."""
    deletions: list[Callable[[], int]] = []

    def delete_now() -> None:
        deletions.append(delete_in_background(install, auth, video_id, database))

    with paused_before(get_engine(install.settings), statement, delete_now):
        yield deletions


def test_a_video_deleted_while_its_storyboard_is_recorded_is_deleted_without_a_deadlock(pg_site, clip, monkeypatch):
    """The storyboard part holds its part row and is about to update the video when the owner deletes it. The
    deletion gets no second attempt here: it succeeds because no deadlock happens, not because it was retried."""
    install, auth, database = pg_site
    monkeypatch.setattr(api.video_deletion, "ATTEMPTS", 1)
    video_id = ready_without_storyboard(install, auth, clip)
    with deleted_before("UPDATE videos SET storyboard_track", install, auth, video_id, database) as deletions:
        outcomes = run_until_idle(install.settings, make_stores(install.settings))

    assert [answer() for answer in deletions] == [204]
    assert outcomes == ["succeeded"]  # the worker was not aborted either
    assert install.client.get(f"/api/v1/videos/{video_id}", headers=auth).status_code == 404
    assert left_behind(install, video_id) == []


@pytest.mark.parametrize("attempts", [1, api.video_deletion.ATTEMPTS])
def test_a_video_deleted_while_its_encode_is_failed_is_deleted(pg_site, clip, monkeypatch, attempts):
    """Failing an encode locks its job before its parts, the other way round from recording a part: the
    deletion waits for the job while holding the parts and PostgreSQL aborts it as the deadlock's victim. Run
    again once the failure has committed, it succeeds; with no second attempt the owner gets a 503 and the video
    is kept whole, failed, to be deleted again."""
    install, auth, database = pg_site
    monkeypatch.setattr(api.video_deletion, "ATTEMPTS", attempts)
    video_id = uploaded(install, auth, clip)
    assert run_next(install.settings, make_stores(install.settings)) != "idle"  # planned into parts
    engine = get_engine(install.settings)
    with Session(engine) as s:
        job = s.execute(select(TranscodeJob).where(col(TranscodeJob.video_id) == video_id)).scalar_one()
    assert job.state == JobState.running and job.lease is not None
    with deleted_before("UPDATE job_parts", install, auth, video_id, database) as deletions:
        ended = end_generation(engine, make_stores(install.settings), job.id, job.lease, JobState.failed,
                               "a range failed for good", FailureKind.ffmpeg)  # fmt: skip

    assert ended
    if attempts == 1:
        assert [answer() for answer in deletions] == [503]
        kept = install.client.get(f"/api/v1/videos/{video_id}", headers=auth)
        assert kept.status_code == 200 and kept.json()["status"] == "failed"
        assert install.client.delete(f"/api/v1/videos/{video_id}", headers=auth).status_code == 204
    else:
        assert [answer() for answer in deletions] == [204]
    assert install.client.get(f"/api/v1/videos/{video_id}", headers=auth).status_code == 404
    assert left_behind(install, video_id) == []

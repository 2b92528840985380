"""When something under the API fails, clients get JSON they can act on: dropped database connections are
reconnected, an unreachable database is a 503 with Retry-After, a full disk is a 507; nothing half-written."""

import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.conftest import PG_ADMIN
from tests.inprocess import local_app
from tests.media import make_clip


@pytest.fixture
def own_database(own_postgres: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """A database of this test's own (it is made unreachable), beside the session's."""
    yield own_postgres
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{own_postgres[0]}" WITH ALLOW_CONNECTIONS true')


def _kill_connections(name: str) -> int:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def test_dropped_connections_are_replaced_and_an_unreachable_database_is_a_503(tmp_path, own_database):
    name, url = own_database
    with local_app(tmp_path / "install", database_url=url, playback_secret="s" * 48) as install:
        headers = install.as_user(install.user())
        for _ in range(3):
            assert install.client.get("/api/v1/videos", headers=headers).status_code == 200
        assert _kill_connections(name) >= 1  # every pooled connection is dead now
        answers = [install.client.get("/api/v1/videos", headers=headers).status_code for _ in range(10)]
        assert answers == [200] * 10

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        _kill_connections(name)
        as_deployed = TestClient(install.app, raise_server_exceptions=False)  # a server answers, never raises
        down = as_deployed.get("/api/v1/videos", headers=headers)
        assert down.status_code == 503
        assert down.headers["retry-after"].isdigit()
        assert "unavailable" in down.json()["detail"] and "127.0.0.1" not in down.text

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        assert install.client.get("/api/v1/videos", headers=headers).status_code == 200


def test_full_disk_on_upload_is_a_507_and_leaves_nothing(tmp_path: Path):
    data = tmp_path / "install"
    data.mkdir()
    clip = make_clip(tmp_path / "clip.mp4", size="640x360", seconds=3)
    size_kib = 512  # the database and folders fit; a 2 MB source does not
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(data)], check=True)
    try:
        with local_app(data) as install:
            headers = install.as_user(install.user())
            as_deployed = TestClient(install.app, raise_server_exceptions=False)
            with clip.open("rb") as f:
                r = as_deployed.post("/api/v1/videos", files={"file": ("clip.mp4", f)}, headers=headers)
            assert r.status_code == 507, r.text
            assert "storage" in r.json()["detail"]
            assert install.client.get("/api/v1/videos", headers=headers).json()["items"] == []
            sources = data / "blobs" / "sources"
            assert not [p for p in sources.rglob("*") if p.is_file()] if sources.exists() else True
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_connections_killed_mid_request_never_reach_a_viewer(tmp_path, own_database):
    """pg_terminate_backend over and over while viewers read: each idempotent request whose connection died under
    it runs once more on a fresh one; nobody sees a 5xx."""
    name, url = own_database
    with local_app(tmp_path / "install", database_url=url, playback_secret="s" * 48) as install:
        headers = install.as_user(install.user())
        as_deployed = TestClient(install.app, raise_server_exceptions=False)
        stop = threading.Event()

        def killer() -> int:
            kills = 0
            while not stop.is_set():
                kills += _kill_connections(name)
                time.sleep(0.1)
            return kills

        def reader() -> list[int]:
            return [as_deployed.get("/api/v1/videos", headers=headers).status_code for _ in range(60)]

        with ThreadPoolExecutor(max_workers=5) as pool:
            killed = pool.submit(killer)
            readers = [pool.submit(reader) for _ in range(4)]
            answers = [code for r in readers for code in r.result()]
            stop.set()
            assert killed.result() >= 5, "the test did not kill connections under the requests"
        assert answers == [200] * len(answers), sorted(set(answers))

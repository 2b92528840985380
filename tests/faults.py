"""A stack of its own for fault tests: its own PostgreSQL database, Redis server and Azurite, so a test can
restart Redis, take the blob store away or freeze a worker without touching the session's shared stack."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import m3u8
import psutil
import redis
from azure.storage.blob import BlobServiceClient

from tests.conftest import (
    AZURITE_BIN,
    AZURITE_KEY,
    UPLOAD_LIMIT,
    Stack,
    drop_pg_database,
    free_port,
    make_user,
    new_pg_database,
    start_api,
    start_worker,
    stop,
    wait_for,
)


def _listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


@dataclass
class Service:
    """A server process that a test may kill and start again on the same port (and data)."""

    argv: list[str]
    port: int
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _listening(self.port), f"{self.argv[0]} on {self.port}", proc=self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def shut_down(self) -> None:
        """A clean stop (Azurite saves its blob index on SIGTERM; SIGKILL would lose recent containers)."""
        if self.proc is not None:
            stop(self.proc)


@dataclass
class FaultStack(Stack):
    redis: Service | None = None
    azurite: Service | None = None
    azurite_conn: str = ""
    workers: list[subprocess.Popen] = field(default_factory=list)

    def add_worker(self, name: str) -> subprocess.Popen:
        assert self.logs is not None
        proc = start_worker(self.env, self.logs, name=f"{name}-{secrets.token_hex(2)}")
        self.workers.append(proc)
        return proc


def worker_tree(proc: subprocess.Popen) -> list[psutil.Process]:
    """A worker's main process and everything under it (its pool, their ffmpegs)."""
    main = psutil.Process(proc.pid)
    return [main, *main.children(recursive=True)]


def signal_tree(procs: list[psutil.Process], sig: int) -> None:
    for p in procs:
        with suppress(psutil.NoSuchProcess):
            p.send_signal(sig)


@contextmanager
def fault_stack(tmp: Path, logs: Path, workers: int = 1, **settings: str) -> Iterator[FaultStack]:
    """API + `workers` worker processes on a database, Redis and Azurite of their own; `settings` become
    STREAMIFY_* variables (e.g. ffmpeg_stall_seconds="5")."""
    if not AZURITE_BIN.exists() or not shutil.which("redis-server"):
        raise RuntimeError("fault tests need redis-server and Azurite (run `make test` to install them)")
    name, url = new_pg_database()
    database_url = url.replace("postgresql://", "postgresql+psycopg://")
    redis_port, blob_port = free_port(), free_port()
    redis_server = Service(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        redis_port,
    )
    location = tmp / "azurite"
    location.mkdir()
    azurite = Service(
        [str(AZURITE_BIN), "--silent", "--location", str(location), "--blobHost", "127.0.0.1", "--blobPort",
         str(blob_port), "--skipApiVersionCheck", "--loose"],
        blob_port,
    )  # fmt: skip
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/devstoreaccount1;"
    )
    env = {
        **os.environ,
        "STREAMIFY_DATA_DIR": str(tmp / "data"),
        "STREAMIFY_DATABASE_URL": database_url,
        "STREAMIFY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "STREAMIFY_QUEUE": f"transcode-faults-{secrets.token_hex(4)}",
        "STREAMIFY_AZURE_CONNECTION_STRING": conn,
        "STREAMIFY_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "STREAMIFY_PLAYBACK_SECRET": secrets.token_urlsafe(48),
        **{f"STREAMIFY_{k.upper()}": v for k, v in settings.items()},
    }
    stack = FaultStack(url="", env=env, database_url=database_url, logs=logs, redis=redis_server, azurite=azurite)
    stack.azurite_conn = conn
    try:
        redis_server.start()
        azurite.start()
        from core.db import migrate
        from core.settings import Settings

        migrate(Settings(database_url=database_url, data_dir=tmp / "data"))
        for i in range(workers):
            stack.add_worker(f"fault-worker-{i}")
        api, stack.url = start_api(env, logs)
        stack.procs["api"] = api
        _, stack.token = make_user(database_url)
        yield stack
    finally:
        for proc in [*stack.workers, *stack.procs.values()]:
            signal_tree(worker_tree(proc) if proc.poll() is None else [], signal.SIGCONT)
            stop(proc)
        redis_server.kill()
        azurite.kill()
        drop_pg_database(name)


def empty_redis(stack: FaultStack) -> None:
    """Redis restarted without persistence: every doorbell in it is gone."""
    assert stack.redis is not None
    stack.redis.kill()
    stack.redis.start()
    assert redis.Redis(port=stack.redis.port).dbsize() == 0


def parts_of(stack: Stack, video_id: str) -> list[dict]:
    """The parts of the video's current encode (core.parts), as rows."""
    return stack.sql(
        "SELECT p.* FROM job_parts p JOIN transcode_jobs j ON j.id = p.job_id AND j.lease = p.generation "
        "WHERE p.video_id = %s ORDER BY p.kind DESC, p.index",
        video_id,
    )


def published_files(stack: Stack, video_id: str) -> set[str]:
    """Every file the published playlists name exists in the store, and no segment or init they do not name
    (another attempt's) is there; returns the keys of the video's files."""
    conn = stack.env["STREAMIFY_AZURE_CONNECTION_STRING"]
    media = BlobServiceClient.from_connection_string(conn).get_container_client("streamify-media")
    root = stack.sql("SELECT media_root FROM videos WHERE id = %s", video_id)[0]["media_root"]
    assert root and root.startswith(f"{video_id}/")
    # The store's copies of the playlists follow the video's `ready` (viewers read them from the database).
    wait_for(lambda: media.get_blob_client(root + "master.m3u8").exists(), "the master's copy in the store", 30)
    master = m3u8.loads(media.download_blob(root + "master.m3u8").readall().decode())
    named = {root + "master.m3u8"}
    for uri in [v.uri for v in master.playlists] + [m.uri for m in master.media if m.uri]:
        folder = root + uri.rsplit("/", 1)[0] + "/"
        playlist = m3u8.loads(media.download_blob(root + uri).readall().decode())
        named |= {root + uri, folder + playlist.segment_map[0].uri}
        named |= {folder + s.uri for s in playlist.segments}
    stored = {b.name for b in media.list_blobs(name_starts_with=f"{video_id}/")}
    assert named <= stored, f"published playlists name missing files: {sorted(named - stored)[:5]}"
    others = {k for k in stored if not k.startswith(root) and "/captions/" not in k}
    assert not others, f"files of other attempts are left: {sorted(others)[:5]}"
    media_files = {k for k in stored if k.endswith((".m4s", ".mp4"))}
    assert media_files <= named, f"segments no playlist names: {sorted(media_files - named)[:5]}"
    return stored

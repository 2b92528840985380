"""The load suite's own backing services, each one the suite may break: a Redis, an Azurite, a database.

The suite restarts Redis, freezes Azurite and kills database connections, so it never uses the shared
Redis on 6379 or a shared database: it starts a redis-server and an Azurite of its own on free loopback ports
and creates (then drops) its own PostgreSQL database on the local server.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account key (public, documented by Microsoft).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PG_ADMIN = os.environ.get("STREAMIFY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} not listening on 127.0.0.1:{port} after {timeout:.0f}s")


def kill(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


@dataclass
class Redis:
    """redis-server without persistence (like the shared one): a restart loses every queued message."""

    port: int
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "redis-server")

    def restart(self) -> None:
        """Killed outright and started again on the same port: everything it held is gone."""
        kill(self.proc)
        self.start()

    def stop(self) -> None:
        kill(self.proc)


@dataclass
class Azurite:
    """Azurite's blob service on a fixed port and data folder, so a freeze or a restart keeps the blobs."""

    port: int
    location: Path
    proc: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def blob_endpoint(self) -> str:
        """As STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT names a secondary: the account's blob service URL."""
        return f"http://127.0.0.1:{self.port}/devstoreaccount1"

    def fallback_env(self, kind: str) -> dict[str, str]:
        """The setting that makes this store nginx's fallback origin: a mirror the workers write ("mirror"), or the
        read-only secondary of an RA-GRS account ("ragrs", brought up to date by replicate_to)."""
        if kind == "mirror":
            return {"STREAMIFY_AZURE_MIRROR_CONNECTION_STRING": self.connection_string}
        return {"STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT": self.blob_endpoint}

    def replicate_to(self, secondary: "Azurite", container: str) -> int:
        """Make `secondary`'s copy of `container` match this one's; how many blobs it copied or deleted.

        Stands in for Azure's geo-replication (RA-GRS), which no emulator runs (Azurite has no second region).
        Blobs are compared by name and size (media blobs are never rewritten in place); their content type and
        cache control travel with them, as Azure replicates them.
        """
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import BlobServiceClient

        source = BlobServiceClient.from_connection_string(self.connection_string).get_container_client(container)
        target = BlobServiceClient.from_connection_string(secondary.connection_string).get_container_client(container)
        if not target.exists():
            target.create_container()
        have = {b.name: b.size for b in target.list_blobs()}
        changed = 0
        for blob in source.list_blobs():
            if have.pop(blob.name, None) == blob.size:
                continue
            try:
                data = source.download_blob(blob.name).readall()
            except ResourceNotFoundError:  # deleted since the listing (a worker's scratch part): nothing to copy
                continue
            target.upload_blob(blob.name, data, overwrite=True, content_settings=blob.content_settings)
            changed += 1
        for name in have:  # deleted on the primary since the last round
            with contextlib.suppress(ResourceNotFoundError):
                target.delete_blob(name)
            changed += 1
        return changed

    def start(self) -> None:
        if not AZURITE_BIN.exists():
            raise RuntimeError(f"Azurite is required: {AZURITE_BIN} missing (run `npm ci`)")
        self.location.mkdir(parents=True, exist_ok=True)
        argv = [str(AZURITE_BIN), "--silent", "--location", str(self.location), "--blobHost", "127.0.0.1",
                "--blobPort", str(self.port), "--skipApiVersionCheck", "--loose"]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "Azurite")

    def freeze(self) -> None:
        """An outage as clients see a hung storage endpoint: connections open, nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def shut_down(self) -> None:
        """An outage as clients see an unreachable endpoint (connections refused). SIGTERM lets Azurite save its
        metadata, so the blobs are all there when it comes back on the same port and folder, as on Azure."""
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill(self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen process cannot act on anything else
        kill(self.proc)  # SIGTERM makes Azurite wait for requests it never answered


@dataclass
class Database:
    """A PostgreSQL database of the suite's own on the local server (like tests/conftest.py new_pg_database)."""

    name: str = field(default_factory=lambda: f"streamify_load_{secrets.token_hex(4)}")

    @property
    def url(self) -> str:
        return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{self.name}"

    def create(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def terminate_connections(self) -> int:
        """What a database failover or a proxy restart does to every client: each open connection is cut."""
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.name,),
            ).fetchall()
        return sum(1 for (done,) in rows if done)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(PG_ADMIN.rsplit("/", 1)[0] + f"/{self.name}", connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

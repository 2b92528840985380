"""Real services for the tests: PostgreSQL, Redis, Azurite, a Celery worker and API processes.

A service that is missing makes the tests that need it fail (never skip): CI must not go green on a
machine where half the stack is absent.
"""

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from cli.client import StreamifyClient
from tests.media import make_clip, make_rotated

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("STREAMIFY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("STREAMIFY_TEST_REDIS", "redis://127.0.0.1:6379/0")
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
UPLOAD_LIMIT = 48 * 1024 * 1024
POLL_SECONDS = 0.2  # how often the tests ask for a video's status


# Test tiers (`make test-fast` runs the tests with none of these markers; `make test` runs them all). The markers
# follow from the fixtures a test uses, directly or through other fixtures, so a new test is classed by what it
# needs; a test that starts such a process itself carries the marker in its own file.
STACK_FIXTURES = {
    "postgres_url",
    "own_postgres",
    "redis_url",
    "azurite",
    "stack",
    "embedded",  # `streamify up`
    "fault_logs",
}
STACK_PARAMS = {"postgresql", "azure"}  # fixture params that open a PostgreSQL database or Azurite themselves
BROWSER_FIXTURES = {"browser"}
SLOW_FIXTURES = {"clips", "big_clips", "long_clip", "broken_clip"}  # seconds of ffmpeg encoding each


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(item.fixturenames)
        params = set(map(str, item.callspec.params.values())) if hasattr(item, "callspec") else set()
        if used & STACK_FIXTURES or params & STACK_PARAMS:
            item.add_marker(pytest.mark.stack)
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, timeout: float = 30.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # service still starting
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout}s: {last}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def new_pg_database() -> tuple[str, str]:
    name = f"streamify_test_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN}: {exc}")
    return name, PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "1080p": make_clip(d / "1080p_51.mp4"),
        "720p_short": make_clip(d / "720p.mp4", size="1280x720", seconds=5, channels=2),
        "silent": make_clip(d / "silent.mkv", size="640x360", seconds=4, audio=False),
        "audio": make_clip(d / "music.m4a", video=False, seconds=6, channels=2),
        "phone": make_rotated(make_clip(d / "land.mp4", size="1280x720", seconds=5, channels=1), d / "phone.mov", 90),
    }


@contextmanager
def pg_database() -> Iterator[tuple[str, str]]:
    """A new PostgreSQL database (its name, its SQLAlchemy URL), dropped afterwards."""
    name, url = new_pg_database()
    try:
        yield name, url.replace("postgresql://", "postgresql+psycopg://")
    finally:
        drop_pg_database(name)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with pg_database() as (_, url):
        yield url


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, str]]:
    """A PostgreSQL database of the test's own (name, SQLAlchemy URL): no other test's worker takes its jobs."""
    with pg_database() as database:
        yield database


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_URL}: {exc}")
    return REDIS_URL


@dataclass
class Azurite:
    port: int
    connection_string: str


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> Iterator[Azurite]:
    if not AZURITE_BIN.exists():
        pytest.fail(f"Azurite is required: {AZURITE_BIN} missing (run `npm ci`)")
    port = free_port()
    location = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [
            str(AZURITE_BIN),
            "--silent",
            "--location",
            str(location),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--skipApiVersionCheck",
            "--loose",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, "Azurite", proc=proc)
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    yield Azurite(port, conn)
    stop(proc)


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    database_url: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: Path | None = None
    token: str = ""  # API token of the stack's default creator

    def client(self, token: str | None = None, *, anonymous: bool = False) -> httpx.Client:
        """A client signed in as the default creator (or with `token`, or as an anonymous viewer)."""
        token = None if anonymous else (token or self.token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)

    def new_user(self, email: str | None = None, *, operator: bool = False) -> tuple[str, str]:
        """Create an account straight in the database; returns (email, API token)."""
        return make_user(self.database_url, email, operator=operator)

    def sql(self, query: str, *args) -> list[dict]:
        """Rows of the stack's database, as dicts."""
        import psycopg

        with psycopg.connect(self.database_url.replace("+psycopg", ""), row_factory=psycopg.rows.dict_row) as conn:
            return conn.execute(query, args).fetchall()

    def settings(self):
        from core.settings import Settings

        return Settings(
            **{k.removeprefix("STREAMIFY_").lower(): v for k, v in self.env.items() if k.startswith("STREAMIFY_")}
        )


def make_user(database_url: str, email: str | None = None, *, operator: bool = False) -> tuple[str, str]:
    from sqlmodel import Session

    from core.accounts import create_user, mint_token
    from core.db import make_engine
    from schemas.tables import TokenKind

    email = email or f"creator-{secrets.token_hex(4)}@example.test"
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            user = create_user(session, email, "correct horse battery", is_operator=operator)
            token, _ = mint_token(session, user, TokenKind.api, name="tests")
    finally:
        engine.dispose()
    return email, token


def start_api(env: dict[str, str], logs: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or free_port()
    out = (logs / f"api-{port}.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=out,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, "API", timeout=60, proc=proc)
    return proc, url


def start_worker(env: dict[str, str], logs: Path, name: str = "worker") -> subprocess.Popen:
    """The worker exactly as `streamify worker` runs it, with a name of its own."""
    from workers.launch import worker_argv

    out = (logs / f"{name}.log").open("w")
    argv = [*worker_argv(1, "prefork", env["STREAMIFY_QUEUE"]), "--hostname", f"{name}@%h"]
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=out)


@pytest.fixture(scope="session")
def stack(tmp_path_factory, postgres_url, redis_url, azurite) -> Iterator[Stack]:
    """The real stack: PostgreSQL + Redis broker + Azurite blobs, one API process, one worker process."""
    from core.db import migrate
    from core.settings import Settings

    data = tmp_path_factory.mktemp("stack")
    logs = ROOT / "test-artifacts" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "STREAMIFY_DATA_DIR": str(data),
        "STREAMIFY_DATABASE_URL": postgres_url,
        "STREAMIFY_BROKER_URL": redis_url,
        "STREAMIFY_QUEUE": f"transcode-test-{secrets.token_hex(4)}",
        "STREAMIFY_AZURE_CONNECTION_STRING": azurite.connection_string,
        "STREAMIFY_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        # Required with an external database (every node and nginx share it): api/access.py.
        "STREAMIFY_PLAYBACK_SECRET": secrets.token_urlsafe(48),
        # Outbound requests to user-given URLs (imports, webhooks) may reach the tests' own servers on 127.0.0.1.
        "STREAMIFY_EGRESS_ALLOWED_HOSTS": "127.0.0.1",
    }
    migrate(Settings(database_url=postgres_url, data_dir=data))
    worker = start_worker(env, logs)
    api, url = start_api(env, logs)
    _, token = make_user(postgres_url)
    s = Stack(url=url, env=env, database_url=postgres_url, procs={"api": api, "worker": worker}, logs=logs, token=token)
    yield s
    for proc in s.procs.values():
        stop(proc)


def wait_status(client: httpx.Client, video_id: str, statuses=("ready", "failed"), timeout: float = 300) -> dict:
    """The video as JSON once its status is one of `statuses` (the client's poll: an API briefly down is waited
    out; TimeoutError after `timeout`)."""
    video = StreamifyClient.wrap(client).wait_until(
        video_id, lambda v: v.status in statuses, timeout=timeout, interval=POLL_SECONDS
    )
    return video.model_dump(mode="json")


def wait_finished(client: httpx.Client, video_id: str, timeout: float = 300) -> dict:
    """Ready, and with its storyboard when it has a picture: the storyboard is a part of its own that runs once the
    video is ready (workers.parts), and the API names it only once it exists."""
    video = wait_status(client, video_id, timeout=timeout)
    assert video["status"] == "ready", video["error"]
    if not video["has_video"]:
        return video
    until = StreamifyClient.wrap(client).wait_until(
        video_id, lambda v: v.storyboard_url is not None, timeout=120, interval=POLL_SECONDS
    )
    return until.model_dump(mode="json")


def upload(client: httpx.Client, path: Path, title: str | None = None) -> httpx.Response:
    """The raw multipart POST, for tests of the HTTP answer itself (status, headers, a refusal's body); the client
    (cli/client.py) turns those into StreamifyError."""
    with path.open("rb") as f:
        return client.post("/api/v1/videos", files={"file": (path.name, f)}, data={"title": title} if title else {})


@pytest.fixture
def fault_logs(tmp_path) -> Path:
    """Logs of a test's own stack (tests/faults.py), kept under test-artifacts/ for a failure's post-mortem."""
    logs = ROOT / "test-artifacts" / "logs" / tmp_path.name
    logs.mkdir(parents=True, exist_ok=True)
    return logs


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for every page test (Playwright never downloads a browser here)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is required at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield CspBypassingBrowser(b)
        b.close()


class CspBypassingBrowser:
    """The pages' Content-Security-Policy (api/headers.py) forbids eval, and Playwright's `wait_for_function`
    evaluates its predicate with eval inside the page: contexts bypass the CSP unless a test asks for it
    (`new_context(bypass_csp=False)`, as tests/test_private_playback.py does to check the pages under it)."""

    def __init__(self, browser) -> None:
        self._browser = browser

    def new_context(self, **options):
        options.setdefault("bypass_csp", True)
        return self._browser.new_context(**options)

    def new_page(self, **options):
        options.setdefault("bypass_csp", True)
        return self._browser.new_page(**options)

    def __getattr__(self, name: str):
        return getattr(self._browser, name)


@pytest.fixture
def contexts(browser) -> Iterator[list]:
    """Browser contexts a test opens (append them here): closed when it ends, passed or failed."""
    made: list = []
    yield made
    for context in made:
        context.close()


@pytest.fixture(scope="module")
def proxy(stack):
    """A TCP proxy in front of the stack's API whose connections the test can cut (tests/uploads.py)."""
    from tests.uploads import Proxy

    p = Proxy(stack.url)
    yield p
    p.close()


@pytest.fixture(scope="module")
def big_clips(tmp_path_factory) -> list[Path]:
    from tests.uploads import make_big_clips

    return make_big_clips(tmp_path_factory.mktemp("big"))

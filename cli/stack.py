"""The load-balanced shape on one machine: nginx in front of N API nodes and a worker.

`streamify up --nodes N` runs it; the nginx config comes from infra/nginx/nginx.conf.j2, rendered here
from settings, so the local stack, compose (`python -m cli.stack render`) and the tests share one config.
Segments never reach Python: nginx serves /media/ from the blob directory (local disk) or from its disk
cache of Azure Blob (fetched with a read-only SAS only nginx holds). A private video's media URLs are signed
(core/playback_tokens.py) and nginx checks them itself; for unsigned ones it asks a node once per video and
caches the answer. Playlists and everything else go to the API nodes, with retries of idempotent requests
when a node dies.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import urlsplit

import httpx
import jinja2
import typer
from pydantic import SecretStr
from rich.console import Console

from api.limits import MULTIPART_SLACK
from core.blobs import MEDIA_URL_PREFIX, cache_control_for, content_type_for
from core.playback_secret import local_secret, playback_secret
from core.playback_tokens import nginx_key
from core.processes import die_with_parent
from core.settings import Settings

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "infra" / "nginx"
TEMPLATE = "nginx.conf.j2"
DELIVERY_HEADER = "X-Streamify-Delivery"  # set by nginx only: proves a response never touched Python
# What /media/ serves; anything else there is 404. Types and Cache-Control come from core.blobs.
MEDIA_EXTENSIONS = (".m4s", ".mp4", ".ts", ".aac", ".jpg", ".m3u8", ".vtt")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Every request body but an upload's: the largest is a caption file (ingest.captions.MAX_CAPTION_BYTES, 2 MiB, plus
# its multipart framing). Uploads (multipart and tus) stream to a node unbuffered, up to the upload limit.
BODY_LIMIT_BYTES = 4 * 1024 * 1024
# The first path segment of every media key: a video id as str(uuid) writes it (core.media_keys.media_prefix).
VIDEO_ID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass(frozen=True)
class MediaRule:
    """Extensions that share one Cache-Control value (one nginx location)."""

    cache_control: str
    types: tuple[tuple[str, str], ...]  # (extension without dot, Content-Type)

    @property
    def pattern(self) -> str:
        return "|".join(ext for ext, _ in self.types)

    @property
    def private_cache_control(self) -> str:
        """For a signed (private video's) URL: the same lifetime, but never in a shared cache."""
        return "private" + self.cache_control.removeprefix("public")


def media_rules() -> list[MediaRule]:
    groups: dict[str, list[tuple[str, str]]] = {}
    for ext in MEDIA_EXTENSIONS:
        groups.setdefault(cache_control_for(f"x{ext}"), []).append((ext[1:], content_type_for(f"x{ext}")))
    return [MediaRule(cc, tuple(types)) for cc, types in groups.items()]


@dataclass(frozen=True)
class BlobOrigin:
    """The Azure media container as nginx reaches it, with the read-only SAS nginx appends."""

    scheme: str
    host: str
    port: int
    path: str  # container path, e.g. /devstoreaccount1/streamify-media (Azurite) or /streamify-media
    sas: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class NginxPlan:
    """Everything the template needs; built from settings by nginx_plan()."""

    listen: str
    nodes: tuple[str, ...]
    state_dir: str  # pid, temp and cache directories (one level deep: nginx creates them)
    error_log: str
    access_log: str
    upload_max_bytes: int  # STREAMIFY_MAX_UPLOAD_BYTES: the node enforces it too, while the body streams in
    segment_key: str  # checks private media signatures (derived from the playback secret: core/playback_tokens)
    media_root: str | None = None  # local disk: the directory that holds media/ (blob_dir)
    blob: BlobOrigin | None = None  # Azure: nginx proxies and caches
    user: str | None = None
    worker_processes: str = "auto"
    max_fails: int = 1
    fail_timeout: int = 10
    playlist_cache_seconds: int = 5
    media_cache_max_size: str = "10g"
    access_cache_seconds: int = 10
    ca_bundle: str = CA_BUNDLE
    body_max_bytes: int = BODY_LIMIT_BYTES  # every other location: nginx refuses (413) before buffering it to disk

    @property
    def upload_body_max_bytes(self) -> int:
        """An upload location's request body limit: the file plus the multipart framing the node allows (api.limits)."""
        return self.upload_max_bytes + MULTIPART_SLACK


def _quote(value: object, *more: str) -> str:
    """A path as one quoted nginx argument; refuse characters nginx would read as syntax or variables."""
    text = str(PurePosixPath(str(value), *more)) if more else str(value)
    if any(c in text for c in '"$\\{};\n\r') or not text:
        raise ValueError(f"unsafe value for the nginx config: {text!r}")
    return f'"{text}"'


def blob_origin(settings: Settings, *, days: int | None = None) -> BlobOrigin:
    """The media container URL and a read-only container SAS for nginx (media only: sources stay unreachable)."""
    from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

    assert settings.azure_connection_string
    container = ContainerClient.from_connection_string(settings.azure_connection_string, settings.azure_media_container)
    key = getattr(container.credential, "account_key", None)
    if not key:
        raise RuntimeError("nginx needs an account key in STREAMIFY_AZURE_CONNECTION_STRING to sign its SAS")
    now = datetime.now(UTC)
    sas = generate_container_sas(
        account_name=container.account_name,
        container_name=container.container_name,
        account_key=key,
        permission=ContainerSasPermissions(read=True),
        start=now - timedelta(minutes=5),
        expiry=now + timedelta(days=days or settings.nginx_blob_sas_days),
    )
    url = urlsplit(container.url)
    scheme = url.scheme or "https"
    return BlobOrigin(
        scheme=scheme,
        host=url.hostname or "",
        port=url.port or (443 if scheme == "https" else 80),
        path=url.path.rstrip("/"),
        sas=sas,
    )


def nginx_plan(
    settings: Settings,
    nodes: list[str],
    *,
    listen: str,
    state_dir: Path | str,
    error_log: str | None = None,
    access_log: str | None = None,
    user: str | None = None,
) -> NginxPlan:
    state = str(state_dir)
    return NginxPlan(
        listen=listen,
        nodes=tuple(nodes),
        state_dir=state,
        error_log=error_log or str(PurePosixPath(state, "error.log")),
        access_log=access_log or str(PurePosixPath(state, "access.log")),
        upload_max_bytes=settings.max_upload_bytes,
        segment_key=nginx_key(playback_secret(settings)),
        media_root=None if settings.uses_azure else str(settings.blob_dir.resolve()),
        blob=blob_origin(settings) if settings.uses_azure else None,
        user=user,
        media_cache_max_size=settings.nginx_cache_max_size,
        access_cache_seconds=settings.nginx_access_cache_seconds,
    )


def render_nginx(plan: NginxPlan, template_dir: Path = TEMPLATE_DIR) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - an nginx config, not HTML; values are checked by _quote
    )
    env.filters["q"] = _quote
    if plan.media_root is not None:
        _quote(plan.media_root)
    if not plan.segment_key.isalnum():
        raise ValueError("unsafe value for the nginx config: the segment key must be alphanumeric")
    from api.deps import SESSION_COOKIE

    return env.get_template(TEMPLATE).render(
        plan=plan, rules=media_rules(), header=DELIVERY_HEADER, video_id=VIDEO_ID_PATTERN, session_cookie=SESSION_COOKIE
    )


def nginx_exe(settings: Settings) -> str:
    found = settings.nginx_path or shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).is_file():
        raise RuntimeError(f"nginx not found ({found}): apt-get install nginx, or set STREAMIFY_NGINX_PATH")
    return found


def write_nginx_config(plan: NginxPlan, path: Path, template_dir: Path = TEMPLATE_DIR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_nginx(plan, template_dir))
    tmp.chmod(0o600)  # it may hold a SAS
    tmp.replace(path)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    url: str = ""

    def start(self, env: dict[str, str]) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches `up` only; it stops the children in order
            preexec_fn=die_with_parent(),
        )
        out.close()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class LocalStack:
    """nginx + N uvicorn nodes + one worker as child processes, logs under data_dir/logs."""

    settings: Settings
    nodes: int
    host: str
    port: int
    console: Console = field(default_factory=Console)
    children: list[Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        # One machine, one data dir: nodes and nginx share the data dir's playback secret unless one is given.
        if self.settings.playback_secret is None:
            secret = SecretStr(local_secret(self.settings.data_dir))
            self.settings = self.settings.model_copy(update={"playback_secret": secret})

    @property
    def nginx_dir(self) -> Path:
        return self.settings.data_dir.resolve() / "nginx"

    @property
    def log_dir(self) -> Path:
        return self.settings.data_dir.resolve() / "logs"

    def child_env(self) -> dict[str, str]:
        env = {**os.environ, "STREAMIFY_DATA_DIR": str(self.settings.data_dir.resolve())}
        assert self.settings.playback_secret is not None
        env["STREAMIFY_PLAYBACK_SECRET"] = self.settings.playback_secret.get_secret_value()
        if self.settings.uses_azure and not self.settings.segment_base_url:
            env["STREAMIFY_SEGMENT_BASE_URL"] = MEDIA_URL_PREFIX  # players fetch through nginx's cache
        return env

    def _node(self, index: int) -> Child:
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                "--port", str(port), "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]  # fmt: skip
        return Child(f"node {index}", argv, self.log_dir / f"api-{port}.log", url=f"http://127.0.0.1:{port}")

    def start(self) -> None:
        from cli.main import worker_argv

        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.nginx_dir.mkdir(parents=True, exist_ok=True)
        env = self.child_env()
        worker = Child("worker", worker_argv(1, "solo", self.settings.queue), self.log_dir / "worker.log")
        nodes = [self._node(i + 1) for i in range(self.nodes)]
        for child in [worker, *nodes]:
            child.start(env)
            self.children.append(child)
        for node in nodes:
            self._wait_http(f"{node.url}/readyz", node)
        plan = nginx_plan(
            self.settings,
            [n.url.removeprefix("http://") for n in nodes],
            listen=f"{self.host}:{self.port}",
            state_dir=self.nginx_dir,
            error_log=str(self.log_dir / "nginx-error.log"),
            access_log=str(self.log_dir / "nginx-access.log"),
            user=nginx_user(),
        )
        conf = write_nginx_config(plan, self.nginx_dir / "nginx.conf")
        exe = nginx_exe(self.settings)
        base = [exe, "-p", str(self.nginx_dir), "-e", plan.error_log, "-c", str(conf)]
        check = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused {conf}:\n{check.stderr}")
        nginx = Child("nginx", [*base, "-g", "daemon off;"], self.log_dir / "nginx-error.log", url=self.url)
        nginx.start(env)
        self.children.append(nginx)
        self._wait_http(f"{self.url}/readyz", nginx)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def _wait_http(self, url: str, child: Child, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.running():
                raise RuntimeError(f"{child.name} exited during start-up: see {child.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s: see {child.log}")

    def announce(self) -> None:
        self.console.print(
            f"[bold green]Streamify is up:[/] {self.url}/  (nginx in front of {self.nodes} API nodes; docs: /docs)"
        )
        for child in self.children:
            where = f"{child.url} " if child.url and child.name.startswith("node") else ""
            assert child.proc is not None
            self.console.print(f"  {child.name}: {where}pid {child.proc.pid}  log {child.log}", soft_wrap=True)
        self.console.print(f"  nginx config: {self.nginx_dir / 'nginx.conf'}", soft_wrap=True)

    def supervise(self, stop_requested) -> int:
        """Watch the children until asked to stop; a dead node is reported (nginx routes around it)."""
        reported: set[str] = set()
        while not stop_requested():
            for child in self.children:
                if child.running() or child.name in reported:
                    continue
                reported.add(child.name)
                assert child.proc is not None
                code = child.proc.returncode
                if child.name == "nginx":
                    self.console.print(f"[red]nginx exited ({code}):[/] see {child.log}")
                    return 1
                self.console.print(f"[yellow]{child.name} (pid {child.proc.pid}) exited with {code}[/]", soft_wrap=True)
            time.sleep(0.5)
        return 0

    def stop(self) -> None:
        """nginx first (no new requests), then the nodes, then the worker."""
        for child in reversed(self.children):
            child.stop(signal.SIGQUIT if child.name == "nginx" else signal.SIGTERM)


def nginx_user() -> str | None:
    """Started as root, nginx workers would drop to `nobody` and lose read access to a private data dir:
    keep them the invoking user, like every other process of the stack. Non-root: nginx cannot switch."""
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None


def run_stack(settings: Settings, *, nodes: int, host: str, port: int, console: Console) -> int:
    """Start everything, print the nginx URL, stop all children on Ctrl-C or SIGTERM."""
    stack = LocalStack(settings, nodes, host, port, console)
    stopping = False

    def _request_stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, _request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.start()
        stack.announce()
        code = stack.supervise(lambda: stopping)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        code = 1
    finally:
        console.print("stopping…")
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


cli = typer.Typer(help="Render the nginx front for a deployment (compose runs `render`).", no_args_is_help=True)


@cli.callback()
def _main() -> None:
    """nginx config tools."""


@cli.command()
def render(
    out: Annotated[Path, typer.Option(help="Where to write nginx.conf.")],
    node: Annotated[list[str], typer.Option(help="An API node as host:port (repeat).")],
    listen: Annotated[str, typer.Option(help="nginx listen address.")] = "80",
    state_dir: Annotated[str, typer.Option(help="pid, temp and cache directories (in nginx's filesystem).")] = (
        "/var/cache/nginx"
    ),
    error_log: Annotated[str, typer.Option()] = "stderr",
    access_log: Annotated[str, typer.Option()] = "/dev/stdout",
    template_dir: Annotated[Path, typer.Option(help="Folder holding nginx.conf.j2.")] = TEMPLATE_DIR,
) -> None:
    """Render nginx.conf from STREAMIFY_* settings for API nodes reachable at the given addresses."""
    settings = Settings()  # from the environment, uncached
    plan = nginx_plan(settings, node, listen=listen, state_dir=state_dir, error_log=error_log, access_log=access_log)
    write_nginx_config(plan, out, template_dir)
    typer.echo(f"wrote {out} ({len(node)} nodes, media from {'Azure Blob' if plan.blob else plan.media_root})")


if __name__ == "__main__":
    cli()

"""`streamify up --nodes N`: the load-balanced shape on one machine, as child processes of this one.

nginx (its config rendered by infra.nginx, the same as compose's and the Azure edge's) in front of N uvicorn
nodes and one worker started exactly as `streamify worker` starts it (workers.launch). Only supervision lives
here: start in order, wait for readiness, report a dead child, stop in reverse order.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr
from rich.console import Console

from core.blobs import MEDIA_URL_PREFIX
from core.playback_secret import local_secret
from core.processes import die_with_parent
from core.settings import Settings
from infra.nginx import nginx_exe, nginx_plan, nginx_user, write_nginx_config
from workers.launch import local_worker_argv


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now: each node gets its own without a fixed range to collide with."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Child:
    """One process of the stack with a log of its own, so a failed start points at the file that says why."""

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
        # Log lines reach the files as they happen (uvicorn's access log goes to stdout, which Python would
        # otherwise hold back in 8 KiB blocks): an operator tailing logs/ sees the request that just failed.
        env["PYTHONUNBUFFERED"] = "1"
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
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.nginx_dir.mkdir(parents=True, exist_ok=True)
        env = self.child_env()
        worker = Child(
            "worker",
            local_worker_argv(self.settings.worker_concurrency, self.settings.queue),
            self.log_dir / "worker.log",
        )
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

    def supervise(self, stop_requested: Callable[[], bool]) -> int:
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

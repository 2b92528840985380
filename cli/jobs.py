"""`streamify jobs`: the operator dashboard in a terminal, drawn from the same snapshot the page follows
(GET /api/v1/ops/snapshot with the caller's API token). `render` is pure: a snapshot in, a rich renderable out."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

SNAPSHOT_PATH = "/api/v1/ops/snapshot"
SPARK = " ▁▂▃▄▅▆▇█"
FAILURES_SHOWN = 5
QUEUE_SHOWN = 10


class SnapshotError(Exception):
    """The server refused (`refused`: the detail says why) or could not be reached."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def _ts(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _since(iso: str | None, now: datetime) -> str:
    then = _ts(iso)
    return duration((now - then).total_seconds()) if then else "–"


def sparkline(values: list[float]) -> str:
    top = max(values, default=0) or 1
    return "".join(SPARK[round(v / top * (len(SPARK) - 1))] for v in values)


def _counts(snap: dict) -> Text:
    counts = snap["counts"]
    parts = [("queued", "yellow"), ("running", "blue"), ("failed", "red"), ("succeeded", "green"), ("cancelled", "")]
    text = Text()
    for state, style in parts:
        text.append(f"{state} ", style="dim").append(str(counts.get(state, 0)), style=f"bold {style}".strip())
        text.append("   ")
    return text.append("workers ", style="dim").append(str(len(snap["workers"])), style="bold")


def _running(snap: dict) -> Table:
    table = Table(title="Running", title_justify="left", expand=True)
    for column, kw in (("video", {"ratio": 3}), ("progress", {"ratio": 2}), ("", {"justify": "right"}),
                       ("speed", {"justify": "right"}), ("fps", {"justify": "right"}), ("ETA", {"justify": "right"}),
                       ("worker", {"ratio": 2})):  # fmt: skip
        table.add_column(column, overflow="ellipsis", no_wrap=True, **kw)
    for job in snap["running"]:
        table.add_row(
            job["video_title"],
            ProgressBar(total=1.0, completed=job["progress"]),
            f"{job['progress'] * 100:.0f}%",
            f"{job['speed']:.2f}x" if job["speed"] else "–",
            f"{job['fps']:.0f}" if job["fps"] else "–",
            duration(job["eta_seconds"]),
            (job["worker"] or "") + (" cancelling" if job["cancel_requested"] else ""),
        )
    return table


def _queue(snap: dict, now: datetime) -> Table:
    waiting = len(snap["queue"])
    title = f"Queue ({waiting})" if waiting <= QUEUE_SHOWN else f"Queue (first {QUEUE_SHOWN} of {waiting})"
    table = Table(title=title, title_justify="left", expand=True)
    table.add_column("#", justify="right")
    table.add_column("video", ratio=3, overflow="ellipsis", no_wrap=True)
    table.add_column("owner", ratio=1, overflow="ellipsis", no_wrap=True)
    table.add_column("priority", justify="right")
    table.add_column("waiting", justify="right")
    for job in snap["queue"][:QUEUE_SHOWN]:
        table.add_row(str(job["position"]), job["video_title"], job["owner_name"], str(job["priority"]),
                      _since(job["queued_at"], now))  # fmt: skip
    return table


def _failures(snap: dict, now: datetime) -> Table:
    table = Table(title="Recent failures", title_justify="left", expand=True)
    table.add_column("video", ratio=1, overflow="ellipsis", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("reason", ratio=3, overflow="fold", style="red")
    table.add_column("ago", justify="right")
    for job in snap["failures"][:FAILURES_SHOWN]:
        table.add_row(
            job["video_title"], job["failure_kind"] or "", job["error"] or "", _since(job["finished_at"], now)
        )
    return table


def _workers(snap: dict, now: datetime) -> Table:
    titles = {job["id"]: job["video_title"] for job in snap["running"]}
    table = Table(title="Workers", title_justify="left", expand=True)
    table.add_column("worker", ratio=2, overflow="ellipsis", no_wrap=True)
    table.add_column("load", justify="right")
    table.add_column("encoding", ratio=3, overflow="ellipsis", no_wrap=True)
    table.add_column("seen", justify="right")
    for worker in snap["workers"]:
        load = "–" if worker["load1"] is None else f"{worker['load1']:.2f}"
        current = ", ".join(titles.get(job_id, job_id) for job_id in worker["running_jobs"]) or "idle"
        table.add_row(f"{worker['host']}:{worker['pid']}", load, current, _since(worker["last_seen"], now) + " ago")
    return table


def _history(snap: dict) -> Text:
    hours = snap["history"]
    jobs = sum(h["jobs"] for h in hours)
    minutes = sum(h["encoded_minutes"] for h in hours)
    speeds = [h["mean_speed"] for h in hours if h["mean_speed"]]
    text = Text("last 24 h  ", style="dim")
    text.append(sparkline([h["jobs"] for h in hours]), style="cyan")
    text.append(f"  {jobs} jobs, {minutes:.1f} min encoded")
    if speeds:
        text.append(f", mean speed {sum(speeds) / len(speeds):.2f}x")
    return text


def render(snap: dict) -> Group:
    """One frame of the dashboard."""
    now = datetime.fromisoformat(snap["at"])
    return Group(
        _counts(snap), _running(snap), _queue(snap, now), _failures(snap, now), _workers(snap, now), _history(snap)
    )


def fetch(client: httpx.Client) -> dict:
    try:
        response = client.get(SNAPSHOT_PATH)
    except httpx.HTTPError as exc:
        raise SnapshotError(f"cannot reach {client.base_url}: {exc}") from exc
    if response.status_code != 200:
        try:
            detail = response.json()["detail"]
        except (ValueError, KeyError, TypeError):
            detail = response.text[:200]
        raise SnapshotError(f"refused ({response.status_code}): {detail}", refused=True)
    return response.json()


@contextmanager
def _ctrl_c_sets(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C asks the loop to stop instead of raising KeyboardInterrupt wherever the main thread is.

    Raised inside rich's Live lock, the interrupt could leave the lock held, and leaving Live then waited for
    ever on its refresh thread (a `streamify jobs` that ignored Ctrl-C). A second Ctrl-C still interrupts.
    """

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def follow(client: httpx.Client, console: Console, interval: float) -> None:
    """Redraw every `interval` seconds until Ctrl-C; a lost server is shown, and retried, not fatal."""
    stop = threading.Event()
    with _ctrl_c_sets(stop):
        last = render(fetch(client))
        with Live(last, console=console, refresh_per_second=4) as live:
            while not stop.wait(interval):
                try:
                    last = render(fetch(client))
                    live.update(last)
                except SnapshotError as exc:
                    if exc.refused:
                        raise
                    live.update(Group(Text(f"{exc}; retrying", style="yellow"), last))

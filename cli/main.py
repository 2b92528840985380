"""`streamify`: run the product (embedded or real stack), upload, transcode locally."""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

app = typer.Typer(help="Streamify: self-hosted video platform.", no_args_is_help=True)
console = Console()
DataDir = Annotated[Path | None, typer.Option(help="Where the embedded database, broker and blobs live.")]


def _settings(data_dir: Path | None = None):
    if data_dir is not None:
        os.environ["STREAMIFY_DATA_DIR"] = str(data_dir.resolve())
    from core.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def worker_argv(concurrency: int, pool: str, queue: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--loglevel",
        "INFO",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--queues",
        queue,
        "--without-gossip",
        "--without-mingle",
    ]


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations."""
    from core.db import migrate as run

    run(_settings(data_dir))
    console.print("database is up to date")


@app.command()
def up(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    data_dir: DataDir = None,
) -> None:
    """Run the API and a worker on embedded defaults (SQLite, local blobs, filesystem broker)."""
    import uvicorn

    from core.db import migrate as run_migrations

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_migrations(settings)
    worker = subprocess.Popen(worker_argv(1, "solo", settings.queue))
    console.print(f"[bold green]Streamify is up:[/] http://{host}:{port}/  (API docs: /docs)")
    console.print(f"data: {settings.data_dir.resolve()}")
    try:
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@app.command()
def api(
    port: Annotated[int, typer.Option()] = 8000,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run one API node (configure the real stack with STREAMIFY_* env vars)."""
    import uvicorn

    uvicorn.run(
        "api.app:create_app", factory=True, host=host, port=port, workers=workers, proxy_headers=True, log_level="info"
    )


@app.command()
def worker(concurrency: Annotated[int, typer.Option(help="parallel encodes")] = 1) -> None:
    """Run a transcode worker."""
    settings = _settings()
    os.execv(sys.executable, worker_argv(concurrency, "prefork", settings.queue))  # noqa: S606


class _Counting:
    """A file wrapper that advances a progress bar as httpx streams it."""

    def __init__(self, f: BinaryIO, advance) -> None:
        self._f, self._advance = f, advance

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._advance(len(data))
        return data

    def __getattr__(self, name: str):
        return getattr(self._f, name)


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    server: Annotated[str, typer.Option(envvar="STREAMIFY_SERVER")] = "http://127.0.0.1:8000",
    title: Annotated[str | None, typer.Option()] = None,
    wait: Annotated[bool, typer.Option(help="wait until the video is ready")] = True,
) -> None:
    """Upload a file, wait for the transcode, print the watch URL."""
    import httpx

    server = server.rstrip("/")
    size = file.stat().st_size
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("uploading", total=size)
        with file.open("rb") as f, httpx.Client(timeout=httpx.Timeout(60, read=600)) as client:
            body = _Counting(f, lambda n: bar.advance(task, n))
            data = {"title": title} if title else {}
            r = client.post(f"{server}/api/v1/videos", files={"file": (file.name, body)}, data=data)
    if r.status_code != 202:
        console.print(f"[red]refused ({r.status_code}):[/] {r.json().get('detail', r.text)}")
        raise typer.Exit(1)
    video = r.json()
    if wait:
        video = _wait_ready(server, video["id"])
    console.print(f"watch: {server}{video['watch_url']}")
    if video["status"] == "failed":
        raise typer.Exit(1)


def _wait_ready(server: str, video_id: str) -> dict:
    import httpx

    with (
        Progress(
            "[progress.description]{task.description}", BarColumn(), "{task.percentage:>3.0f}%", console=console
        ) as bar,
        httpx.Client(timeout=30) as client,
    ):
        task = bar.add_task("queued", total=1.0)
        while True:
            video = client.get(f"{server}/api/v1/videos/{video_id}").raise_for_status().json()
            bar.update(task, completed=video["progress"], description=video["status"])
            if video["status"] in ("ready", "failed"):
                break
            time.sleep(1)
    if video["status"] == "failed":
        console.print(f"[red]transcode failed:[/] {video['error']}")
    return video


@app.command()
def transcode(src: Annotated[Path, typer.Argument(exists=True, dir_okay=False)], outdir: Path) -> None:
    """Transcode a file to an HLS ladder in OUTDIR (no services needed); writes OUTDIR/master.m3u8."""
    from ingest.errors import IngestError
    from workers.pipeline import TranscodeError
    from workers.pipeline import transcode as run

    settings = _settings()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.percentage:>3.0f}%",
        "{task.fields[speed]}",
        console=console,
    ) as bar:
        task = bar.add_task("encoding", total=1.0, speed="")
        try:
            result = run(
                src,
                outdir,
                settings,
                on_progress=lambda p: bar.update(
                    task, completed=p.fraction, speed=f"{p.speed:.2f}x" if p.speed else ""
                ),
            )
        except (IngestError, TranscodeError) as exc:
            console.print(f"[red]failed:[/] {getattr(exc, 'detail', None) or exc}")
            raise typer.Exit(1) from exc
    table = Table("variant", "size", "fps", "bandwidth", "codecs")
    for v in result.variants:
        size = f"{v.width}x{v.height}" if v.width else "audio"
        table.add_row(v.name, size, f"{v.frame_rate or ''}", f"{v.bandwidth // 1000} kb/s", v.codecs)
    console.print(table)
    console.print(f"{outdir / 'master.m3u8'}  ({result.elapsed:.1f}s)")


if __name__ == "__main__":
    app()

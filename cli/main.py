"""`streamify`: run the product (embedded or real stack), upload, transcode locally."""

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from core.processes import die_with_parent
from workers.launch import flower_argv, local_worker_argv, worker_argv

if TYPE_CHECKING:
    from cli.client import StreamifyClient
    from schemas.api import VideoRead

app = typer.Typer(help="Streamify: self-hosted video platform.", no_args_is_help=True)
console = Console()
DataDir = Annotated[Path | None, typer.Option(help="Where the embedded database, broker and blobs live.")]


def _settings(data_dir: Path | None = None):
    """This install's settings; a bad value ends the command with why (exit 2), before anything starts."""
    if data_dir is not None:
        os.environ["STREAMIFY_DATA_DIR"] = str(data_dir.resolve())
    from pydantic import ValidationError

    from core.settings import get_settings, refusal

    get_settings.cache_clear()
    try:
        return get_settings()
    except ValidationError as exc:
        Console(stderr=True).print(refusal(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None


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
    nodes: Annotated[
        int, typer.Option(min=1, help="API nodes; more than 1 puts nginx in front (on --port) and serves segments.")
    ] = 1,
) -> None:
    """Run the API and a worker on embedded defaults (SQLite, local blobs, filesystem broker).

    With --nodes N > 1: N uvicorn nodes on free local ports behind nginx, which serves /media/ itself."""
    import uvicorn

    from core.db import migrate as run_migrations

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_migrations(settings)
    _first_user(settings)
    if nodes > 1:
        from cli.stack import run_stack

        raise typer.Exit(run_stack(settings, nodes=nodes, host=host, port=port, console=console))
    from core.playback_secret import SecretMissing, playback_secret

    try:  # the node would refuse to start without it: say so before anything runs, not after "is up"
        playback_secret(settings)
    except SecretMissing as exc:
        Console(stderr=True).print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    # uvicorn re-raises SIGTERM after its shutdown, so `finally` may never run: the worker also dies with us.
    worker = subprocess.Popen(
        local_worker_argv(settings.worker_concurrency, settings.queue), preexec_fn=die_with_parent()
    )
    console.print(f"[bold green]Streamify is up:[/] http://{host}:{port}/  (API docs: /docs)")
    console.print(f"data: {settings.data_dir.resolve()}")
    try:
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _first_user(settings) -> None:
    """A fresh install gets an operator account, so the product is usable straight away."""
    import secrets
    from datetime import timedelta

    from sqlmodel import Session, select

    from core.accounts import create_user, mint_token
    from core.db import get_engine
    from schemas.tables import TokenKind, User

    with Session(get_engine(settings)) as session:
        if session.exec(select(User.id).limit(1)).first() is not None:
            return
        password = secrets.token_urlsafe(12)
        user = create_user(session, "admin@localhost", password, "Admin", is_operator=True)
        ttl = timedelta(days=settings.api_token_ttl_days)
        token, _ = mint_token(session, user, TokenKind.api, name="streamify up", ttl=ttl)
    console.print("[bold]First account created[/] (operator): admin@localhost  password: " + password, soft_wrap=True)
    console.print(f"API token for the CLI:  export STREAMIFY_TOKEN={token}", soft_wrap=True)


users = typer.Typer(help="Manage accounts.", no_args_is_help=True)
app.add_typer(users, name="users")


@users.command("create")
def users_create(
    email: str,
    operator: Annotated[bool, typer.Option(help="may watch and steer the job queue")] = False,
    name: Annotated[str, typer.Option(help="display name")] = "",
) -> None:
    """Create an account; asks for its password."""
    from sqlmodel import Session

    from core.accounts import AccountError, create_user
    from core.db import get_engine

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with Session(get_engine(_settings())) as session:
        try:
            user = create_user(session, email, password, name, is_operator=operator)
        except AccountError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from exc
    console.print(f"created {user.email}" + (" (operator)" if user.is_operator else ""))


def _user_or_exit(session, email: str):
    from sqlmodel import select

    from core.accounts import normalize_email
    from schemas.tables import User

    user = session.exec(select(User).where(User.email == normalize_email(email))).first()
    if user is None:
        console.print(f"[red]no account {email}[/]")
        raise typer.Exit(1)
    return user


@users.command("password")
def users_password(email: str) -> None:
    """Set an account's password (signs it out everywhere: its browser sessions and API tokens are revoked)."""
    from sqlmodel import Session

    from core.accounts import AccountError, set_password
    from core.db import get_engine

    with Session(get_engine(_settings())) as session:
        user = _user_or_exit(session, email)
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
        try:
            set_password(session, user, password)
        except AccountError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from exc
    console.print("password changed")


@users.command("operator")
def users_operator(email: str, revoke: Annotated[bool, typer.Option("--revoke")] = False) -> None:
    """Grant (or --revoke) the operator role."""
    from sqlmodel import Session

    from core.db import get_engine

    with Session(get_engine(_settings())) as session:
        user = _user_or_exit(session, email)
        user.is_operator = not revoke
        session.add(user)
        session.commit()
    console.print(f"{email} is {'no longer ' if revoke else ''}an operator")


@users.command("token")
def users_token(email: str, name: Annotated[str, typer.Option(help="what the token is for")] = "cli") -> None:
    """Mint an API token for an account (printed once; it expires after STREAMIFY_API_TOKEN_TTL_DAYS)."""
    from datetime import timedelta

    from sqlmodel import Session

    from core.accounts import mint_token
    from core.db import get_engine
    from schemas.tables import TokenKind

    settings = _settings()
    with Session(get_engine(settings)) as session:
        ttl = timedelta(days=settings.api_token_ttl_days)
        token, _ = mint_token(session, _user_or_exit(session, email), TokenKind.api, name=name, ttl=ttl)
    console.print(token)


@app.command()
def api(
    port: Annotated[int, typer.Option()] = 8000,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run one API node (configure the real stack with STREAMIFY_* env vars)."""
    import uvicorn

    _settings()  # refused here in words, not in a traceback from inside uvicorn
    uvicorn.run(
        "api.app:create_app", factory=True, host=host, port=port, workers=workers, proxy_headers=True, log_level="info"
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="parts encoded at once (default: STREAMIFY_WORKER_CONCURRENCY)")
    ] = None,
) -> None:
    """Run a transcode worker."""
    settings = _settings()
    n = concurrency if concurrency is not None else settings.worker_concurrency
    os.execv(sys.executable, worker_argv(n or os.cpu_count() or 1, "prefork", settings.queue))  # noqa: S606


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def flower(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Bind address; Flower has no login of its own.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 5555,
) -> None:
    """Flower (Celery's web monitor) on this install's broker; further options go to flower.

    It has no login unless FLOWER_BASIC_AUTH=user:password is set: bind it beyond 127.0.0.1 only behind one."""
    _settings()
    os.execv(sys.executable, flower_argv(host, port, list(ctx.args)))  # noqa: S606


@app.command()
def jobs(
    server: Annotated[str, typer.Option(envvar="STREAMIFY_SERVER")] = "http://127.0.0.1:8000",
    token: Annotated[str | None, typer.Option(envvar="STREAMIFY_TOKEN", help="an operator's API token")] = None,
    once: Annotated[bool, typer.Option("--once", help="print one frame and exit")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="seconds between refreshes")] = 1.0,
) -> None:
    """The job queue, live in the terminal (what the /ops dashboard shows); Ctrl-C to leave."""
    import httpx

    from cli.jobs import SnapshotError, fetch, follow, render

    if not token:
        console.print("[red]an operator's API token is needed:[/] --token or STREAMIFY_TOKEN")
        raise typer.Exit(2)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=30) as client:
        try:
            if once:
                console.print(render(fetch(client)))
            else:
                follow(client, console, interval)
        except SnapshotError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from exc
        except KeyboardInterrupt:
            pass


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    server: Annotated[str, typer.Option(envvar="STREAMIFY_SERVER")] = "http://127.0.0.1:8000",
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    visibility: Annotated[str, typer.Option(help="public, unlisted or private")] = "public",
    token: Annotated[str | None, typer.Option(envvar="STREAMIFY_TOKEN", help="API token")] = None,
    wait: Annotated[bool, typer.Option(help="wait until the video is ready")] = True,
) -> None:
    """Upload a file (resumable: a dropped connection picks up where it stopped), follow the transcode, print the
    watch URL."""
    import httpx

    from cli.client import StreamifyClient, StreamifyError
    from schemas.tables import VideoStatus, Visibility

    if not token:
        console.print("[red]an API token is needed:[/] --token or STREAMIFY_TOKEN (mint one on the site or with "
                      "`streamify users token EMAIL`)")  # fmt: skip
        raise typer.Exit(2)
    if visibility not in set(Visibility):
        console.print(f"[red]--visibility must be one of:[/] {', '.join(Visibility)}")
        raise typer.Exit(2)
    with StreamifyClient(server, token) as client:
        try:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
            ) as bar:
                task = bar.add_task("uploading", total=file.stat().st_size)
                video = client.upload(
                    file,
                    title=title,
                    description=description,
                    visibility=Visibility(visibility),
                    on_progress=lambda sent, _: bar.update(task, completed=sent),
                )
            if wait:
                video = _follow(client, video)
        except StreamifyError as exc:
            console.print(f"[red]refused ({exc.status}):[/] {exc.detail}", highlight=False)
            raise typer.Exit(1) from exc
        except httpx.TransportError as exc:
            console.print(f"[red]cannot reach {server}:[/] {exc}", highlight=False)
            raise typer.Exit(1) from exc
        console.print(f"watch: {client.link(video.watch_url)}")
    if video.status != VideoStatus.ready and wait:
        raise typer.Exit(1)


def _follow(client: "StreamifyClient", video: "VideoRead") -> "VideoRead":
    """The transcode's progress as a bar, until the video is ready (or failed, or cancelled)."""
    from schemas.tables import VideoStatus

    with Progress(
        "[progress.description]{task.description}", BarColumn(), "{task.percentage:>3.0f}%", console=console
    ) as bar:
        task = bar.add_task(video.status, total=1.0)
        video = client.wait_until(
            video.id,
            "ready",
            timeout=None,
            on_poll=lambda v: bar.update(task, completed=v.progress, description=v.status),
        )
    if video.status != VideoStatus.ready:
        console.print(f"[red]transcode {video.status}:[/] {video.error or ''}", highlight=False)
    return video


@app.command()
def transcode(src: Annotated[Path, typer.Argument(exists=True, dir_okay=False)], outdir: Path) -> None:
    """Transcode a file to an HLS ladder in OUTDIR (no services needed); writes OUTDIR/master.m3u8."""
    from core.errors import Refused
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
        except (Refused, TranscodeError) as exc:
            console.print(f"[red]failed:[/] {getattr(exc, 'detail', None) or exc}")
            raise typer.Exit(1) from exc
    table = Table("rendition", "size", "fps", "bandwidth", "codecs")
    for v in result.variants:
        size = f"{v.width}x{v.height}" if v.width else "audio"
        table.add_row(v.name, size, f"{v.frame_rate or ''}", f"{v.bandwidth // 1000} kb/s", v.codecs)
    console.print(table)
    if result.trial_failure:
        console.print(f"[yellow]{result.trial_failure}[/]")
    if result.ladder is not None:  # why each rung of the fixed ladder was kept or dropped
        for rung in result.ladder.rungs:
            console.print(f"{rung.name}: {rung.reason}")
    console.print(f"{outdir / 'master.m3u8'}  ({result.elapsed:.1f}s)")


if __name__ == "__main__":
    app()

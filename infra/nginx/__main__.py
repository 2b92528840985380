"""`python -m infra.nginx render`: write nginx.conf for a deployment whose nginx runs apart from the API
(compose's nginx-config service, the Azure edge's init container); `streamify up --nodes N` renders in-process.
"""

from pathlib import Path
from typing import Annotated

import typer

from core.settings import Settings
from infra.nginx import TEMPLATE_DIR, nginx_plan, write_nginx_config

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

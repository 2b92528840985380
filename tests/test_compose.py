"""compose.yaml cannot run here (no docker engine): check what can be checked without one. It parses; every
service runs a command that exists in this project (streamify subcommands with valid options, the Celery app,
the nginx renderer and the file nginx is pointed at); every STREAMIFY_* it sets is a setting; the shape the
delivery design needs is there (nginx in front of >= 2 API nodes, >= 2 workers, Flower, health checks)."""

import importlib
import re
from pathlib import PurePosixPath

import pytest
import typer
import yaml
from typer.testing import CliRunner

from core.settings import Settings
from tests.conftest import ROOT

COMPOSE = ROOT / "compose.yaml"
ONE_SHOT = {"migrate", "nginx-config"}
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
# What a user must put in .env (compose refuses to start without them: `${VAR:?message}`).
DOT_ENV = {"STREAMIFY_PLAYBACK_SECRET": "a-secret-of-forty-eight-characters-0123456789abc"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def _interpolate(match: re.Match) -> str:
    name, op, arg = match.groups()
    if op and op.endswith("?"):
        return DOT_ENV[name]  # a required variable: the one thing .env must hold
    return arg or ""


def _env(service: dict) -> dict[str, str]:
    """Environment as compose would pass it with only the required variables in .env (${VAR:-default} applied)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: INTERPOLATION.sub(_interpolate, str(v)) for k, v in env.items()}


def test_the_playback_secret_is_required_where_it_is_used(services):
    """API nodes sign and the nginx renderer derives its key: compose must refuse to start them without it,
    never fall back to a secret each container would generate for itself."""
    for name in ("api-1", "api-2", "nginx-config"):
        raw = services[name]["environment"]["STREAMIFY_PLAYBACK_SECRET"]
        assert re.fullmatch(r"\$\{STREAMIFY_PLAYBACK_SECRET:\?[^}]+\}", raw), (name, raw)


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> source (volume name or host path)."""
    out = {}
    for spec in service.get("volumes", []):
        source, target, *_ = spec.split(":")
        out[target] = source
    return out


def _click(app: typer.Typer):
    return typer.main.get_command(app)


def test_compose_parses_and_has_the_delivery_shape(compose, services):
    api_nodes = [n for n, s in services.items() if s.get("command", [])[:2] == ["streamify", "api"]]
    assert len(api_nodes) >= 2, api_nodes
    workers = [s for s in services.values() if s.get("command", [])[:2] == ["streamify", "worker"]]
    assert sum(s.get("deploy", {}).get("replicas", 1) for s in workers) >= 2
    assert {"postgres", "redis", "azurite", "migrate", "nginx", "nginx-config", "flower"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]  # the broker survives a restart
    # Browsers reach nginx only; nodes and the blob emulator publish nothing.
    published = {n for n, s in services.items() if s.get("ports")}
    assert published == {"nginx", "flower"}, published
    assert all(p.startswith("127.0.0.1:") for p in services["flower"]["ports"])  # no login: local only
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dep in service.get("depends_on", {}):
            assert dep in services, (name, dep)
        for source in _mounts(service).values():
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)
    for stateful, path in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data"), ("azurite", "/data")):
        assert path in _mounts(services[stateful]), stateful
    nginx_deps = services["nginx"]["depends_on"]
    assert all(nginx_deps[n]["condition"] == "service_healthy" for n in api_nodes)
    assert nginx_deps["nginx-config"]["condition"] == "service_completed_successfully"


def test_every_streamify_env_var_is_a_setting(services):
    fields = set(Settings.model_fields)
    seen = set()
    for name, service in services.items():
        for key in _env(service):
            if key.startswith("STREAMIFY_"):
                seen.add(key)
                assert key.removeprefix("STREAMIFY_").lower() in fields, f"{name}: {key} is not in core.settings"
    assert "STREAMIFY_SEGMENT_BASE_URL" in seen  # players are sent to nginx, not to the blob host
    for service in services.values():
        env = {k.removeprefix("STREAMIFY_").lower(): v for k, v in _env(service).items() if k.startswith("STREAMIFY_")}
        Settings(**env)  # and every value validates


def test_every_service_command_exists_in_the_project(services):
    from cli.main import app as streamify

    commands = _click(streamify).commands
    checked = set()
    for name, service in services.items():
        argv = service.get("command")
        if "build" not in service:  # a third-party image (postgres, redis, azurite, nginx)
            continue
        if argv[0] == "streamify":
            sub = commands.get(argv[1])
            assert sub is not None, f"{name}: no `streamify {argv[1]}`"
            sub.make_context(argv[1], list(argv[2:]))  # options parse
        elif argv[:3] == ["python", "-m", "infra.nginx"]:
            module = importlib.import_module("infra.nginx.__main__")
            _click(module.cli).commands[argv[3]].make_context(argv[3], list(argv[4:]))
        elif argv[0] == "celery":
            assert argv[1] == "-A"
            app = importlib.import_module(argv[2]).app
            assert type(app).__name__ == "Celery"
            assert argv[3] == "flower" and importlib.util.find_spec("flower"), "flower must be installed"
        else:
            pytest.fail(f"{name}: unknown command {argv}")
        checked.add(name)
    assert {"migrate", "api-1", "api-2", "worker", "flower", "nginx-config"} <= checked
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"flower==[\d.]+"', pyproject), "the image installs `.`: flower must be a dependency"


def test_nginx_runs_the_config_that_nginx_config_renders(services, tmp_path):
    """The renderer's --out lands, through the shared volume, exactly where nginx's -c points; rendering with
    compose's own arguments and env gives a config for the compose hosts."""
    from infra.nginx.__main__ import cli

    render, nginx = services["nginx-config"], services["nginx"]
    argv = render["command"][3:]
    out = PurePosixPath(argv[argv.index("--out") + 1])
    conf = PurePosixPath(nginx["command"][nginx["command"].index("-c") + 1])
    assert _mounts(render)[str(out.parent)] == _mounts(nginx)[str(conf.parent)]
    assert out.name == conf.name
    assert "--template-dir" not in argv  # the image's own template (package data), never one mounted from the host

    local = [tmp_path / "nginx.conf" if a == str(out) else a for a in argv]
    result = CliRunner().invoke(cli, [str(a) for a in local], env=_env(render))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "nginx.conf").read_text()
    nodes = [n for n, s in services.items() if s.get("command", [])[:2] == ["streamify", "api"]]
    for node in nodes:
        assert f"server {node}:8000 max_fails=" in text
    assert "listen 80;" in text and "server azurite:10000;" in text
    assert "/devstoreaccount1/streamify-media/$streamify_key?" in text and "sp=r" in text  # read-only SAS
    assert 'error_log "stderr"' in text and "/var/cache/nginx/cache_media" in text

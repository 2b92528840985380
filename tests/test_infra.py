"""infra/terraform cannot be planned here (no Terraform binary, no provider plugins, no Azure account): check what
can be checked offline. Every file parses as HCL2 (bc-python-hcl2, checkov's fork of python-hcl2); the
deployment has the shape the delivery
design needs (>= 2 API replicas with health probes, the nginx edge rendering the project's own config,
workers, private storage, a database and a broker without public endpoints, Front Door with a health probe
and a cached /media/* route as the CDN option, the playback secret given as a secret); every command and
STREAMIFY_* variable it uses exists in the project; checkov finds no failed check."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import typer

from core.settings import Settings
from tests.conftest import ROOT

TF = ROOT / "infra" / "terraform"
# checkov and its HCL parser live in their own venv (`make infra-tools`; why: infra/requirements-lint.txt).
INFRA_BIN = ROOT / ".venv-infra" / "bin"
CHECKOV = INFRA_BIN / "checkov"
PARSE = "import hcl2, json, sys; print(json.dumps([hcl2.loads(open(p).read()) for p in sys.argv[1:]]))"


def _tools() -> None:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is required at {CHECKOV}: run `make infra-tools`")


def parse(paths: list[Path]) -> list[dict]:
    _tools()
    run = subprocess.run([str(INFRA_BIN / "python"), "-c", PARSE, *map(str, paths)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr  # a syntax error names the file and line
    return [_plain(doc) for doc in json.loads(run.stdout)]


def _plain(value):
    """The parser wraps every attribute value in a one-item list; blocks are lists of dicts. Unwrap values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("__start_line__", "__end_line__")}
    if isinstance(value, list):
        if len(value) == 1 and not isinstance(value[0], dict):
            return _plain(value[0])
        return [_plain(v) for v in value]
    return value


@pytest.fixture(scope="module")
def tf() -> dict[str, list]:
    """All blocks of all files, merged by block type (resource, variable, locals...)."""
    merged: dict[str, list] = {}
    files = sorted(TF.glob("*.tf"))
    assert len(files) >= 5, files
    for doc in parse(files):
        for kind, blocks_ in doc.items():
            merged.setdefault(kind, []).extend(blocks_)
    return merged


def resources(tf: dict, kind: str) -> dict[str, dict]:
    return {name: body for block in tf.get("resource", []) for k, named in block.items() if k == kind
            for name, body in named.items()}  # fmt: skip


def one(tf: dict, kind: str, name: str) -> dict:
    found = resources(tf, kind)
    assert name in found, f"{kind}.{name} missing (have {sorted(found)})"
    return found[name]


def obj(value):
    """A map value (parsed as a one-item list of a dict, like a block)."""
    return value[0] if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) else value


def variable_default(tf: dict, name: str):
    for block in tf.get("variable", []):
        if name in block:
            return obj(block[name].get("default"))
    raise AssertionError(f"variable {name} missing")


def blocks(body: dict, key: str) -> list[dict]:
    value = body.get(key, [])
    return value if isinstance(value, list) else [value]


def containers(app: dict) -> list[dict]:
    template = blocks(app, "template")[0]
    return blocks(template, "container") + blocks(template, "init_container")


def dynamic_envs(container: dict) -> list[str]:
    """for_each expressions of `dynamic "env"` blocks (the env maps they expand)."""
    return [str(d["env"]["for_each"]) for d in blocks(container, "dynamic") if "env" in d]


def static_envs(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in blocks(container, "env")}


def test_every_file_parses_and_keeps_a_terraform_layout():
    paths = sorted(TF.glob("*.tf")) + [TF / "terraform.tfvars.example"]
    assert all(parse(paths))
    for path in paths:
        text = path.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            assert "\t" not in line and line == line.rstrip(), f"{path.name}:{number}: tab or trailing space"
            indent = len(line) - len(line.lstrip(" "))
            assert indent % 2 == 0, f"{path.name}:{number}: indentation is not a multiple of 2"


def test_the_deployment_has_every_part_the_issue_lists(tf):
    storage = one(tf, "azurerm_storage_account", "main")
    assert storage["min_tls_version"] == "TLS1_2" and storage["allow_nested_items_to_be_public"] is False
    assert blocks(storage, "network_rules")[0]["default_action"] == "Deny"
    containers_ = resources(tf, "azurerm_storage_container")
    assert {c["name"] for c in containers_.values()} == {"streamify-media", "streamify-sources"}
    assert all(c["container_access_type"] == "private" for c in containers_.values())

    pg = one(tf, "azurerm_postgresql_flexible_server", "main")
    assert pg["public_network_access_enabled"] is False and pg["delegated_subnet_id"]
    redis = one(tf, "azurerm_redis_cache", "main")
    assert redis["non_ssl_port_enabled"] is False and redis["public_network_access_enabled"] is False
    assert redis["minimum_tls_version"] == "1.2"

    api, worker, edge = (one(tf, "azurerm_container_app", n) for n in ("api", "worker", "edge"))
    assert variable_default(tf, "api_replicas")["min"] >= 2
    api_template = blocks(api, "template")[0]
    assert api_template["min_replicas"] == "${var.api_replicas.min}"
    api_container = blocks(api_template, "container")[0]
    assert {blocks(api_container, p)[0]["path"] for p in ("liveness_probe", "readiness_probe")} == {
        "/healthz",
        "/readyz",
    }
    assert blocks(api, "ingress")[0]["external_enabled"] is False  # only the edge reaches the nodes
    assert blocks(edge, "ingress")[0]["external_enabled"] is True
    edge_nginx = blocks(blocks(edge, "template")[0], "container")[0]
    assert blocks(edge_nginx, "readiness_probe")[0]["path"] == "/nginx-healthz"
    assert variable_default(tf, "worker_count") >= 2
    assert blocks(blocks(worker, "template")[0], "container")[0]["command"][:2] == ["streamify", "worker"]
    one(tf, "azurerm_container_app_job", "migrate")

    group = one(tf, "azurerm_cdn_frontdoor_origin_group", "edge")
    probe = blocks(group, "health_probe")[0]
    assert probe["path"] == "/readyz" and probe["protocol"] == "Https"
    media = one(tf, "azurerm_cdn_frontdoor_route", "media")
    assert media["patterns_to_match"] in ("/media/*", ["/media/*"])  # a one-item list reads as its item
    cdn = [d["cache"] for d in blocks(media, "dynamic") if "cache" in d]
    assert cdn and cdn[0]["for_each"] == "${var.enable_cdn ? [1] : []}", cdn
    assert cdn[0]["content"][0]["query_string_caching_behavior"] == "UseQueryString"  # signed URLs stay apart
    assert "cache" not in one(tf, "azurerm_cdn_frontdoor_route", "app")  # pages, API, playlists: never cached


def test_playback_secret_and_settings_reach_every_process_that_needs_them(tf):
    fields = set(Settings.model_fields)
    locals_ = {k: obj(v) for block in tf["locals"] for k, v in block.items()}
    secret_env, plain_env = locals_["secret_env"], locals_["plain_env"]
    assert secret_env["STREAMIFY_PLAYBACK_SECRET"] == "playback-secret"
    assert "playback-secret" in locals_["secrets"]
    for name in [*secret_env, *plain_env]:
        assert name.removeprefix("STREAMIFY_").lower() in fields, name
    for app in ("api", "worker"):
        for container in containers(one(tf, "azurerm_container_app", app)):
            if container["command"][0] == "streamify":  # not the API's init container that only runs chmod
                assert "${local.secret_env}" in dynamic_envs(container), app
    edge = one(tf, "azurerm_container_app", "edge")
    init = blocks(blocks(edge, "template")[0], "init_container")[0]
    env = static_envs(init)
    assert env["STREAMIFY_PLAYBACK_SECRET"]["secret_name"] == "playback-secret"  # nginx derives its key from it
    assert env["STREAMIFY_AZURE_CONNECTION_STRING"]["secret_name"] == "storage"
    for name in env:
        assert name.removeprefix("STREAMIFY_").lower() in fields, name
    Settings(**{k.removeprefix("STREAMIFY_").lower(): v for k, v in plain_env.items()})  # values validate


def test_every_command_exists_and_the_image_ships_what_the_edge_renders(tf):
    from cli.main import app as streamify
    from infra.nginx.__main__ import cli as nginx_cli

    commands = typer.main.get_command(streamify).commands
    seen = []
    for kind in ("azurerm_container_app", "azurerm_container_app_job"):
        for name, app in resources(tf, kind).items():
            for container in containers(app):
                argv = container["command"]
                if argv[0] == "streamify":
                    commands[argv[1]].make_context(argv[1], list(argv[2:]))  # options parse
                elif argv[:3] == ["python", "-m", "infra.nginx"]:
                    typer.main.get_command(nginx_cli).commands[argv[3]].make_context(argv[3], list(argv[4:]))
                    out = argv[argv.index("--out") + 1]
                    nginx = blocks(blocks(app, "template")[0], "container")[0]
                    assert nginx["command"][:3] == ["nginx", "-c", out], nginx["command"]
                    mounts = {m["path"] for m in blocks(container, "volume_mounts")}
                    assert str(Path(out).parent) in mounts and mounts <= {
                        m["path"] for m in blocks(nginx, "volume_mounts")
                    }
                elif argv[0] == "chmod":  # an init container opening a mounted share to the image's user
                    assert argv[-1] in {m["path"] for m in blocks(container, "volume_mounts")}, (name, argv)
                else:
                    assert argv[0] == "nginx", (name, argv)
                seen.append(argv[1] if argv[0] == "streamify" else argv[0])
    assert {"api", "worker", "migrate", "python", "nginx"} <= set(seen), seen
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY infra/__init__\.py \./infra/$", dockerfile, re.M), "the image must ship infra.nginx"
    assert re.search(r"^COPY infra/nginx \./infra/nginx$", dockerfile, re.M), "the image must ship the template"


def test_the_installed_package_ships_the_nginx_template():
    """The image runs `pip install .` (not editable): the template must be package data of infra.nginx, found
    beside the module, or an installed renderer has nothing to render."""
    import tomllib

    import infra.nginx

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {"infra", "infra.nginx"} <= set(setuptools["packages"]["find"]["include"])
    assert infra.nginx.TEMPLATE in setuptools["package-data"]["infra.nginx"]
    assert Path(infra.nginx.__file__).resolve().parent == infra.nginx.TEMPLATE_DIR
    assert (infra.nginx.TEMPLATE_DIR / infra.nginx.TEMPLATE).is_file()


def _resolve(value: str, locals_: dict) -> str:
    """Expand `${local.a.b}` references (the only interpolation the mount paths use)."""

    def lookup(match: re.Match) -> str:
        found = locals_
        for key in match.group(1).split("."):
            found = obj(found[key])
        return str(found)

    for _ in range(5):
        value = re.sub(r"\$\{local\.([\w.]+)\}", lookup, value)
    return value


def _ref(expression: str, kind: str) -> str:
    """The resource name in a `${kind.NAME.attr}` reference."""
    match = re.fullmatch(r"\$\{" + kind + r"\.(\w+)\.\w+\}", str(expression))
    assert match, (kind, expression)
    return match.group(1)


def test_every_api_replica_sees_every_partial_resumable_upload(tf):
    """A resumed tus PATCH or HEAD may land on any API replica: the folder TusStore keeps bytes and flocks in must
    be one private NFS share mounted read-write on every replica (SMB maps flock to mandatory locks; replica disks
    are not shared), mounted at settings.tmp_dir itself so no root-owned directory sits between the image's data
    dir and the share, and opened to the image's unprivileged user before the API starts."""
    from ingest.tus import TusStore

    locals_ = {k: obj(v) for block in tf["locals"] for k, v in block.items()}
    settings = Settings(data_dir=locals_["plain_env"]["STREAMIFY_DATA_DIR"])
    template = blocks(one(tf, "azurerm_container_app", "api"), "template")[0]
    nfs = [v for v in blocks(template, "volume") if v.get("storage_type") == "NfsAzureFile"]
    assert len(nfs) == 1, blocks(template, "volume")
    volume = nfs[0]
    api = blocks(template, "container")[0]
    mounts = {m["name"]: _resolve(m["path"], locals_) for m in blocks(api, "volume_mounts")}
    assert Path(mounts[volume["name"]]) == settings.tmp_dir, mounts
    assert TusStore(settings).root.is_relative_to(settings.tmp_dir)

    init = [c for c in blocks(template, "init_container") if c["command"][0] == "chmod"]
    assert init and init[0]["command"][1] == "1777", init
    init_mounts = {m["path"]: m["name"] for m in blocks(init[0], "volume_mounts")}
    assert init_mounts[init[0]["command"][-1]] == volume["name"], init_mounts

    kind = "azurerm_container_app_environment_storage"
    storage = one(tf, kind, _ref(volume["storage_name"], kind))
    assert storage["access_mode"] == "ReadWrite" and storage["nfs_server_url"], storage
    account_name = _ref(storage["nfs_server_url"], "azurerm_storage_account")
    account = one(tf, "azurerm_storage_account", account_name)
    assert account["account_kind"] == "FileStorage" and account["public_network_access_enabled"] is False
    assert blocks(account, "network_rules")[0]["default_action"] == "Deny"
    account_id = f"${{azurerm_storage_account.{account_name}.id}}"
    shares = {n: s for n, s in resources(tf, "azurerm_storage_share").items() if s["storage_account_id"] == account_id}
    assert len(shares) == 1, shares
    (share_name, share), *_ = shares.items()
    assert share["enabled_protocol"] == "NFS"
    assert storage["share_name"].endswith(f"/${{azurerm_storage_share.{share_name}.name}}"), storage
    links = [blocks(e, "private_service_connection")[0] for e in resources(tf, "azurerm_private_endpoint").values()]
    file_links = [c for c in links if c["private_connection_resource_id"] == account_id]
    assert file_links and file_links[0]["subresource_names"] in ("file", ["file"]), file_links


@pytest.mark.slow  # checkov takes seconds
def test_checkov_finds_no_failed_check():
    _tools()
    run = subprocess.run(
        [str(CHECKOV), "-d", str(TF), "--framework", "terraform", "--output", "json", "--quiet", "--compact",
         "--skip-download"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.stdout.strip(), run.stderr
    report = json.loads(run.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): {c['check_name']}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    summary = reports[0]["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, summary
    assert summary["passed"] >= 30 and summary["resource_count"] >= 35, summary  # it did read the resources

"""The nginx front, rendered from settings: one config for `streamify up --nodes N`, compose and the Azure edge.

The template (nginx.conf.j2, beside this module) ships with the package, so an installed wheel renders what a
checkout does. Segments never reach Python: nginx serves /media/ from the blob directory (local disk) or from
its disk cache of Azure Blob (fetched with a read-only SAS only nginx holds). A private video's media URLs are
signed (core/playback_tokens.py) and nginx checks them itself; for unsigned ones it asks a node once per video
and caches the answer. Playlists and everything else go to the API nodes, with retries of idempotent requests
when a node dies. What the config shares with the API (the session cookie, the multipart slack) comes from
core/, so rendering it never imports the API.
"""

import os
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import jinja2

from core.accounts import SESSION_COOKIE
from core.blobs import cache_control_for, content_type_for
from core.limits import MULTIPART_SLACK
from core.playback_secret import playback_secret
from core.playback_tokens import nginx_key
from core.settings import Settings

TEMPLATE_DIR = Path(__file__).resolve().parent  # nginx.conf.j2 ships beside this module (pyproject package-data)
TEMPLATE = "nginx.conf.j2"
DELIVERY_HEADER = "X-Streamify-Delivery"  # set by nginx only: proves a response never touched Python
# What /media/ serves; anything else there is 404. Types and Cache-Control come from core.blobs.
MEDIA_EXTENSIONS = (".m4s", ".mp4", ".m4a", ".ts", ".aac", ".jpg", ".m3u8", ".vtt")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Every request body but an upload's: the largest is a caption file (api.captions.MAX_CAPTION_BYTES, 2 MiB, plus
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
    """One location per Cache-Control value, so nginx answers with exactly what the blob stores set (core.blobs)."""
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
    # nginx's fallback for what it has not cached while this one fails: the account's read-only secondary (RA-GRS,
    # same container and SAS) or a mirror account (its own SAS). None: no fallback.
    secondary: "BlobOrigin | None" = None

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def _origin(url: str, container_path: str, sas: str) -> BlobOrigin:
    parts = urlsplit(url)
    scheme = parts.scheme or "https"
    return BlobOrigin(
        scheme=scheme,
        host=parts.hostname or "",
        port=parts.port or (443 if scheme == "https" else 80),
        path=(parts.path.rstrip("/") + container_path).rstrip("/"),
        sas=sas,
    )


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
    # Proxies in front of nginx whose X-Forwarded-For nginx believes (a CDN, Front Door); none: nginx is the edge
    # and the client's own X-Forwarded-For is dropped, so nobody picks the address sign-ins are throttled by.
    trusted_proxies: tuple[str, ...] = ()
    ca_bundle: str = CA_BUNDLE
    # With a fallback origin: seconds without a byte from the primary before a media fetch goes to the fallback.
    # Blob Storage's first byte takes milliseconds; a viewer's player gives up on a segment after about 20 s.
    blob_failover_seconds: int = 5
    body_max_bytes: int = BODY_LIMIT_BYTES  # every other location: nginx refuses (413) before buffering it to disk

    @property
    def upload_body_max_bytes(self) -> int:
        """An upload location's request body limit: the file plus the multipart framing nodes allow (core.limits)."""
        return self.upload_max_bytes + MULTIPART_SLACK


def _quote(value: object, *more: str) -> str:
    """A path as one quoted nginx argument; refuse characters nginx would read as syntax or variables."""
    text = str(PurePosixPath(str(value), *more)) if more else str(value)
    if any(c in text for c in '"$\\{};\n\r') or not text:
        raise ValueError(f"unsafe value for the nginx config: {text!r}")
    return f'"{text}"'


def _signed_container(connection_string: str, container_name: str, days: int) -> tuple[str, str]:
    """The container's URL and a read-only SAS for it, signed with the account key of the connection string."""
    from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

    container = ContainerClient.from_connection_string(connection_string, container_name)
    key = getattr(container.credential, "account_key", None)
    if not key:
        raise RuntimeError("nginx needs an account key in each Azure connection string to sign its SAS")
    now = datetime.now(UTC)
    sas = generate_container_sas(
        account_name=container.account_name,
        container_name=container.container_name,
        account_key=key,
        permission=ContainerSasPermissions(read=True),
        start=now - timedelta(minutes=5),
        expiry=now + timedelta(days=days),
    )
    return container.url, sas


def blob_origin(settings: Settings, *, days: int | None = None) -> BlobOrigin:
    """The media container URL and a read-only container SAS for nginx (media only: sources stay unreachable),
    with the fallback origin if the install has one (a mirror account, or the account's RA-GRS secondary)."""
    assert settings.azure_connection_string
    lifetime = days or settings.nginx_blob_sas_days
    container = settings.azure_media_container
    url, sas = _signed_container(settings.azure_connection_string, container, lifetime)
    primary = _origin(url, "", sas)
    if settings.azure_mirror_connection_string:  # another account: its own key signs its SAS
        mirror_url, mirror_sas = _signed_container(settings.azure_mirror_connection_string, container, lifetime)
        return replace(primary, secondary=_origin(mirror_url, "", mirror_sas))
    if not settings.azure_secondary_blob_endpoint:
        return primary
    # A SAS signs the account and container names, not the host: the secondary accepts the primary's.
    secondary = _origin(settings.azure_secondary_blob_endpoint, f"/{container}", sas)
    return replace(primary, secondary=secondary)


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
    """The plan for this install's settings; `nodes` are host:port as nginx reaches them."""
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
        trusted_proxies=tuple(p.strip() for p in settings.nginx_trusted_proxies.split(",") if p.strip()),
    )


def render_nginx(plan: NginxPlan, template_dir: Path = TEMPLATE_DIR) -> str:
    """The config text; StrictUndefined and _quote make a missing or unsafe value an error, not a broken config."""
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
    return env.get_template(TEMPLATE).render(
        plan=plan, rules=media_rules(), header=DELIVERY_HEADER, video_id=VIDEO_ID_PATTERN, session_cookie=SESSION_COOKIE
    )


def nginx_exe(settings: Settings) -> str:
    """The nginx binary to run locally; Debian installs it outside a non-root PATH."""
    found = settings.nginx_path or shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).is_file():
        raise RuntimeError(f"nginx not found ({found}): apt-get install nginx, or set STREAMIFY_NGINX_PATH")
    return found


def write_nginx_config(plan: NginxPlan, path: Path, template_dir: Path = TEMPLATE_DIR) -> Path:
    """Write atomically and owner-only: nginx never reads half a file, and the SAS inside stays private."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_nginx(plan, template_dir))
    tmp.chmod(0o600)  # it may hold a SAS
    tmp.replace(path)
    return path


def nginx_user() -> str | None:
    """Started as root, nginx workers would drop to `nobody` and lose read access to a private data dir:
    keep them the invoking user, like every other process of the stack. Non-root: nginx cannot switch."""
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None

"""Delivery through nginx on `streamify up --nodes 2`: real nginx, two uvicorn nodes, PostgreSQL, Redis, a
Celery worker; local-disk blobs for the static-segment path, Azurite for the Azure (proxy_cache) path.

Segments must never reach Python: nginx answers them (200, 206, ETag, immutable caching), the nodes' access
logs never see /media, and traversal attempts are refused. While Chromium plays through nginx, one node is
SIGKILLed: playback goes on and the browser sees no failed request, because nginx retries idempotent
requests on the surviving node.
"""

import http.client
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from api.captions import MAX_CAPTION_BYTES
from infra.nginx import BODY_LIMIT_BYTES, DELIVERY_HEADER, render_nginx
from tests.conftest import (
    ROOT,
    UPLOAD_LIMIT,
    drop_pg_database,
    free_port,
    new_pg_database,
    stop,
    upload,
    wait_for,
    wait_status,
)
from tests.media import make_clip
from tests.test_tus import create as tus_create
from tests.test_tus import patch as tus_patch

STREAMIFY = str(Path(sys.executable).parent / "streamify")
LOGS = ROOT / "test-artifacts" / "logs"
IMMUTABLE = "public, max-age=31536000, immutable"
NODE_LINE = re.compile(r"node (\d+): (http://127\.0\.0\.1:(\d+)) pid (\d+)\s+log (\S+)")


# --- fixtures: `streamify up --nodes N` on its own PostgreSQL database --------------------------------


@dataclass
class Node:
    url: str
    port: int
    pid: int
    log: Path


@dataclass
class UpStack:
    url: str
    data: Path
    proc: subprocess.Popen
    nodes: list[Node]
    token: str
    output: Path
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {self.token}"})

    @property
    def access_log(self) -> Path:
        return self.data / "logs" / "nginx-access.log"

    def api_log_text(self) -> str:
        return "".join(n.log.read_text(errors="replace") for n in self.nodes)


def start_up(tmp: Path, name: str, env_extra: dict[str, str], nodes: int = 2) -> Iterator[UpStack]:
    """Runs the real command; the test stack's services come from STREAMIFY_* env, as a user would set them."""
    LOGS.mkdir(parents=True, exist_ok=True)
    output = LOGS / f"up-nodes-{name}.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMIFY_")}
    env.update(
        STREAMIFY_QUEUE=f"delivery-{name}-{secrets.token_hex(4)}",
        STREAMIFY_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT),
        STREAMIFY_LADDER_MAX_HEIGHT="720",
        **env_extra,
    )
    out = output.open("w")
    proc = subprocess.Popen(
        [STREAMIFY, "up", "--nodes", str(nodes), "--port", str(port), "--data-dir", str(tmp / "data")],
        env=env,
        cwd=tmp,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: "Streamify is up" in output.read_text(), f"streamify up --nodes {nodes}", 120, proc)
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, "nginx front", 30, proc)
    except RuntimeError as exc:
        stop(proc)
        pytest.fail(f"{exc}\n{output.read_text()}")
    printed = output.read_text()
    found = [Node(m.group(2), int(m.group(3)), int(m.group(4)), Path(m.group(5))) for m in NODE_LINE.finditer(printed)]
    token = re.search(r"export STREAMIFY_TOKEN=(\S+)", printed)
    assert len(found) == nodes and token, printed
    stack = UpStack(url, tmp / "data", proc, found, token.group(1), output, env)
    yield stack
    stop(proc)


def start_on_own_database(tmp: Path, name: str, redis_url: str, env_extra: dict[str, str]) -> Iterator[UpStack]:
    """start_up on a PostgreSQL database of its own (dropped after) and the test Redis."""
    db, db_url = new_pg_database()
    env = {"STREAMIFY_DATABASE_URL": db_url.replace("postgresql://", "postgresql+psycopg://"),
           "STREAMIFY_BROKER_URL": redis_url, **env_extra}  # fmt: skip
    try:
        yield from start_up(tmp, name, env)
    finally:
        drop_pg_database(db)


@pytest.fixture(scope="module")
def disk_stack(tmp_path_factory, redis_url) -> Iterator[UpStack]:
    """Two nodes + nginx + worker, PostgreSQL and Redis, blobs on local disk (nginx serves /media/ from them)."""
    yield from start_on_own_database(tmp_path_factory.mktemp("up-disk"), "disk", redis_url, {})


@pytest.fixture(scope="module")
def azure_stack(tmp_path_factory, redis_url, azurite) -> Iterator[UpStack]:
    """The same on Azurite: nginx fetches media blobs with its own SAS and keeps them in its disk cache."""
    tag = secrets.token_hex(3)
    env = {
        "STREAMIFY_AZURE_CONNECTION_STRING": azurite.connection_string,
        "STREAMIFY_AZURE_MEDIA_CONTAINER": f"delivery-media-{tag}",
        "STREAMIFY_AZURE_SOURCE_CONTAINER": f"delivery-sources-{tag}",
    }
    yield from start_on_own_database(tmp_path_factory.mktemp("up-azure"), "azure", redis_url, env)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """Long enough that playback is still going well after a node is killed."""
    return make_clip(tmp_path_factory.mktemp("delivery-clip") / "long.mp4", size="1280x720", seconds=24, channels=2)


@pytest.fixture(scope="module")
def disk_video(disk_stack, long_clip) -> dict:
    with disk_stack.client() as client:
        r = upload(client, long_clip, title="delivery")
        assert r.status_code == 202, r.text
        video = wait_status(client, r.json()["id"])
    assert video["status"] == "ready", video
    return video


def media_urls(client: httpx.Client, video: dict) -> tuple[str, list[str]]:
    """(rendition, [init, segments...]) as the API's media playlist names them, through nginx."""
    rendition = max(video["renditions"], key=lambda r: r["bandwidth"])["name"]
    text = client.get(f"/api/v1/videos/{video['id']}/{rendition}/index.m3u8").raise_for_status().text
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
    segments = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert init and segments, text
    return rendition, [init.group(1), *segments]


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """Send the path exactly as written (httpx would normalise dot segments before nginx sees them)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def media_log_lines(stack: UpStack) -> list[str]:
    return [line for line in stack.access_log.read_text().splitlines() if '"GET /media/' in line]


# --- (a) segments: nginx alone, correct bytes and headers ------------------------------------------


def test_segments_are_served_by_nginx_with_ranges_etag_and_immutable_caching(disk_stack, disk_video):
    media_dir = disk_stack.data / "blobs" / "media"
    with disk_stack.client() as client:
        rendition, urls = media_urls(client, disk_video)
        init_url, seg_url = urls[0], urls[1]
        assert seg_url.startswith(f"/media/{disk_video['id']}/") and f"/{rendition}/" in seg_url, seg_url
        on_disk = (media_dir / seg_url.removeprefix("/media/")).read_bytes()

        whole = client.get(seg_url)
        assert whole.status_code == 200
        assert whole.content == on_disk
        assert whole.headers["cache-control"] == IMMUTABLE
        assert whole.headers["content-type"] == "video/iso.segment"
        assert whole.headers["etag"] and whole.headers["last-modified"]
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers[DELIVERY_HEADER] == "nginx-static"

        part = client.get(seg_url, headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206
        assert part.content == on_disk[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{len(on_disk)}"
        assert part.headers["cache-control"] == IMMUTABLE and part.headers["etag"] == whole.headers["etag"]
        tail = client.get(seg_url, headers={"Range": "bytes=-500"})
        assert tail.status_code == 206 and tail.content == on_disk[-500:]

        again = client.get(seg_url, headers={"If-None-Match": whole.headers["etag"]})
        assert again.status_code == 304 and not again.content
        head = client.head(seg_url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(on_disk))

        init = client.get(init_url)
        assert init.status_code == 200 and init.headers["content-type"] == "video/mp4"
        assert init.headers["cache-control"] == IMMUTABLE
        assert init.content == (media_dir / init_url.removeprefix("/media/")).read_bytes()
        stored = client.get(seg_url.rsplit("/", 1)[0] + "/index.m3u8")
        assert stored.status_code == 200 and stored.headers["content-type"] == "application/vnd.apple.mpegurl"

        # Playlists come from the API through nginx (and its micro-cache), not from the blob directory.
        master = client.get(disk_video["playback_url"])
        assert master.status_code == 200 and DELIVERY_HEADER not in master.headers
        assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")

    # No API process handled a segment: their access logs never saw /media, and nginx proxied none of them.
    time.sleep(0.5)
    assert "/media/" not in disk_stack.api_log_text()
    lines = media_log_lines(disk_stack)
    assert len(lines) >= 6, lines
    assert all('upstream="-"' in line for line in lines), lines


def test_traversal_and_hidden_files_are_refused(disk_stack, disk_video):
    video_id = disk_video["id"]
    data = disk_stack.data
    source = (data / "blobs" / "sources" / video_id / "source").read_bytes()
    media = data / "blobs" / "media" / video_id
    (media / ".seg_99999.m4s.part").write_bytes(b"half-written")
    (media / "notes.txt").write_bytes(b"not media")
    (media / "link.m4s").symlink_to(data / "blobs" / "sources" / video_id / "source")
    for path in [
        f"/media/../sources/{video_id}/source",
        f"/media/{video_id}/../../sources/{video_id}/source",
        f"/media/%2e%2e/sources/{video_id}/source",
        f"/media/..%2fsources/{video_id}/source",
        f"/media/%2e%2e%2fsources%2f{video_id}%2fsource",
        f"/media/..%252fsources/{video_id}/source",
        f"/media//../sources/{video_id}/source",
        f"/media/..\\sources\\{video_id}\\source",
        "/media/../../../../../../etc/passwd",
        "/media/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"/media/{video_id}/",
        "/media/",
        f"/media/{video_id}/.seg_99999.m4s.part",
        f"/media/{video_id}/notes.txt",
        f"/media/{video_id}/link.m4s",
    ]:
        status, body = raw_get(disk_stack.url, path)
        assert status in (400, 403, 404), (path, status)
        assert source[:4096] not in body and b"root:" not in body and b"half-written" not in body, path
        assert b"Index of" not in body and b"not media" not in body, path
    # nginx answered all of them itself: no node saw a /media/ path or a dot segment.
    api_log = disk_stack.api_log_text()
    assert "/media/" not in api_log and "/.." not in api_log and "%2e" not in api_log.lower()


# --- request bodies: small ones everywhere, big ones only where uploads go ------------------------------


def _caption_vtt(size: int) -> bytes:
    """A real caption file of about `size` bytes (under it): one cue a second, 900 characters each."""
    text = "word " * 180
    cue_bytes = len(f"00:00:00.000 --> 00:00:00.900\n{text}\n\n")
    cues = [
        f"00:{n // 60:02d}:{n % 60:02d}.000 --> 00:{n // 60:02d}:{n % 60:02d}.900\n{text}\n\n"
        for n in range((size - 8) // cue_bytes)
    ]
    return ("WEBVTT\n\n" + "".join(cues)).encode()


def test_nginx_refuses_big_bodies_outside_the_upload_routes(disk_stack, disk_video):
    """A 5 MiB login is refused by nginx (413, JSON) before any node sees it: at its headers when it declares its
    length (nothing written to nginx's disk), after at most the limit when it is chunked. The largest real
    non-upload body (a caption file near its 2 MiB limit) still gets through."""
    big = b"{" + b" " * (5 * 1024 * 1024) + b"}"
    error_log = disk_stack.data / "logs" / "nginx-error.log"

    def login_errors() -> list[str]:
        return [line for line in error_log.read_text().splitlines() if "/api/v1/auth/login" in line]

    logins_before = disk_stack.api_log_text().count("/api/v1/auth/login")
    with httpx.Client(base_url=disk_stack.url, timeout=60) as anon:
        declared = anon.post("/api/v1/auth/login", content=big, headers={"Content-Type": "application/json"})
        time.sleep(0.5)
        errors = login_errors()
        assert any("client intended to send too large body: 5242882 bytes" in line for line in errors), errors
        assert not [line for line in errors if "buffered to a temporary file" in line], errors
        chunks = (big[i : i + 64 * 1024] for i in range(0, len(big), 64 * 1024))  # no Content-Length: counted
        chunked = anon.post("/api/v1/auth/login", content=chunks, headers={"Content-Type": "application/json"})
    for r in (declared, chunked):
        assert r.status_code == 413, (r.status_code, r.text[:200])
        assert r.json()["detail"].startswith(f"request body too large: the limit is {BODY_LIMIT_BYTES} bytes")
    time.sleep(0.5)
    assert disk_stack.api_log_text().count("/api/v1/auth/login") == logins_before  # no node saw either
    refused = [line for line in disk_stack.access_log.read_text().splitlines() if '"POST /api/v1/auth/login ' in line]
    assert len(refused) >= 2 and all('" 413 ' in line and 'upstream="-"' in line for line in refused[-2:]), refused

    vtt = _caption_vtt(MAX_CAPTION_BYTES - 4096)
    assert MAX_CAPTION_BYTES - 8192 < len(vtt) <= MAX_CAPTION_BYTES
    with disk_stack.client() as owner:
        r = owner.post(
            f"/api/v1/videos/{disk_video['id']}/captions",
            files={"file": ("big.vtt", vtt, "text/vtt")},
            data={"language": "en"},
        )
        assert r.status_code == 201, r.text
        assert owner.delete(f"/api/v1/videos/{disk_video['id']}/captions/en").status_code == 204


def test_uploads_bigger_than_the_body_limit_stream_through_nginx(disk_stack, tmp_path):
    clip = make_clip(tmp_path / "big.mp4", size="640x360", seconds=8, audio=False)
    data = clip.read_bytes()
    assert len(data) > BODY_LIMIT_BYTES + 1024 * 1024, len(data)
    with disk_stack.client() as client:
        multipart = upload(client, clip, title="multipart through nginx")
        assert multipart.status_code == 202, multipart.text
        url = tus_create(client, len(data), filename="big.mp4", title="tus through nginx")
        done = tus_patch(client, url, 0, data)  # one PATCH with the whole file: far above the default body limit
        assert done.status_code == 204, done.text
        assert done.headers["upload-offset"] == str(len(data))
        for video_id in (multipart.json()["id"], done.headers["streamify-video-id"]):
            video = wait_status(client, video_id)
            assert video["status"] == "ready" and video["duration"] == pytest.approx(8, abs=0.2), video
    lines = [line for line in disk_stack.access_log.read_text().splitlines() if '"PATCH /api/v1/uploads/' in line]
    assert lines and '" 204 ' in lines[-1] and 'upstream="127.0.0.1:' in lines[-1], lines


# --- (b) a node dies while Chromium plays: nothing fails --------------------------------------------


def _watch(browser, url: str, failed: list[str]):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.on("requestfailed", lambda req: failed.append(f"failed {req.url} {req.failure}"))
    page.on(
        "response",
        lambda resp: resp.status >= 400 and not _anonymous_nav(resp) and failed.append(f"{resp.status} {resp.url}"),
    )
    page.goto(url)
    return page


def _anonymous_nav(resp) -> bool:
    """The header asks who is signed in (player/static/nav.js): 401 is its answer for an anonymous viewer."""
    return resp.status == 401 and urlsplit(resp.url).path == "/api/v1/auth/me"


def _current_time(page) -> float:
    return page.evaluate("document.getElementById('video').currentTime")


def test_playback_and_status_polling_survive_a_killed_node(disk_stack, disk_video, long_clip, browser):  # noqa: F811
    failed: list[str] = []
    with disk_stack.client() as client:
        # A second video still transcoding: its watch page keeps polling /api/v1/videos/{id} through nginx.
        r = upload(client, long_clip, title="still processing")
        assert r.status_code == 202, r.text
        pending_id = r.json()["id"]
        polling = _watch(browser, f"{disk_stack.url}/watch/{pending_id}", failed)
        playing = _watch(browser, f"{disk_stack.url}/watch/{disk_video['id']}", failed)
        playing.wait_for_function("window.streamify && window.streamify.levels > 0", timeout=30_000)
        playing.wait_for_function("document.getElementById('video').currentTime >= 2", timeout=60_000)
        assert client.get(f"/api/v1/videos/{pending_id}").json()["status"] != "ready"

        victim = disk_stack.nodes[0]
        os.kill(victim.pid, signal.SIGKILL)
        t_killed = _current_time(playing)

        # Every kind of API request the pages make, several times, after the kill: each node is asked in turn.
        levels = playing.evaluate("window.streamify.hls.levels.length")
        statuses = playing.evaluate(
            """async ([id, n]) => {
                const out = [];
                for (let i = 0; i < n; i++) {
                    out.push((await fetch(`/api/v1/videos/${id}`)).status);
                    out.push((await fetch(`/api/v1/videos/${id}/master.m3u8`, {cache: 'no-store'})).status);
                }
                return out;
            }""",
            [disk_video["id"], 6],
        )
        assert set(statuses) == {200}, statuses
        for level in range(levels):  # each switch loads that level's media playlist through nginx
            playing.evaluate(f"window.streamify.hls.currentLevel = {level}")
            playing.wait_for_timeout(700)
        playing.evaluate("window.streamify.hls.currentLevel = -1")

        # Playback keeps going on the page that was playing...
        playing.wait_for_function(
            f"document.getElementById('video').currentTime >= {t_killed + 4}", timeout=60_000, polling=250
        )
        state = playing.evaluate("({fatal: window.streamify.fatal, paused: document.getElementById('video').paused})")
        assert state == {"fatal": None, "paused": False}, state
        # ...and the page that was polling starts playing once its transcode is done.
        assert wait_status(client, pending_id)["status"] == "ready"
        polling.wait_for_function("window.streamify && window.streamify.levels > 0", timeout=30_000)
        polling.wait_for_function("document.getElementById('video').currentTime >= 1", timeout=60_000)
        assert polling.evaluate("window.streamify.fatal") is None
    playing.close()
    polling.close()

    assert not failed, failed
    assert disk_stack.proc.poll() is None, "streamify up must survive the loss of one node"
    # nginx did meet the dead node, and moved the request on: "dead, live" upstreams with a final 200.
    dead = f"127.0.0.1:{victim.port}"
    retried = [
        line
        for line in disk_stack.access_log.read_text().splitlines()
        if f'upstream="{dead}, ' in line and '" 200 ' in line
    ]
    assert retried, "no request was retried on the surviving node"
    assert f"pid {victim.pid}) exited with -{signal.SIGKILL.value}" in disk_stack.output.read_text()


# --- Azure Blob behind nginx's cache ----------------------------------------------------------------


def test_azure_media_is_cached_by_nginx_and_plays(azure_stack, clips, browser):  # noqa: F811
    from core.blobs import AzureBlobStore
    from core.settings import Settings

    with azure_stack.client() as client:
        r = upload(client, clips["720p_short"], title="azure delivery")
        assert r.status_code == 202, r.text
        video = wait_status(client, r.json()["id"])
        assert video["status"] == "ready", video
        rendition, urls = media_urls(client, video)
        playlist = client.get(f"/api/v1/videos/{video['id']}/{rendition}/index.m3u8").text
        # Browsers are handed nginx's /media/ URLs: no blob host, no SAS.
        assert "sig=" not in playlist and "devstoreaccount1" not in playlist and "127.0.0.1" not in playlist
        seg_url = urls[1]
        assert seg_url.startswith("/media/"), seg_url
        settings = Settings(
            azure_connection_string=azure_stack.env["STREAMIFY_AZURE_CONNECTION_STRING"],
            azure_media_container=azure_stack.env["STREAMIFY_AZURE_MEDIA_CONTAINER"],
        )
        blob = AzureBlobStore(
            settings.azure_connection_string or "", settings.azure_media_container, settings
        ).read_bytes(seg_url.removeprefix("/media/"))

        first = client.get(seg_url)
        second = client.get(seg_url)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content == blob
        assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
        for resp in (first, second):
            assert resp.headers["cache-control"] == IMMUTABLE
            assert resp.headers["content-type"] == "video/iso.segment"
            assert resp.headers["etag"] and resp.headers[DELIVERY_HEADER] == "nginx-cache"
            assert not [h for h in resp.headers if h.lower().startswith("x-ms-")], resp.headers
        part = client.get(seg_url, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == blob[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(blob)}"
        cold_part = client.get(urls[2], headers={"Range": "bytes=0-99"})  # a Range on a MISS: whole blob cached
        assert cold_part.status_code == 206 and len(cold_part.content) == 100
        assert client.get(f"/media/{video['id']}/{rendition}/missing.m4s").status_code == 404
        for path in [f"/media/../{video['id']}/source", f"/media/%2e%2e/{video['id']}/source", "/media/x/.hidden.m4s"]:
            status, _ = raw_get(azure_stack.url, path)
            assert status in (400, 403, 404), (path, status)

    failed: list[str] = []
    page = _watch(browser, f"{azure_stack.url}/watch/{video['id']}", failed)
    page.wait_for_function("window.streamify && window.streamify.levels > 0", timeout=30_000)
    page.wait_for_function("document.getElementById('video').currentTime >= 2", timeout=60_000)
    assert page.evaluate("window.streamify.fatal") is None
    page.close()
    assert not failed, failed
    assert "/media/" not in azure_stack.api_log_text()


# --- `up --nodes` on embedded defaults, and a clean stop ------------------------------------------------


@pytest.mark.stack  # `streamify up --nodes 2` of its own: nginx, two API nodes, a worker
def test_up_with_nodes_on_embedded_defaults_stops_every_child(tmp_path):
    stack_iter = start_up(tmp_path, "embedded", {}, nodes=2)
    stack = next(stack_iter)
    assert httpx.get(f"{stack.url}/readyz").json()["checks"]["database"] == "ok"
    conf = (stack.data / "nginx" / "nginx.conf").read_text()
    assert all(f"server 127.0.0.1:{n.port} max_fails=" in conf for n in stack.nodes)
    assert "proxy_next_upstream error timeout http_502 http_504;" in conf  # a node's 503 is a backing service's
    pids = [n.pid for n in stack.nodes] + [int((stack.data / "nginx" / "nginx.pid").read_text())]
    stack.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert stack.proc.wait(timeout=60) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), pid
    assert "stopping" in stack.output.read_text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.url}/healthz", timeout=2)
    stack_iter.close()


def test_rendered_config_refuses_unsafe_values(tmp_path):
    from infra.nginx import NginxPlan

    plan = NginxPlan(
        listen="127.0.0.1:1",
        nodes=("127.0.0.1:2",),
        state_dir=str(tmp_path),
        error_log="stderr",
        access_log="off",
        upload_max_bytes=1,
        segment_key="0123abcd",
        media_root='/srv/x"; root /etc',
    )
    with pytest.raises(ValueError, match="unsafe"):
        render_nginx(plan)
    with pytest.raises(ValueError, match="unsafe"):
        render_nginx(replace(plan, media_root="/srv/x", segment_key='k"; return 200 "'))


def test_nginx_drops_idle_upstream_connections_before_the_nodes_do(tmp_path):
    """A node (uvicorn) closes an idle keep-alive connection after its timeout; if nginx kept it longer, a
    request sent on it just as the node closes is lost: a dropped connection, a 502 for a POST."""
    import uvicorn

    upstream = re.search(r"upstream streamify_api \{(.*?)\}", render_nginx(_bare_plan(tmp_path)), re.S)
    assert upstream is not None
    idle = re.search(r"keepalive_timeout (\d+)s;", upstream.group(1))
    assert idle is not None, "the upstream keeps idle connections without a bound"
    node_idle = uvicorn.Config("api.app:create_app").timeout_keep_alive
    assert int(idle.group(1)) < node_idle


def test_nginx_passes_the_address_it_saw_not_the_one_the_client_wrote(tmp_path):
    """Sign-ins are throttled per client address (core.login_throttle): a client must not pick it by sending its
    own X-Forwarded-For. Behind a CDN or Front Door, only the listed proxies are believed; `nginx -t` accepts both."""
    from core.settings import Settings
    from infra.nginx import nginx_exe

    plan = _bare_plan(tmp_path)
    for variant, expected in ((plan, 0), (replace(plan, trusted_proxies=("10.0.0.0/8", "2001:db8::/32")), 2)):
        text = render_nginx(variant)
        assert "$proxy_add_x_forwarded_for" not in text
        assert "proxy_set_header X-Forwarded-For $remote_addr;" in text
        assert text.count("set_real_ip_from") == expected
        conf = tmp_path / "nginx.conf"
        conf.write_text(text)
        exe = nginx_exe(Settings(data_dir=tmp_path))
        checked = subprocess.run([exe, "-t", "-c", str(conf)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def _bare_plan(tmp_path: Path):
    """A config nginx -t accepts, with nothing behind it."""
    from infra.nginx import NginxPlan

    return NginxPlan(
        listen="127.0.0.1:1",
        nodes=("127.0.0.1:2",),
        state_dir=str(tmp_path),
        error_log="stderr",
        access_log=str(tmp_path / "access.log"),
        upload_max_bytes=1,
        segment_key="0123abcd",
        media_root=str(tmp_path),
    )

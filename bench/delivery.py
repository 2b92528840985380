"""Delivery benchmark: the stack (nginx -> N API nodes) against raw nginx serving the same files.

One run transcodes a generated clip on a local `streamify up --nodes N` stack (the same LocalStack and
rendered nginx config), then loads, with `wrk`, in alternating rounds:

- a ~1.5 MB segment: stack `/media/...` (nginx static location) vs raw nginx (`root` + sendfile, nothing
  else) vs one uvicorn node alone (Starlette StaticFiles, for scale);
- the master and one media playlist: stack (API playlist route behind nginx's micro-cache) vs the raw
  files from raw nginx vs one uvicorn node alone (every request rendered by Python);
- then the same video made private: the segment through a signed URL (nginx checks the signature in an
  auth subrequest, no API call) and the media playlist with a playback token (never cached: every request
  is rendered and signed by a node), against the same raw-nginx files.

With --azure it also measures the Azure Blob choices on Azurite: nginx proxy_cache hits vs the blob store
serving a SAS URL directly (the second leg of any redirect-to-SAS) vs the 302 leg itself.

    .venv/bin/python -m bench.delivery [--nodes 2] [--duration 10] [--connections 32] [--threads 2]
                                       [--rounds 3] [--azure]

wrk runs on the same 2-core machine as the servers: it takes CPU from them, equally for every target.
"""

import argparse
import collections
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from cli.stack import LocalStack, free_port
from core.ffmpeg import ffmpeg_exe
from core.settings import Settings
from infra.nginx import nginx_exe, nginx_plan, nginx_user, write_nginx_config

ROOT = Path(__file__).resolve().parent.parent
TARGET_SEGMENT_BYTES = 1_500_000
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account key (public, documented by Microsoft).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
console = Console(width=120)  # piped output keeps whole lines


@dataclass
class Load:
    rps: float
    p99_ms: float
    errors: int


def generate_source(path: Path, seconds: int, ffmpeg: str) -> Path:
    """720p testsrc2 with temporal noise at 6 Mb/s and a stereo tone: 4 s segments near 1.5 MB at the top rung."""
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30,noise=alls=6:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "6M", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-ac", "2", "-b:a", "128k", str(path)],
        check=True,
    )  # fmt: skip
    return path


def wrk(url: str, duration: int, connections: int, threads: int) -> Load:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return Load(rps, p99, errors)


def raw_nginx(root: Path, state: Path, port: int, exe: str, extra: str = "") -> subprocess.Popen:
    """The plainest static config: root + sendfile, no logging, no headers, nothing else."""
    state.mkdir(parents=True, exist_ok=True)
    conf = state / "raw.conf"
    user = f"user {nginx_user()};" if nginx_user() else ""
    conf.write_text(f"""
{user}
worker_processes auto;
pid {state}/raw.pid;
error_log {state}/raw-error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {state}/body; proxy_temp_path {state}/proxy; fastcgi_temp_path {state}/fcgi;
    uwsgi_temp_path {state}/uwsgi; scgi_temp_path {state}/scgi;
    types {{ video/iso.segment m4s; video/mp4 mp4; application/vnd.apple.mpegurl m3u8; }}
    sendfile on;
    tcp_nopush on;
    access_log off;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        {extra}
    }}
}}
""")
    log = f"{state}/raw-error.log"
    proc = subprocess.Popen([exe, "-p", str(state), "-e", log, "-c", str(conf), "-g", "daemon off;"])
    _wait(f"http://127.0.0.1:{port}/", ok=(200, 302, 403, 404))
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # Azurite sometimes ignores SIGTERM
        proc.kill()
        proc.wait()


def _wait(url: str, ok=(200,), timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not up")


def prepare_video(stack_url: str, settings: Settings, source: Path) -> tuple[dict, str]:
    """Upload through the stack with a fresh account's token and wait for the ladder: (video, API token)."""
    from sqlmodel import Session

    from core.accounts import create_user, mint_token
    from core.db import get_engine
    from schemas.tables import TokenKind

    with Session(get_engine(settings)) as session:
        user = create_user(session, f"bench-{secrets.token_hex(3)}@example.test", secrets.token_urlsafe(16), "Bench")
        token, _ = mint_token(session, user, TokenKind.api, name="bench")
    with httpx.Client(base_url=stack_url, timeout=600, headers={"Authorization": f"Bearer {token}"}) as client:
        with source.open("rb") as f:
            r = client.post("/api/v1/videos", files={"file": (source.name, f)}, data={"title": "bench"})
        r.raise_for_status()
        video_id = r.json()["id"]
        while (video := client.get(f"/api/v1/videos/{video_id}").json())["status"] not in ("ready", "failed"):
            time.sleep(1)
    if video["status"] != "ready":
        raise RuntimeError(f"transcode failed: {video['error']}")
    return video, token


def make_private(stack_url: str, video_id: str, api_token: str) -> str:
    """Switch the video to private and return a playback token for it (what its owner would hand out)."""
    with httpx.Client(base_url=stack_url, timeout=30, headers={"Authorization": f"Bearer {api_token}"}) as client:
        client.patch(f"/api/v1/videos/{video_id}", json={"visibility": "private"}).raise_for_status()
        return client.post(f"/api/v1/videos/{video_id}/playback-token", json={}).raise_for_status().json()["token"]


def pick_segment(media_dir: Path, video_id: str) -> tuple[str, str]:
    """(rendition, segment file) closest to 1.5 MB: the size NOTES.md measured."""
    segs = sorted(
        (media_dir / video_id).glob("*/seg_*.m4s"), key=lambda p: abs(p.stat().st_size - TARGET_SEGMENT_BYTES)
    )
    return segs[0].parent.name, segs[0].name


def settle() -> None:
    """Between runs: flush what the last run left to write (nginx's access log after 50k req/s is tens of MB)
    so its writeback does not land on whichever server runs next."""
    os.sync()
    time.sleep(1)


def measure(targets: dict[str, dict[str, str]], args) -> dict[str, dict[str, Load]]:
    """Alternate servers within each round so drift (page cache, CPU heat) hits all alike; median of rounds.
    Every URL is warmed first (a short run, discarded): caches, keep-alive pools and page cache alike."""
    for servers in targets.values():
        for url in servers.values():
            wrk(url, 2, args.connections, args.threads)
            settle()
    runs: dict[str, dict[str, list[Load]]] = {t: {s: [] for s in servers} for t, servers in targets.items()}
    for r in range(args.rounds):
        for target, servers in targets.items():
            order = list(servers.items())
            for server, url in order if r % 2 == 0 else reversed(order):  # no server always goes first
                settle()
                load = wrk(url, args.duration, args.connections, args.threads)
                runs[target][server].append(load)
                console.print(
                    f"  round {r + 1} {target:<22} {server:<10} {load.rps:>9.0f} req/s  p99 {load.p99_ms:7.1f} ms"
                )
    return {
        t: {
            s: Load(
                statistics.median(x.rps for x in loads),
                statistics.median(x.p99_ms for x in loads),
                sum(x.errors for x in loads),
            )
            for s, loads in servers.items()
        }
        for t, servers in runs.items()
    }


def census(url: str, requests: int = 300, concurrency: int = 32) -> dict[int | str, int]:
    """Status codes of a burst like wrk's, to say what the errors were."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> int | str:
        try:
            return httpx.get(url, timeout=30).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(concurrency) as pool:
        return dict(collections.Counter(pool.map(one, range(requests))))


def report(title: str, results: dict[str, dict[str, Load]], baseline: str) -> None:
    console.print(f"\n{title}")
    console.print(f"{'target':<23}{'server':<12}{'req/s':>10}{'p99 ms':>10}{'errors':>8}{'x ' + baseline:>12}")
    for target, servers in results.items():
        base = servers[baseline].rps
        for server, load in servers.items():
            row = f"{target:<23}{server:<12}{load.rps:>10.0f}{load.p99_ms:>10.1f}{load.errors:>8}"
            console.print(f"{row}{load.rps / base:>11.2f}x")


def azure_section(work: Path, media_dir: Path, video_id: str, rendition: str, segment: str, stack, args) -> None:
    """nginx proxy_cache of blob URLs vs what a redirect to a SAS URL costs, on Azurite."""
    from core.blobs import AzureBlobStore

    port = free_port()
    azurite = subprocess.Popen(
        [str(AZURITE_BIN), "--silent", "--location", str(work / "azurite"), "--blobHost", "127.0.0.1",
         "--blobPort", str(port), "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    nginx = None
    try:
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
        settings = Settings(data_dir=work / "az", azure_connection_string=conn, azure_cors_origins="")
        time.sleep(2)
        store = AzureBlobStore(conn, settings.azure_media_container, settings)
        store.ensure()
        for path in (media_dir / video_id).rglob("*"):
            if path.is_file():
                store.put_file(path.relative_to(media_dir).as_posix(), path)
        key = f"{video_id}/{rendition}/{segment}"
        sas_url = store.url_for(key)
        nport = free_port()
        state = work / "az-nginx"
        nodes = [n.url.removeprefix("http://") for n in stack.children if n.name.startswith("node")]
        plan = nginx_plan(settings, nodes, listen=f"127.0.0.1:{nport}", state_dir=state, user=nginx_user())
        conf = write_nginx_config(plan, state / "nginx.conf")
        nginx = subprocess.Popen([nginx_exe(settings), "-p", str(state), "-e", plan.error_log, "-c", str(conf),
                                  "-g", "daemon off;"])  # fmt: skip
        cached = f"http://127.0.0.1:{nport}/media/{key}"
        _wait(f"http://127.0.0.1:{nport}/nginx-healthz")
        # Cold: the first fetch of each segment goes to the blob store (then the cache holds it).
        cold = []
        for seg in sorted((media_dir / video_id / rendition).glob("seg_*.m4s")):
            t0 = time.perf_counter()
            httpx.get(f"http://127.0.0.1:{nport}/media/{video_id}/{rendition}/{seg.name}").raise_for_status()
            cold.append((time.perf_counter() - t0) * 1000)
        rport = free_port()
        (work / "empty").mkdir(exist_ok=True)
        redirect = raw_nginx(work / "empty", work / "redirect-nginx", rport, nginx_exe(settings),
                             extra=f'location / {{ return 302 "{sas_url}"; }}')  # fmt: skip
        try:
            results = measure(
                {
                    "blob segment": {
                        "nginx-cache": cached,
                        "blob-SAS": sas_url,
                        "302-leg": f"http://127.0.0.1:{rport}/{key}",
                    }
                },
                args,
            )
        finally:
            _stop(redirect)
        report("Azure Blob (Azurite) segment delivery", results, "nginx-cache")
        console.print(
            f"cold fetch through nginx (cache MISS -> Azurite), {len(cold)} segments: "
            f"median {statistics.median(cold):.1f} ms, max {max(cold):.1f} ms"
        )
        console.print(
            "redirect-to-SAS = the 302 leg + the blob-SAS leg, one after the other, per segment; "
            "its throughput cannot exceed the blob-SAS row."
        )
    finally:
        if nginx is not None:
            _stop(nginx)
        _stop(azurite)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=12, help="length of the generated clip")
    parser.add_argument("--azure", action="store_true", help="also compare Azure Blob delivery on Azurite")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="streamify-bench-"))
    # Embedded defaults (SQLite, filesystem broker, local blobs) unless a database/broker is exported.
    for name in ("STREAMIFY_AZURE_CONNECTION_STRING", "STREAMIFY_SEGMENT_BASE_URL"):
        os.environ.pop(name, None)
    os.environ["STREAMIFY_DATA_DIR"] = str(work / "data")
    os.environ["STREAMIFY_QUEUE"] = f"bench-{secrets.token_hex(4)}"
    from core.db import migrate
    from core.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True)
    migrate(settings)
    source = generate_source(work / "source.mp4", args.seconds, ffmpeg_exe(settings))
    stack = LocalStack(settings, args.nodes, "127.0.0.1", free_port(), console)
    raw = None
    try:
        stack.start()
        console.print(f"stack: {stack.url} (nginx + {args.nodes} nodes); transcoding a {args.seconds} s 720p clip…")
        video, api_token = prepare_video(stack.url, settings, source)
        video_id = video["id"]
        media_dir = settings.blob_dir / "media"
        rendition, segment = pick_segment(media_dir, video_id)
        size = (media_dir / video_id / rendition / segment).stat().st_size
        raw_port = free_port()
        raw = raw_nginx(media_dir.resolve(), work / "raw-nginx", raw_port, nginx_exe(settings))
        node = next(c.url for c in stack.children if c.name.startswith("node"))
        raw_url = f"http://127.0.0.1:{raw_port}"
        api = f"/api/v1/videos/{video_id}"
        targets = {
            f"segment {size / 1e6:.2f}MB": {
                "stack": f"{stack.url}/media/{video_id}/{rendition}/{segment}",
                "raw-nginx": f"{raw_url}/{video_id}/{rendition}/{segment}",
                "one-node": f"{node}/media/{video_id}/{rendition}/{segment}",
            },
            "master.m3u8": {
                "stack": f"{stack.url}{api}/master.m3u8",
                "raw-nginx": f"{raw_url}/{video_id}/master.m3u8",
                "one-node": f"{node}{api}/master.m3u8",
            },
            "media playlist": {
                "stack": f"{stack.url}{api}/{rendition}/index.m3u8",
                "raw-nginx": f"{raw_url}/{video_id}/{rendition}/index.m3u8",
                "one-node": f"{node}{api}/{rendition}/index.m3u8",
            },
        }
        for servers in targets.values():
            for url in servers.values():
                httpx.get(url, timeout=10).raise_for_status()
        console.print(
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} alternating rounds, median"
        )
        load_before = os.getloadavg()[0]
        results = measure(targets, args)
        console.print(
            f"load average (1 min) before {load_before:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:"
            " anything else running on the machine shows up as noise in every row alike"
        )
        if args.azure:  # while the video is still public: the Azure section fetches plain URLs
            azure_section(work, media_dir, video_id, rendition, segment, stack, args)
        # The same video, private: signed segment URLs (nginx alone) and token playlists (a node every time).
        token = make_private(stack.url, video_id, api_token)
        media = httpx.get(f"{stack.url}{api}/{rendition}/index.m3u8", params={"token": token}).raise_for_status()
        query = next(line for line in media.text.splitlines() if f"/{segment}?" in line).partition("?")[2]
        # nginx keeps its "public" answer for nginx_access_cache_seconds (then refreshes it in the background).
        deadline = time.monotonic() + settings.nginx_access_cache_seconds + 5
        while httpx.get(f"{stack.url}/media/{video_id}/{rendition}/{segment}").status_code != 403:
            if time.monotonic() > deadline:
                sys.exit("an unsigned URL of the private video is still served: the access check is not in force")
            time.sleep(0.5)
        private_targets = {
            f"signed segment {size / 1e6:.2f}MB": {
                "stack": f"{stack.url}/media/{video_id}/{rendition}/{segment}?{query}",
                "raw-nginx": f"{raw_url}/{video_id}/{rendition}/{segment}",
                "one-node": f"{node}/media/{video_id}/{rendition}/{segment}?{query}",
            },
            "private playlist": {
                "stack": f"{stack.url}{api}/{rendition}/index.m3u8?token={token}",
                "raw-nginx": f"{raw_url}/{video_id}/{rendition}/index.m3u8",
                "one-node": f"{node}{api}/{rendition}/index.m3u8?token={token}",
            },
        }
        for servers in private_targets.values():
            for url in servers.values():
                httpx.get(url, timeout=10).raise_for_status()
        results.update(measure(private_targets, args))
        report(f"Delivery: stack (nginx -> {args.nodes} nodes) vs raw nginx, same files", results, "raw-nginx")
        for target, r in results.items():
            ratio = r["stack"].rps / r["raw-nginx"].rps
            line = f"{target}: stack/raw = {ratio:.2f}x, stack/one-node = {r['stack'].rps / r['one-node'].rps:.1f}x"
            if "segment" in target:
                line += f" ({'meets' if ratio >= 0.8 else 'MISSES'} the 0.8x target)"
            console.print(line)
        urls = {**targets, **private_targets}
        for target, servers in results.items():
            for server, load in servers.items():
                if load.errors:
                    statuses = census(urls[target][server])
                    console.print(f"{target} via {server}: {load.errors} errors; a burst now answers {statuses}")
    finally:
        if raw is not None:
            _stop(raw)
        stack.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

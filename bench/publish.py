"""Publish benchmark: how soon an upload plays, what chunking costs, what a second worker gives, what quality is lost.

The real stack on one machine, loopback only, like the load suite (bench/services.py): a PostgreSQL database, a
redis-server and an Azurite of its own, one API node behind nginx (cli/stack.py), and `streamify worker`
processes started and stopped here per phase (optionally pinned to a core with taskset). Everything is measured
through nginx with httpx, as a player sees it, polling every --poll seconds:

- first playable: seconds from the upload's 202 until the master answers 200 and every media playlist (every
  rung, and the audio rendition's when the master has an EXT-X-MEDIA audio group) lists >= 2 segments that, with
  their init segment, decode (PyAV; the decode check runs after the clock stops), for a 1-minute and a
  10-minute 1080p30 source;
- ready with one worker vs `streamify transcode` of the same 1-minute file;
- scale-out: the 10-minute source to `ready` on N workers pinned to one core each vs one pinned worker;
- quality: VMAF (libvmaf, n_threads=2, over the first --vmaf-seconds), bit rate and frame count of each rung of
  the published (chunked) ladder vs a one-process encode (`streamify transcode` with range_seconds=0).

One table, each row with its figure, goal and PASS/FAIL; the exit status is 1 when a goal fails.

    .venv/bin/python -m bench.publish [--quick] [--concurrency 2] [--scale-workers 2] [--json FILE] [--keep]
"""

import argparse
import contextlib
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlparse

import av
import httpx
import psutil
from rich.console import Console
from rich.table import Table

from bench.ladder import wait_for_idle
from bench.load import init_uri, uris
from bench.rungs import RungQuality, count_frames, rung_quality
from bench.services import Azurite, Database, Redis
from bench.sources import DEFAULT_CACHE, generated_once
from bench.verdicts import Row, at_least, at_most, ratio, render
from cli.stack import Child, LocalStack, free_port
from workers.launch import worker_argv

ROOT = Path(__file__).resolve().parent.parent
console = Console(width=150)
AUDIO_MEDIA = re.compile(r"^#EXT-X-MEDIA:(?=.*TYPE=AUDIO)(?=.*URI=\"([^\"]+)\")", re.MULTILINE)
MIN_SEGMENTS = 2  # hls.js starts once it holds a couple of segments of the rung and the audio it picked


# -- sources --------------------------------------------------------------------------------------------------


def source_argv(ffmpeg: str, seconds: int, out: Path) -> list[str]:
    """1080p30 H.264 at ~8 Mb/s with stereo AAC: testsrc2 under temporal grain (camera-like noise the encoder
    must spend bits on, unlike flat synthetic frames) and a tone over noise in each channel."""
    audio = "aevalsrc=0.3*sin(2*PI*440*t)+0.05*(random(0)-0.5)|0.3*sin(2*PI*554*t)+0.05*(random(1)-0.5):s=48000"
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30,noise=alls=8:allf=t",
            "-f", "lavfi", "-i", audio, "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "8M", "-maxrate", "8M", "-bufsize", "16M",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "160k", "-movflags", "+faststart", str(out)]  # fmt: skip


def cached_source(cache: Path, seconds: int, ffmpeg: str) -> Path:
    """Generated once (libx264 ultrafast: a 10-minute one takes a few minutes) and kept for the next runs."""
    path = cache / f"publish-1080p30-{seconds}s.mp4"
    return generated_once(path, lambda part: source_argv(ffmpeg, seconds, part), console.print)


# -- pure helpers (tests/test_publish_bench.py) ---------------------------------------------------------------


def media_playlists(master: str) -> list[str]:
    """Every media playlist a player may need: the variants' and the audio renditions' (EXT-X-MEDIA URI)."""
    return [*uris(master), *AUDIO_MEDIA.findall(master)]


def rendition_name(uri: str) -> str:
    """'720p/index.m3u8?sig=…' -> '720p' (the folder of the rendition in the encode's layout)."""
    parts = urlparse(uri).path.rstrip("/").split("/")
    return parts[-2] if len(parts) > 1 else parts[-1]


def decode_problem(parts: Sequence[bytes], scratch: Path) -> str:
    """'' when init + segments, concatenated as a player's buffer holds them, decode to at least one frame per
    segment with no decoder error; else what went wrong."""
    path = scratch / f"decode-{secrets.token_hex(4)}.mp4"
    path.write_bytes(b"".join(parts))
    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type in ("video", "audio")]
            if not streams:
                return "no audio or video stream"
            frames = sum(1 for _ in container.decode(*streams))
        return "" if frames >= len(parts) - 1 else f"only {frames} frames decoded"
    except (av.error.FFmpegError, ValueError) as exc:
        return f"decode error: {exc}"
    finally:
        path.unlink(missing_ok=True)


AUDIO_COST = 11 / 600  # core-seconds per source second of the whole-file AAC rendition (COMMON.md: 11 s / 10 min)


def range_lengths(duration: float, first: int = 4, longest: int = 60) -> list[float]:
    """Source seconds of each range, as workers.chunks plans them with the default settings."""
    from workers.chunks import plan_ranges

    ranges = plan_ranges(duration, segment_seconds=4, gop_seconds=2, first_range_seconds=first,
                         range_seconds=longest)  # fmt: skip
    return [r.length(duration) for r in ranges]


@dataclass
class CostModel:
    """Encode cost of one range on one core: fixed + per_second x its length (core-seconds); plus fixed
    per-job seconds (upload to claim, source download, publish) that no worker count shortens."""

    fixed: float
    per_second: float
    job: float

    @classmethod
    def fit(cls, ranges: list[dict], duration: float, one_core_ready: float) -> "CostModel":
        """Least squares over the per-range records of the one-core run when they give lengths; without
        records, the whole one-core time is charged per source second (no per-range or per-job part)."""
        # The last range's end may be open (None): it runs to the end of the source.
        points = [((duration if r.get("end") is None else r["end"]) - r["start"], r["seconds"])
                  for r in ranges if r.get("start") is not None]  # fmt: skip
        if len({round(x, 1) for x, _ in points}) < 2:
            return cls(0.0, one_core_ready / duration, 0.0)
        n, sx, sy = len(points), sum(x for x, _ in points), sum(y for _, y in points)
        sxx, sxy = sum(x * x for x, _ in points), sum(x * y for x, y in points)
        slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        intercept = max(0.0, (sy - slope * sx) / n)
        work = sum(y for _, y in points)
        return cls(intercept, slope, max(0.0, one_core_ready - work))

    def ready(self, duration: float, slots: int) -> float:
        """Seconds to ready on `slots` single-core workers: the whole-file audio task first, then the ranges in
        order, each dealt to the slot that frees first (Celery hands one task at a time to an idle process)."""
        free = [0.0] * slots
        for cost in [AUDIO_COST * duration, *(self.fixed + self.per_second * n for n in range_lengths(duration))]:
            i = free.index(min(free))
            free[i] += cost
        return self.job + max(free)


# -- the stack ------------------------------------------------------------------------------------------------


@dataclass
class Follow:
    """One upload followed through the API: seconds after its 202."""

    video_id: str
    source_seconds: int
    playable: float | None = None
    ready: float | None = None
    decode: str = "not checked"  # '' = every rendition's first segments decoded
    renditions: int = 0
    ranges: list[dict] = field(default_factory=list)  # per-range costs, when the job records them
    cpu: float | None = None  # CPU seconds of the workers' process trees from the 202 to ready


class Stack:
    """Services, one API node behind nginx, and the workers of the current phase."""

    def __init__(self, work: Path, store: str = "disk") -> None:
        self.work = work
        self.store = store
        self.redis = Redis(free_port(), work / "redis.log")
        self.azurite = Azurite(free_port(), work / "azurite")
        self.db = Database(name=f"streamify_publish_{secrets.token_hex(4)}")
        self.stack: LocalStack | None = None
        self.workers: list[Child] = []
        self.token = ""

    def start(self) -> None:
        self.db.create()
        self.redis.start()
        if self.store == "azure":
            self.azurite.start()
            os.environ["STREAMIFY_AZURE_CONNECTION_STRING"] = self.azurite.connection_string
        else:  # blobs on the machine's disk, nginx serving them: a one-machine install, as `make up` keeps them
            os.environ.pop("STREAMIFY_AZURE_CONNECTION_STRING", None)
        os.environ.update({
            "STREAMIFY_DATA_DIR": str(self.work / "data"),
            "STREAMIFY_DATABASE_URL": self.db.url,
            "STREAMIFY_BROKER_URL": self.redis.url,
            "STREAMIFY_QUEUE": f"publish-{secrets.token_hex(4)}",
            "STREAMIFY_PLAYBACK_SECRET": secrets.token_urlsafe(48),
            "STREAMIFY_LOG_FORMAT": "json",
        })  # fmt: skip
        os.environ.pop("STREAMIFY_SEGMENT_BASE_URL", None)
        from core.db import migrate
        from core.settings import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        migrate(settings)
        self.stack = LocalStack(settings, 1, "127.0.0.1", free_port(), console)
        self.stack.start()
        # LocalStack brings one solo worker; each phase here starts the workers it measures instead.
        for child in [c for c in self.stack.children if c.name == "worker"]:
            child.stop()
            self.stack.children.remove(child)
        self.token = operator_token(self.db.url)

    @property
    def url(self) -> str:
        assert self.stack is not None
        return self.stack.url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.token}"})

    def start_workers(self, specs: Sequence[tuple[str | None, int]]) -> None:
        """One `streamify worker --concurrency C` (prefork, as the CLI runs it) per (cpu list or None, C)."""
        assert self.stack is not None
        self.stop_workers()
        queue = self.stack.settings.queue
        for i, (cpus, concurrency) in enumerate(specs):
            argv = [*worker_argv(concurrency, "prefork", queue), "--hostname", f"bench{i}@%h"]
            if cpus is not None:
                argv = ["taskset", "-c", cpus, *argv]
            child = Child(f"worker {i}", argv, self.stack.log_dir / f"worker-{len(self.workers)}-{i}.log")
            child.start(self.stack.child_env())
            self.workers.append(child)
        for child in self.workers:
            wait_log(child, " ready.", 60)

    def quiesce(self, limit: float = 180) -> None:
        """Wait (bounded) until no job is queued or running and no worker runs ffmpeg for 2 s: work a job does
        after `ready` (pictures, a straggling range) must not run into the next phase or be re-queued into it."""
        deadline, quiet_since = time.monotonic() + limit, None
        while time.monotonic() < deadline:
            active = self.db.query("SELECT count(*) FROM transcode_jobs WHERE state IN ('queued', 'running')")[0][0]
            busy = active > 0 or any("ffmpeg" in p.name() for c in self.workers if c.running() for p in tree(c))
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 2:
                return
            time.sleep(0.5)
        console.print(f"[yellow]  the workers were still busy after {limit:.0f} s: stopping them anyway[/]")

    def workers_cpu(self) -> float:
        """CPU seconds the workers' trees used so far (a pool process's own and its waited-for ffmpeg's): beside
        wall time, a figure that other work on a shared machine does not inflate."""
        total = 0.0
        for child in self.workers:
            for proc in tree(child):
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = proc.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
        return total

    def stop_workers(self) -> None:
        """SIGKILL each worker's whole tree (pool processes, ffmpeg): nothing of a phase runs into the next."""
        for child in self.workers:
            for proc in tree(child):
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            if child.proc is not None:
                child.proc.wait()
        self.workers = []

    def stop(self, keep_db: bool) -> None:
        self.stop_workers()
        if self.stack is not None:
            self.stack.stop()
        self.azurite.stop()
        self.redis.stop()
        if not keep_db:
            with contextlib.suppress(Exception):
                self.db.drop()

    def cancel(self, video_id: str) -> None:
        """Cancel the video's job (ops API) so the next phase starts on an empty queue."""
        rows = self.db.query("SELECT id::text FROM transcode_jobs WHERE video_id::text = %s", (video_id,))
        with self.client() as client:
            for (job,) in rows:
                client.post(f"/api/v1/ops/jobs/{job}/cancel")

    def range_costs(self, video_id: str) -> list[dict]:
        """Wall seconds of each time range of the video's encode, as its parts recorded them (core.parts)."""
        rows = self.db.query(
            "SELECT p.start_seconds, p.end_seconds, p.encode_seconds FROM job_parts p "
            "JOIN transcode_jobs j ON j.id = p.job_id AND j.lease = p.generation "
            "WHERE p.video_id::text = %s AND p.kind = 'video' AND p.encode_seconds IS NOT NULL ORDER BY p.index",
            (video_id,),
        )
        return [{"start": a, "end": b, "seconds": s} for a, b, s in rows]


def tree(child: Child) -> list[psutil.Process]:
    """A child's process and all its descendants (pool processes, their ffmpeg)."""
    if child.proc is None:
        return []
    try:
        root = psutil.Process(child.proc.pid)
        return [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return []


def wait_log(child: Child, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running():
            raise RuntimeError(f"{child.name} exited during start-up: see {child.log}")
        if child.log.exists() and marker in child.log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} not ready after {timeout:.0f} s: see {child.log}")


def operator_token(database_url: str) -> str:
    """An operator (it cancels jobs between phases) and its API token, minted straight in the database."""
    from sqlmodel import Session

    from core.accounts import create_user, mint_token
    from core.db import make_engine
    from schemas.tables import TokenKind

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            user = create_user(session, f"bench-{secrets.token_hex(3)}@example.test", secrets.token_urlsafe(18),
                               "Bench", is_operator=True)  # fmt: skip
            return mint_token(session, user, TokenKind.api, name="publish bench")[0]
    finally:
        engine.dispose()


# -- one upload, followed -------------------------------------------------------------------------------------


def upload(client: httpx.Client, src: Path) -> tuple[str, float]:
    """Multipart upload through nginx; returns the video id and the monotonic time of the 202."""
    with src.open("rb") as f:
        r = client.post("/api/v1/videos", files={"file": (src.name, f, "video/mp4")},
                        data={"title": f"publish bench {src.stem}", "visibility": "public"},
                        timeout=httpx.Timeout(600))  # fmt: skip
    at = time.monotonic()
    if r.status_code != 202:
        raise RuntimeError(f"upload of {src.name} refused: {r.status_code} {r.text[:200]}")
    return r.json()["id"], at


def playable_now(client: httpx.Client, master_url: str) -> dict[str, list[bytes]] | None:
    """The init segment and first two segments of every media playlist, or None while any part is missing."""
    master = client.get(master_url)
    if master.status_code != 200:
        return None
    playlists: dict[str, tuple[str, list[str]]] = {}
    for uri in media_playlists(master.text):
        url = urljoin(str(master.url), uri)
        r = client.get(url)
        segments = uris(r.text) if r.status_code == 200 else []
        if len(segments) < MIN_SEGMENTS:
            return None
        init = init_uri(r.text)
        playlists[rendition_name(uri)] = (url, [*([init] if init else []), *segments[:MIN_SEGMENTS]])
    if not playlists:
        return None
    fetched: dict[str, list[bytes]] = {}
    for name, (url, wanted) in playlists.items():
        fetched[name] = []
        for part in wanted:
            r = client.get(urljoin(url, part))
            if r.status_code != 200:
                return None
            fetched[name].append(r.content)
    return fetched


def follow(stack: Stack, src: Path, seconds: int, *, until_ready: bool, poll: float, timeout: float) -> Follow:
    """Upload `src`, then poll the master (and its playlists and first segments) and the video's status until
    it is playable and, if asked, ready."""
    with stack.client() as client:
        cpu0 = stack.workers_cpu()
        video_id, t0 = upload(client, src)
        result = Follow(video_id, seconds)
        master_url = f"/api/v1/videos/{video_id}/master.m3u8"
        first: dict[str, list[bytes]] | None = None
        while True:
            if time.monotonic() - t0 > timeout:  # a figure never reached fails its goal (inf), never n/a
                console.print(f"[red]  gave up after {timeout:.0f} s[/]")
                result.playable = math.inf if first is None else result.playable
                result.ready = math.inf if until_ready and result.ready is None else result.ready
                break
            with contextlib.suppress(httpx.TransportError):  # a dropped poll is only a poll lost
                if first is None and (first := playable_now(client, master_url)) is not None:
                    result.playable = time.monotonic() - t0
                    console.print(f"  playable after {result.playable:.1f} s ({len(first)} renditions)")
                r = client.get(f"/api/v1/videos/{video_id}") if result.ready is None else None
                status = r.json().get("status") if r is not None and r.status_code == 200 else None
                if status == "ready":
                    result.ready = time.monotonic() - t0
                    result.cpu = stack.workers_cpu() - cpu0
                    console.print(f"  ready after {result.ready:.1f} s")
                elif status in ("failed", "cancelled"):
                    raise RuntimeError(f"video {video_id} {status}: {r.json().get('error') if r else ''}")
            if first is not None and (result.ready is not None or not until_ready):
                break
            time.sleep(poll)
    if first is not None:
        result.renditions = len(first)
        scratch = stack.work / "decode"
        scratch.mkdir(exist_ok=True)
        problems = {name: p for name, parts in first.items() if (p := decode_problem(parts, scratch))}
        result.decode = "; ".join(f"{n}: {p}" for n, p in problems.items())
    if result.ready is not None:
        result.ranges = stack.range_costs(video_id)
    return result


# -- transcode and quality ------------------------------------------------------------------------------------


def has_range_setting() -> bool:
    from core.settings import Settings

    return "range_seconds" in Settings.model_fields


def run_transcode(src: Path, out: Path, log: Path, extra_env: dict[str, str] | None = None) -> tuple[float, float]:
    """`streamify transcode SRC OUT` as a user runs it; wall seconds and CPU seconds (it and its ffmpeg)."""
    env = {**os.environ, **(extra_env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with log.open("wb") as f:
        subprocess.run([str(ROOT / ".venv" / "bin" / "streamify"), "transcode", str(src), str(out)],
                       env=env, stdout=f, stderr=subprocess.STDOUT, check=True)  # fmt: skip
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def download_ladder(client: httpx.Client, master_url: str, out: Path) -> list[str]:
    """Every rung of a published video, through nginx, into out/<rung>/ with a local index.m3u8 (so ffmpeg's
    HLS demuxer and workers.measure read it like a local encode). Returns the rung names."""
    master = client.get(master_url)
    master.raise_for_status()
    names = []
    for uri in uris(master.text):
        url = urljoin(str(master.url), uri)
        name = rendition_name(uri)
        folder = out / name
        folder.mkdir(parents=True)
        text = client.get(url).raise_for_status().text
        lines = []
        for line in text.splitlines():
            if line.startswith("#EXT-X-MAP:") and (init := init_uri(line)):
                (folder / "init.mp4").write_bytes(client.get(urljoin(url, init)).raise_for_status().content)
                line = '#EXT-X-MAP:URI="init.mp4"'
            elif line.strip() and not line.startswith("#"):
                local = Path(urlparse(line.strip()).path).name
                (folder / local).write_bytes(client.get(urljoin(url, line.strip())).raise_for_status().content)
                line = local
            lines.append(line)
        (folder / "index.m3u8").write_text("\n".join(lines) + "\n")
        names.append(name)
    return names


def quality_rows(chunked: dict[str, RungQuality], single: dict[str, RungQuality], frames: int, note: str) -> list[Row]:
    rows = []
    for name in sorted(chunked, key=lambda n: -chunked[n].kbps):
        c, s = chunked[name], single.get(name)
        if s is None:
            rows.append(Row(f"quality {name}", "rung missing from the one-process ladder", "same rungs", False))
            continue
        dv = c.vmaf - s.vmaf
        db = (c.kbps - s.kbps) / s.kbps * 100
        rows.append(Row(f"VMAF {name} chunked vs one-process{note}", f"{c.vmaf:.2f} vs {s.vmaf:.2f} ({dv:+.2f})",
                        "within 0.5", abs(dv) <= 0.5))  # fmt: skip
        rows.append(Row(f"bit rate {name} chunked vs one-process{note}",
                        f"{c.kbps:.0f} vs {s.kbps:.0f} kb/s ({db:+.1f} %)", "within 3 %", abs(db) <= 3))  # fmt: skip
        rows.append(Row(f"frames {name} chunked / one-process / source", f"{c.frames} / {s.frames} / {frames}",
                        "all equal", c.frames == s.frames == frames))  # fmt: skip
    return rows


MODEL_MACHINES = (1, 2, 4, 8, 16)
MODEL_CORES = 2  # cores per machine: one worker of concurrency 2 each, as the latency rows run it
MODEL_SOURCES = (600, 3600)


def cost_model(scale: dict[int, Follow], short: Follow | None, args: argparse.Namespace) -> tuple[CostModel, str]:
    """From the one-core scale-out run when there is one; else from the short source on every core."""
    if (one := scale.get(1)) is not None and one.ready is not None:
        return CostModel.fit(one.ranges, one.source_seconds, one.ready), (
            f"one pinned worker, {one.source_seconds} s source"
            + (f", {len(one.ranges)} range records" if one.ranges else ", no range records")
        )
    if short is None:
        raise ValueError("neither a one-core run nor the short source was measured")
    if short.cpu is not None:
        return CostModel(0.0, short.cpu / short.source_seconds, 0.0), (
            f"{short.source_seconds} s source, no one-core run: the worker's CPU seconds / duration"
        )
    cores = min(args.concurrency, os.cpu_count() or 1)
    ready = short.ready or float("nan")
    return CostModel(0.0, cores * ready / short.source_seconds, 0.0), (
        f"{short.source_seconds} s source on {cores} cores (no one-core run): {cores} x ready / duration"
    )


def model_table(model: CostModel, basis: str) -> Table:
    table = Table(title=f"Model: seconds to ready on N machines x {MODEL_CORES} cores", caption=(
        f"range cost {model.fixed:.1f} + {model.per_second:.2f} x length core-s, per job {model.job:.1f} s; "
        f"from {basis}"))  # fmt: skip
    table.add_column("source")
    for n in MODEL_MACHINES:
        table.add_column(f"N={n}", justify="right")
    for duration in MODEL_SOURCES:
        table.add_row(
            f"{duration // 60} min", *(f"{model.ready(duration, n * MODEL_CORES):.0f}" for n in MODEL_MACHINES)
        )
    return table


# -- main -----------------------------------------------------------------------------------------------------


def timed_phase(label: str) -> Callable[[], None]:
    """Announce a phase after waiting (bounded) for a quiet machine; returns a callable printing its wall time."""
    quiet = wait_for_idle(20, window=2.0, threshold=0.3)
    t0 = time.monotonic()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(f"[bold]{label}[/] (load average {load}" + (")" if quiet else "; still busy after 20 s)"))
    return lambda: console.print(f"  {label}: {time.monotonic() - t0:.0f} s of wall time")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1-minute source only, no scale-out (development)")
    parser.add_argument("--short-seconds", type=int, default=60, help="the short source's length")
    parser.add_argument("--long-seconds", type=int, default=600, help="the long source's length")
    parser.add_argument("--concurrency", type=int, default=2, help="the one worker's concurrency (latency rows)")
    parser.add_argument("--scale-workers", type=int, default=2, help="workers pinned to cores 0..N-1 (scale-out)")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale-out rows")
    parser.add_argument("--scale-only", action="store_true",
                        help="only the scale-out rows (the long source on 1, then N pinned workers)")  # fmt: skip
    parser.add_argument(
        "--store",
        choices=("disk", "azure"),
        default="disk",
        help="media and sources on the machine's disk (nginx serves them, as `make up` keeps them) or in an "
        "Azurite of the bench's own (every part's machine downloads the source first)",
    )
    parser.add_argument("--vmaf-seconds", type=float, default=14.0,
                        help="VMAF over the first N s of each rung (0: the whole source)")  # fmt: skip
    parser.add_argument("--poll", type=float, default=0.15, help="seconds between two polls")
    parser.add_argument("--cache", type=Path,
                        default=DEFAULT_CACHE,
                        help="where the generated sources are kept")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and the database")
    args = parser.parse_args(argv)
    if args.poll <= 0 or args.concurrency < 1 or args.scale_workers < 1:
        parser.error("--poll, --concurrency and --scale-workers must be positive")
    if args.scale_only and (args.quick or args.no_scale):
        parser.error("--scale-only runs the scale-out rows alone: not with --quick or --no-scale")
    if args.scale_workers > (os.cpu_count() or 1):
        parser.error(f"--scale-workers {args.scale_workers}: this machine has {os.cpu_count()} cores")
    return args


@dataclass
class Latency:
    """Phases 1-3: the short (and long) source on one worker, the transcode, the quality of the ladder."""

    short: Follow
    long_first: Follow | None
    transcode: float
    transcode_cpu: float
    chunked: dict[str, RungQuality]
    single: dict[str, RungQuality]
    note: str
    vmaf_seconds: float


def run_latency(stack: Stack, args: argparse.Namespace, short: Path, long: Path | None, ffmpeg: str) -> Latency:
    work = stack.work
    budget = 3 * args.long_seconds + 300
    # 1. One worker (concurrency C, every core): first playable and ready of the short source, first playable of
    #    the long one (cancelled once playable: its ready time belongs to the scale-out rows).
    stack.start_workers([(None, args.concurrency)])
    done = timed_phase(f"short source ({args.short_seconds} s), 1 worker x{args.concurrency}")
    s = follow(stack, short, args.short_seconds, until_ready=True, poll=args.poll, timeout=budget)
    done()
    lf = None
    if long is not None:
        stack.quiesce()  # the short video's work after `ready` (its VMAF part) must not run into the long one's start
        done = timed_phase(f"long source ({args.long_seconds} s), 1 worker x{args.concurrency}: first playable")
        lf = follow(stack, long, args.long_seconds, until_ready=False, poll=args.poll, timeout=budget)
        stack.cancel(lf.video_id)
        done()
    stack.quiesce()
    stack.stop_workers()

    # 2. `streamify transcode` of the same short file, no worker running; and the one-range reference.
    done = timed_phase("streamify transcode (short source)")
    trans, trans_cpu = run_transcode(short, work / "transcode", work / "transcode.log")
    console.print(f"  transcode: {trans:.1f} s, {trans_cpu:.0f} CPU s")
    done()
    single_dir, note = work / "transcode", " [no range_seconds setting yet: one-process = today's pipeline]"
    if has_range_setting():
        single_dir, note = work / "one-range", ""
        run_transcode(short, single_dir, work / "one-range.log", {"STREAMIFY_RANGE_SECONDS": "0"})

    # 3. Quality: the published ladder of the short source vs the one-process ladder.
    done = timed_phase(f"quality (VMAF over {args.vmaf_seconds or args.short_seconds:g} s of each rung)")
    vmaf_seconds = args.vmaf_seconds or float(args.short_seconds)
    logs = work / "vmaf"
    logs.mkdir()
    with stack.client() as client:
        names = download_ladder(client, f"/api/v1/videos/{s.video_id}/master.m3u8", work / "chunked")
    chunked = {n: rung_quality(work / "chunked" / n, short, vmaf_seconds, ffmpeg, logs / f"c-{n}.json")
               for n in names}  # fmt: skip
    single = {n: rung_quality(single_dir / n, short, vmaf_seconds, ffmpeg, logs / f"s-{n}.json")
              for n in names if (single_dir / n / "index.m3u8").exists()}  # fmt: skip
    done()
    return Latency(s, lf, trans, trans_cpu, chunked, single, note, vmaf_seconds)


def run_scale(stack: Stack, args: argparse.Namespace, long: Path) -> dict[int, Follow]:
    """4. Scale-out: the long source to ready on one pinned worker, then on N pinned workers."""
    scale: dict[int, Follow] = {}
    for n in dict.fromkeys((1, args.scale_workers)):
        stack.start_workers([(str(i), 1) for i in range(n)])
        done = timed_phase(f"scale-out: long source on {n} worker(s) pinned to one core each")
        scale[n] = follow(stack, long, args.long_seconds, until_ready=True, poll=args.poll,
                          timeout=(3 * args.long_seconds + 300) * 2)  # fmt: skip
        done()
        stack.quiesce()
        stack.stop_workers()
    return scale


def latency_rows(args: argparse.Namespace, lat: Latency, frames: int) -> list[Row]:
    s, lf, trans, trans_cpu = lat.short, lat.long_first, lat.transcode, lat.transcode_cpu
    decode_ok = s.decode == "" and (lf is None or lf.decode == "")
    rows = [
        at_most(f"first playable, {args.short_seconds} s source (1 worker x{args.concurrency})", s.playable, 10),
        at_most(f"first playable, {args.long_seconds} s source (1 worker x{args.concurrency})",
                lf.playable if lf else None, 10),
        at_most(f"first playable {args.long_seconds} s / {args.short_seconds} s",
                ratio(lf.playable if lf else None, s.playable), 1.5, "x", ".2f"),
        Row("first segments of every rendition decode",
            f"{s.renditions} renditions" + (f", {lf.renditions}" if lf else "")
            if decode_ok else f"{s.decode} {lf.decode if lf else ''}".strip(), "all decode", decode_ok),
        Row(f"ready, {args.short_seconds} s source: 1 worker / streamify transcode",
            f"{s.ready or float('nan'):.1f} s / {trans:.1f} s", "", None),
        at_most("  ratio", ratio(s.ready, trans), 1.10, "x", ".2f"),
        Row("  CPU seconds: workers / streamify transcode (not a goal: what a busy machine does not inflate)",
            f"{s.cpu or float('nan'):.0f} / {trans_cpu:.0f} = {ratio(s.cpu, trans_cpu) or float('nan'):.2f}x", "",
            None),
    ]  # fmt: skip
    return rows + quality_rows(lat.chunked, lat.single, frames, lat.note)


def scale_rows(args: argparse.Namespace, scale: dict[int, Follow]) -> list[Row]:
    if not scale:
        return [at_least(f"ready, {args.long_seconds} s source: speed-up 1 -> {args.scale_workers} "
                         "workers (1 core each)", None, 1.8)]  # fmt: skip
    one, many = scale[1], scale[args.scale_workers]
    rows = [
        Row(f"ready, {args.long_seconds} s source: 1 vs {args.scale_workers} workers (1 core each)",
            f"{one.ready or float('nan'):.1f} s / {many.ready or float('nan'):.1f} s", "", None),
        at_least("  speed-up", ratio(one.ready, many.ready), 1.8),
    ]  # fmt: skip
    for n, f in scale.items():
        costs = [r["seconds"] for r in f.ranges]
        rows.append(Row(f"  per-range cost, {n} worker(s)",
                        f"{len(costs)} ranges, {sum(costs):.0f} s total, max {max(costs):.0f} s"
                        if costs else "not recorded by the job", "", None))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    from core.ffmpeg import ffmpeg_exe
    from core.settings import Settings

    ffmpeg = ffmpeg_exe(Settings())
    short = cached_source(args.cache, args.short_seconds, ffmpeg)
    long = None if args.quick else cached_source(args.cache, args.long_seconds, ffmpeg)
    work = Path(tempfile.mkdtemp(prefix="streamify-publish-"))
    stack = Stack(work, args.store)
    figures: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    rows: list[Row] = []
    ok = False
    try:
        stack.start()
        console.print(f"work dir {work}; stack {stack.url}: nginx -> 1 API node; database {stack.db.name}")
        lat = None if args.scale_only else run_latency(stack, args, short, long, ffmpeg)
        scale = run_scale(stack, args, long) if long is not None and not args.no_scale else {}

        if lat is not None:
            rows += latency_rows(args, lat, count_frames([short]))
        rows += scale_rows(args, scale)
        wall = time.monotonic() - started
        console.print(render(rows, f"Publish: {args.short_seconds} s and {args.long_seconds} s 1080p30 sources, "
                                   f"poll {args.poll:g} s, run {wall / 60:.1f} min"))  # fmt: skip
        model, basis = cost_model(scale, lat.short if lat else None, args)
        console.print(model_table(model, basis))
        figures.update({
            "model": asdict(model) | {"basis": basis},
            "scale": {n: asdict(f) for n, f in scale.items()},
            "rows": [asdict(r) | {"verdict": r.verdict} for r in rows], "wall_seconds": wall,
        })  # fmt: skip
        if lat is not None:
            figures.update({
                "short": asdict(lat.short), "transcode_seconds": lat.transcode, "transcode_cpu": lat.transcode_cpu,
                "long_first_playable": asdict(lat.long_first) if lat.long_first else None,
                "quality": {"chunked": {n: asdict(q) for n, q in lat.chunked.items()},
                            "one_process": {n: asdict(q) for n, q in lat.single.items()},
                            "vmaf_seconds": lat.vmaf_seconds},
            })  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1, default=str))
        ok = all(r.passed is not False for r in rows)
    finally:
        stack.stop(keep_db=args.keep)
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            console.print(f"work dir kept: {work}" + (f"; database {stack.db.name}" if args.keep else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Load and fault suite: creators uploading and viewers playing through nginx while the stack is broken on purpose.

The real shape on one machine, loopback only: PostgreSQL (a database of its own), a redis-server and an Azurite
of its own (the suite restarts and freezes them), and `streamify up --nodes 2`'s LocalStack (nginx rendered by
infra.nginx in front of two API nodes, a worker) plus a second worker. For a fixed time:

- N creators upload small generated clips through nginx (multipart and tus, a third of them private), keep a
  few in flight each, and follow them to `ready`;
- M viewers play the ready videos through nginx as hls.js would (master, one media playlist, init segment,
  segments; private videos with their playback link), counting requests, non-2xx answers, dropped connections
  (transport errors and timeouts) and latency;
- faults are injected on a schedule: a worker SIGKILLed (its whole process tree, as a dead container) and
  restarted, a worker frozen with SIGSTOP (tree: a VM pause) for longer than the stale-job timeout, Redis
  killed and restarted without persistence, Azurite frozen (a hung storage endpoint) or shut down (an
  unreachable one), every PostgreSQL connection of the database terminated. A second Azurite stands for the
  second region nginx falls back to: by default a mirror account every media write also goes to
  (STREAMIFY_AZURE_MIRROR_CONNECTION_STRING); `--fallback ragrs` makes it the account's read-only secondary
  (RA-GRS, STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT), brought up to date every few seconds as Azure's
  geo-replication would; `--fallback none` runs without.

Then it waits (bounded) for the queue to empty and checks every upload from the database and through nginx:
jobs lost (accepted upload with no video or job, or a failed/cancelled one), stuck (still queued or running),
duplicated (two job rows for a video, a job published by more than one attempt according to the workers'
logs, or a master rewritten after its job finished), ready videos that do not play. It prints one table
(whole run, the time outside faults, and each fault's window with the jobs it hit) and the goals with
PASS/FAIL; the exit status is 1 when a goal failed.

    .venv/bin/python -m bench.load [--creators 3] [--viewers 8] [--duration S]
                                   [--faults kill,stop,redis,storage,storage-down,db | none]
                                   [--fallback mirror|ragrs|none] [--replication-seconds 5] [--keep]
"""

import argparse
import contextlib
import json
import os
import queue
import random
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from base64 import b64encode
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from bench.services import Azurite, Database, Redis
from cli.stack import Child, LocalStack, free_port
from core.jobqueue import STALE_AFTER
from core.parts import AFTER_READY
from workers.launch import worker_argv
from workers.supervision import REAP_INTERVAL

console = Console(width=150)  # piped output keeps whole lines
FAULTS = ("kill", "stop", "redis", "storage", "storage-down", "db")
FALLBACKS = ("mirror", "ragrs", "none")  # nginx's second origin (see the module docstring)
FAULT_TITLES = {
    "kill": "SIGKILL + restart",
    "stop": "SIGSTOP + SIGCONT",
    "redis": "Redis restart",
    "storage": "Azurite frozen",
    "storage-down": "Azurite down",
    "db": "DB connections killed",
}
GAP = 10.0  # seconds between two faults' windows (and before the first): the stack settles in between
AFTERMATH = 10.0  # a fault's window for viewer figures runs this long past its end
TUS_RETRY_DELAYS = (1.0, 3.0, 5.0)  # tus-js-client's default retryDelays after the first immediate try
ACTIVE = ("queued", "running")
# hls.js's default load policies: a playlist must answer within 10 s, a fragment within 20 s (no retry is
# counted here: a request that needs one is already an error the viewer waited for).
PLAYLIST_TIMEOUT = httpx.Timeout(10.0)
SEGMENT_TIMEOUT = httpx.Timeout(20.0)


@dataclass
class Sample:
    at: float  # seconds since the load started
    who: str  # "viewer" or "creator"
    kind: str  # master / playlist / init / segment, or upload / tus / status / token
    ms: float
    status: int | None  # None: no answer (the connection dropped or timed out)
    error: str = ""
    fallback: bool = False  # nginx fetched it from the fallback origin (X-Streamify-Origin: secondary)


@dataclass
class Upload:
    creator: int
    method: str  # multipart / tus
    visibility: str
    at: float
    video_id: str | None = None
    outcome: str = ""  # accepted, refused <status>, dropped <exception>
    status: str = ""  # last status the creator saw through the API
    master_url: str | None = None  # what a viewer opens (a private video's carries its playback token)


@dataclass
class Fault:
    name: str
    start: float  # planned, seconds after the load starts
    length: float
    started: float | None = None
    ended: float | None = None
    target: str = ""
    jobs: set[str] = field(default_factory=set)  # jobs in flight (running / queued) when it was injected


def plan_faults(names: list[str], args: argparse.Namespace) -> list[Fault]:
    """One after another with GAP between them; Redis restarts in the middle of the SIGSTOP, when one worker is
    frozen and the queue is longest (the case issue 12 #2 describes)."""
    stop_seconds = args.stop_seconds
    lengths = {"kill": args.restart_after, "stop": stop_seconds, "redis": 1.0, "storage": args.storage_seconds,
               "storage-down": args.storage_down_seconds, "db": 1.0}  # fmt: skip
    plan: list[Fault] = []
    t = GAP
    stop_at: float | None = None
    for name in names:
        if name == "redis" and "stop" in names:
            continue
        plan.append(Fault(name, t, lengths[name]))
        if name == "stop":
            stop_at = t
        t += lengths[name] + GAP
    if "redis" in names and stop_at is not None:
        plan.append(Fault("redis", stop_at + stop_seconds / 2, lengths["redis"]))
    return sorted(plan, key=lambda f: f.start)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Run:
    """Everything the creator, viewer and fault threads share."""

    def __init__(self, args, stack: LocalStack, workers: list[Child], redis: Redis, azurite: Azurite, db: Database):
        self.args, self.stack, self.workers, self.redis, self.azurite, self.db = (
            args,
            stack,
            workers,
            redis,
            azurite,
            db,
        )
        self.url = stack.url
        self.env = stack.child_env()
        self.t0 = time.monotonic()
        self.wall0 = time.time()  # the same instant on the database's clock (queued_at, finished_at)
        self.over = threading.Event()  # the load's time is up: creators and viewers stop
        self.samples: list[Sample] = []  # list.append is atomic: threads share it without a lock
        self.uploads: list[Upload] = []
        self.playable: list[Upload] = []
        self.frozen: set[int] = set()  # pids under SIGSTOP, thawed whatever happens
        self.tokens: list[str] = []  # each creator's API token
        self.restarts: queue.Queue[tuple[Child, threading.Event]] = queue.Queue()
        self.lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def request(self, client: httpx.Client, who: str, kind: str, method: str, url: str, **kw) -> httpx.Response | None:
        start = time.monotonic()
        try:
            r = client.request(method, url, **kw)
        except httpx.TransportError as exc:  # refused, reset, closed mid-body, timed out: a dropped request
            self.samples.append(Sample(start - self.t0, who, kind, (time.monotonic() - start) * 1000, None,
                                       type(exc).__name__))  # fmt: skip
            return None
        fallback = r.headers.get("x-streamify-origin") == "secondary"
        self.samples.append(Sample(start - self.t0, who, kind, (time.monotonic() - start) * 1000, r.status_code,
                                   fallback=fallback))  # fmt: skip
        return r

    # -- processes --------------------------------------------------------------------------------------------

    def restart(self, child: Child) -> None:
        """Have the main thread start `child` again. Children are made to die with the thread that forked them
        (PR_SET_PDEATHSIG, core/processes.py): one started from a fault's short-lived thread would be killed
        the moment that thread ends."""
        done = threading.Event()
        self.restarts.put((child, done))
        done.wait(60)

    def serve_restarts(self) -> None:
        """Main thread only."""
        while True:
            try:
                child, done = self.restarts.get_nowait()
            except queue.Empty:
                return
            child.start(self.env)
            done.set()

    def tree(self, child: Child) -> list[psutil.Process]:
        assert child.proc is not None
        try:
            root = psutil.Process(child.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def signal_tree(self, child: Child, sig: int) -> None:
        for proc in self.tree(child):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)
                if sig == signal.SIGSTOP:
                    self.frozen.add(proc.pid)
                elif sig == signal.SIGCONT:
                    self.frozen.discard(proc.pid)

    def thaw_all(self) -> None:
        for pid in list(self.frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen.clear()

    def jobs(self, states: tuple[str, ...]) -> list[tuple[str, str]]:
        """(job id, worker) of the jobs in these states, straight from the database."""
        rows = self.db.query("SELECT id::text, coalesce(worker, '') FROM transcode_jobs WHERE state = ANY(%s)",
                             (list(states),))  # fmt: skip
        return [(r[0], r[1]) for r in rows]

    def busy_worker(self, wait: float = 20) -> tuple[Child, set[str]]:
        """A worker holding a running job (waiting for one a while), and those jobs; else the first worker."""
        deadline = time.monotonic() + wait
        while True:
            running = self.jobs(("running",))
            for child in self.workers:
                if not child.running():
                    continue
                pids = {str(p.pid) for p in self.tree(child)}
                held = {job for job, worker in running if worker.rpartition(":")[2] in pids}
                if held:
                    return child, held
            if time.monotonic() > deadline or self.over.is_set():
                return next(c for c in self.workers if c.running()), set()
            time.sleep(0.5)

    def tasks_running(self) -> int:
        """Doorbell tasks a live worker received and has not finished: a stale attempt may still be at work
        (retrying a blob call, cleaning up) with no job row and no ffmpeg to show for it."""
        received: dict[str, int] = {}
        finished: set[str] = set()
        for path in self.stack.log_dir.glob("worker*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if '"celery.' not in line:
                    continue
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    task = (record.get("data") or {}).get("id")
                    if task and record.get("logger") == "celery.worker.strategy":
                        received[task] = int(record.get("process", 0))
                    elif task and record.get("logger") == "celery.app.trace":
                        finished.add(task)
        return sum(1 for task, pid in received.items() if task not in finished and psutil.pid_exists(pid))

    def ffmpeg_running(self) -> bool:
        return any(len(self.tree(child)) > 1 and any("ffmpeg" in p.name() for p in self.tree(child))
                   for child in self.workers if child.running())  # fmt: skip


# -- creators -------------------------------------------------------------------------------------------------


def _tus_metadata(**fields: str) -> str:
    return ",".join(f"{k} {b64encode(v.encode()).decode()}" for k, v in fields.items())


def upload_multipart(run: Run, client: httpx.Client, up: Upload, clip: Path) -> None:
    """A browser form: one POST, no retry (the page cannot resend a file by itself)."""
    r = run.request(client, "creator", "upload", "POST", "/api/v1/videos",
                    files={"file": (clip.name, clip.read_bytes())},
                    data={"title": f"load {up.creator}", "visibility": up.visibility})  # fmt: skip
    if r is None:
        up.outcome = f"dropped {run.samples[-1].error}"
    elif r.status_code == 202:
        up.video_id, up.outcome = r.json()["id"], "accepted"
    else:
        up.outcome = f"refused {r.status_code}"


def upload_tus(run: Run, client: httpx.Client, up: Upload, clip: Path) -> None:
    """A tus client (what the upload page's tus-js-client does): create, PATCH, and on failure ask the server
    where it stands (offset, or the upload's outcome) and resume, with tus-js-client's retry delays."""
    data = clip.read_bytes()
    tus = {"Tus-Resumable": "1.0.0"}
    meta = _tus_metadata(filename=clip.name, title=f"load {up.creator}", visibility=up.visibility)
    location = None
    for delay in (0.0, *TUS_RETRY_DELAYS):
        time.sleep(delay)
        r = run.request(client, "creator", "tus", "POST", "/api/v1/uploads/",
                        headers={**tus, "Upload-Length": str(len(data)), "Upload-Metadata": meta})  # fmt: skip
        if r is not None and r.status_code == 201:
            location = urljoin(run.url, r.headers["Location"])
            break
        if r is not None and r.status_code < 500:
            up.outcome = f"refused {r.status_code}"
            return
    if location is None:
        up.outcome = "dropped create" if r is None else f"refused {r.status_code}"
        return
    offset = 0
    for delay in (0.0, *TUS_RETRY_DELAYS):
        time.sleep(delay)
        if offset < len(data):
            headers = {**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
            r = run.request(client, "creator", "tus", "PATCH", location, content=data[offset:], headers=headers)
            if r is not None and r.status_code == 204 and r.headers.get("Streamify-Video-Id"):
                up.video_id, up.outcome = r.headers["Streamify-Video-Id"], "accepted"
                return
            if r is not None and 400 <= r.status_code < 500 and r.status_code != 409:
                up.outcome = f"refused {r.status_code}"
                return
        # What became of it: the answer may have been lost after the server ingested it.
        r = run.request(client, "creator", "tus", "GET", location)
        if r is not None and r.status_code == 200:
            state = r.json()
            if state.get("state") == "done" and state.get("video_id"):
                up.video_id, up.outcome = state["video_id"], "accepted"
                return
            if state.get("state") == "refused":
                up.outcome = f"refused {state.get('error_status')}"
                return
            head = run.request(client, "creator", "tus", "HEAD", location)
            if head is not None and head.status_code == 200:
                offset = int(head.headers["Upload-Offset"])
    up.outcome = "dropped after retries"


def follow(run: Run, client: httpx.Client, up: Upload) -> None:
    """One status poll; a video that just became ready joins the viewers' list (private: with a playback link)."""
    assert up.video_id is not None
    r = run.request(client, "creator", "status", "GET", f"/api/v1/videos/{up.video_id}")
    if r is None or r.status_code != 200:
        return
    up.status = r.json()["status"]
    if up.status != "ready" or up.master_url:
        return
    up.master_url = master_url(run, client, up)
    if up.master_url:
        with run.lock:
            run.playable.append(up)


def master_url(run: Run, client: httpx.Client, up: Upload) -> str | None:
    if up.visibility != "private":
        return f"{run.url}/api/v1/videos/{up.video_id}/master.m3u8"
    r = run.request(client, "creator", "token", "POST", f"/api/v1/videos/{up.video_id}/playback-token", json={})
    if r is None or r.status_code != 201:
        return None
    return urljoin(run.url, r.json()["playback_url"])


def creator(run: Run, index: int, token: str, clips: list[Path]) -> None:
    rng = random.Random(index)
    mine: list[Upload] = []
    with httpx.Client(base_url=run.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        n = 0
        while not run.over.is_set():
            pending = [u for u in mine if u.video_id and u.status not in ("ready", "failed", "cancelled")]
            for up in pending:
                follow(run, client, up)
            if len(pending) < run.args.inflight:
                method = ("multipart", "tus")[(n + index) % 2]
                up = Upload(index, method, "private" if n % 3 == 2 else "public", run.now())
                mine.append(up)
                run.uploads.append(up)
                (upload_multipart if method == "multipart" else upload_tus)(run, client, up, rng.choice(clips))
                n += 1
            run.over.wait(1.0)


# -- viewers --------------------------------------------------------------------------------------------------


def uris(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def init_uri(text: str) -> str | None:
    m = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
    return m.group(1) if m else None


def play(run: Run, client: httpx.Client, url: str, rng: random.Random, segments: int) -> None:
    """What hls.js does to start a video and watch a little: master, one rendition's playlist, init, segments."""
    master = run.request(client, "viewer", "master", "GET", url, timeout=PLAYLIST_TIMEOUT)
    if master is None or master.status_code != 200 or not (variants := uris(master.text)):
        return
    playlist_url = urljoin(str(master.url), rng.choice(variants))
    playlist = run.request(client, "viewer", "playlist", "GET", playlist_url, timeout=PLAYLIST_TIMEOUT)
    if playlist is None or playlist.status_code != 200:
        return
    if init := init_uri(playlist.text):
        run.request(client, "viewer", "init", "GET", urljoin(playlist_url, init), timeout=SEGMENT_TIMEOUT)
    for seg in uris(playlist.text)[:segments]:
        run.request(client, "viewer", "segment", "GET", urljoin(playlist_url, seg), timeout=SEGMENT_TIMEOUT)


def viewer(run: Run, index: int) -> None:
    rng = random.Random(1000 + index)
    with httpx.Client(timeout=30) as client:  # anonymous: private videos open through their playback link
        while not run.over.is_set():
            with run.lock:
                entries = list(run.playable)
            if entries:
                entry = rng.choice(entries)
                assert entry.master_url is not None
                play(run, client, entry.master_url, rng, run.args.segments)
            run.over.wait(run.args.think if entries else 0.5)


# -- faults ---------------------------------------------------------------------------------------------------


def inject(run: Run, fault: Fault) -> None:
    """Sleep until the fault's time, break the stack, mend it after fault.length (restart, SIGCONT)."""
    run.over.wait(max(0.0, fault.start - run.now()))
    if run.over.is_set():
        return
    in_flight = {job for job, _ in run.jobs(ACTIVE)}
    if fault.name in ("kill", "stop"):
        child, held = run.busy_worker()
        fault.target = f"{child.name}{'' if held else ' (idle)'}" + (
            f", {fault.length:.0f} s" if fault.name == "stop" else ""
        )
        fault.jobs = held
        fault.started = run.now()
        if fault.name == "kill":
            run.signal_tree(child, signal.SIGKILL)
            assert child.proc is not None
            child.proc.wait()
            time.sleep(fault.length)
            run.restart(child)  # a supervisor (compose's restart policy) brings the worker back
        else:
            run.signal_tree(child, signal.SIGSTOP)
            time.sleep(fault.length)
            run.signal_tree(child, signal.SIGCONT)
    elif fault.name == "redis":
        fault.jobs, fault.target = in_flight, "no persistence"
        fault.started = run.now()
        run.redis.restart()
    elif fault.name == "storage":
        fault.jobs, fault.target = in_flight, f"{fault.length:.0f} s"
        fault.started = run.now()
        run.azurite.freeze()
        try:
            time.sleep(fault.length)
        finally:
            run.azurite.thaw()
    elif fault.name == "storage-down":
        fault.jobs, fault.target = in_flight, f"{fault.length:.0f} s"
        fault.started = run.now()
        run.azurite.shut_down()  # refuses new connections at once; up to 30 s to finish the open ones
        time.sleep(max(0.0, fault.started + fault.length - run.now()))
        run.azurite.start()
    elif fault.name == "db":
        fault.jobs = in_flight
        fault.started = run.now()
        fault.target = f"{run.db.terminate_connections()} cut"
    fault.ended = run.now()
    console.print(f"  t={fault.started:5.1f}s  {FAULT_TITLES[fault.name]}: {fault.target}, "
                  f"{len(fault.jobs)} job(s) in flight, mended at t={fault.ended:.1f}s")  # fmt: skip


# -- the end: drain, then check every job ---------------------------------------------------------------------


def drain(run: Run, limit: float) -> float:
    """Wait until no job is queued or running, no worker runs ffmpeg and no live worker is inside a task (a woken
    stale worker may still be encoding or cleaning up a job someone else finished): bounded by `limit`.
    Returns the seconds waited."""
    start = time.monotonic()
    quiet_since: float | None = None
    while time.monotonic() - start < limit:
        busy = bool(run.jobs(ACTIVE)) or run.ffmpeg_running() or run.tasks_running() > 0
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 3:
            break
        time.sleep(1)
    return time.monotonic() - start


@dataclass
class JobLogs:
    """What the workers' JSON logs say about each job (every line logged during a job carries its id)."""

    started: Counter = field(default_factory=Counter)  # attempts at planning the job
    published: Counter = field(default_factory=Counter)  # outputs published (kept or dropped)
    lines: dict[str, list[tuple[int, datetime]]] = field(default_factory=lambda: defaultdict(list))  # (pid, time)
    fenced: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))  # processes that lost the lease
    # Processes whose work after the job finished is by design: the part that finished it, and the parts that run
    # after the video is ready (storyboard, quality).
    after_finish: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))


def read_worker_logs(log_dir: Path) -> JobLogs:
    """workers/job.py's and workers/parts.py's lines: "job … planning on …" and "job …: video (part …) started
    on …", then "video … ready" or, for an attempt that lost its lease or part, "… was taken (away) from attempt
    …"; the storyboard and quality parts run after the video is ready; any other line (a blob request included) is an
    attempt at work."""
    logs = JobLogs()
    for path in log_dir.glob("worker*.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            job, message = record.get("job_id"), str(record.get("message", ""))
            if not job:
                continue
            logs.lines[job].append((int(record.get("process", 0)), datetime.fromisoformat(record["timestamp"])))
            process = int(record.get("process", 0))
            if " planning on " in message:  # an attempt at the job (its parts are counted in the database)
                logs.started[job] += 1
            elif any(f": {kind.value} (part " in message for kind in AFTER_READY):
                logs.after_finish[job].add(process)
            elif message.startswith("video ") and message.endswith(" ready"):
                logs.published[job] += 1
                logs.after_finish[job].add(process)  # it finished the job: its last lines come after
            elif " was taken away from attempt " in message or " was taken from attempt " in message:
                logs.fenced[job].add(process)  # it stopped and removed only its own files
    return logs


def duplicate_reason(logs: JobLogs, job: str, winner: str, finished: datetime | None, rewritten: bool) -> str:
    """Why a succeeded job was not done exactly once ('' when it was)."""
    if logs.published[job] > 1:
        return f"published {logs.published[job]} times"
    if rewritten:
        return "master rewritten after the job finished"
    pid = int(winner.rpartition(":")[2] or 0)
    # A stale attempt (a worker frozen past its lease) may wake after the finish: it finds its lease gone, stops
    # and removes its own folder. Only work it did after the finish beyond that counts as done twice.
    expected = logs.fenced.get(job, set()) | logs.after_finish.get(job, set())
    late = [t for p, t in logs.lines.get(job, []) if p != pid and p not in expected and finished and t > finished]
    if late:
        return f"a stale attempt (another process) logged {len(late)} lines after the job finished"
    return ""


def check_playback(client: httpx.Client, url: str) -> str:
    """'' when the master, every rendition's playlist, init segment and first segment answer 200 through nginx."""
    master = client.get(url)
    if master.status_code != 200:
        return f"master {master.status_code}"
    for variant in uris(master.text):
        playlist_url = urljoin(str(master.url), variant)
        playlist = client.get(playlist_url)
        if playlist.status_code != 200:
            return f"{variant.split('?')[0]} {playlist.status_code}"
        for uri in [init_uri(playlist.text), *uris(playlist.text)[:1]]:
            if uri and (r := client.get(urljoin(playlist_url, uri))).status_code != 200:
                return f"{uri.split('?')[0]} {r.status_code}"
    return ""


def master_blob_times(run: Run, video_ids: list[str]) -> dict[str, datetime]:
    """Last-Modified of each ready video's master in the media container (a publish after the job finished
    is a duplicate publish, whatever the logs say)."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(run.azurite.connection_string)
    container = service.get_container_client(run.stack.settings.azure_media_container)
    # The published encode's folder (workers/job.py: one per attempt); the top of the prefix for older encodes.
    roots = dict(run.db.query("SELECT id::text, coalesce(media_root, id::text || '/') FROM videos"))
    times: dict[str, datetime] = {}
    for vid in video_ids:
        with contextlib.suppress(Exception):
            master = container.get_blob_client(f"{roots.get(vid, vid + '/')}master.m3u8")
            times[vid] = master.get_blob_properties().last_modified
    return times


def playback_problem(run: Run, anonymous: httpx.Client, up: Upload | None) -> str:
    """'' when a ready video plays through nginx; its owner mints the link of a private one, as at upload time."""
    if up is None:
        return "no upload recorded for it"
    auth = {"Authorization": f"Bearer {run.tokens[up.creator]}"}
    with httpx.Client(base_url=run.url, timeout=30, headers=auth) as owner:
        url = master_url(run, owner, up)
    return check_playback(anonymous, url) if url else "no playback link"


@dataclass
class Verdict:
    """What became of each job, by job id: one of ok / lost / stuck, plus duplicated and unplayable flags."""

    outcome: dict[str, str] = field(default_factory=dict)
    duplicated: dict[str, str] = field(default_factory=dict)  # job id -> why
    unplayable: dict[str, str] = field(default_factory=dict)  # job id -> what failed
    details: dict[str, str] = field(default_factory=dict)  # job id -> its states and upload time, for the report
    reasons: Counter = field(default_factory=Counter)
    missing_uploads: int = 0  # accepted by the API, yet no video row or no job
    reruns: int = 0
    encodes: int = 0
    jobs_total: int = 0


def verdict(run: Run, log_dir: Path) -> Verdict:
    v = Verdict()
    rows = run.db.query(
        "SELECT v.id::text, v.status, j.id::text, j.state, j.attempts, j.finished_at, coalesce(j.error, ''), "
        "coalesce(j.worker, ''), "
        "extract(epoch FROM v.created_at)::float8 FROM videos v LEFT JOIN transcode_jobs j ON j.video_id = v.id"
    )
    by_video: dict[str, list[tuple]] = defaultdict(list)
    status: dict[str, str] = {}
    for vid, vstatus, job, state, attempts, finished, error, worker, created in rows:
        status[vid] = vstatus
        if job:
            by_video[vid].append((job, state, attempts, finished, error, worker))
            v.details[job] = (
                f"video {vstatus}, job {state}, attempts {attempts}, uploaded at t={created - run.wall0:.0f}s"
            )
    accepted = [u for u in run.uploads if u.video_id]
    v.missing_uploads = sum(1 for u in accepted if u.video_id not in status or not by_video.get(u.video_id or ""))
    logs = read_worker_logs(log_dir)
    v.encodes = sum(logs.started.values())
    ready = [vid for vid, s in status.items() if s == "ready"]
    blob_times = master_blob_times(run, ready)
    uploads = {u.video_id: u for u in accepted}
    with httpx.Client(timeout=30) as anonymous:
        for vid, jobs in by_video.items():
            v.jobs_total += len(jobs)
            if len(jobs) > 1:
                v.duplicated.update((j[0], f"{len(jobs)} jobs for one video") for j in jobs)
            for job, state, attempts, finished, error, worker in jobs:
                v.reruns += (attempts or 0) > 1 or logs.started[job] > 1
                if state in ACTIVE or status[vid] in ("uploaded", "queued", "processing"):
                    v.outcome[job] = "stuck"
                elif state != "succeeded" or status[vid] != "ready":
                    v.outcome[job] = "lost"
                    v.reasons[f"{state}: {error[:90]}"] += 1
                else:
                    v.outcome[job] = "ok"
                    # Last-Modified has whole seconds: only a rewrite a second or more after the finish counts.
                    rewritten = bool(
                        finished and vid in blob_times and (blob_times[vid] - finished).total_seconds() >= 1
                    )
                    if why := duplicate_reason(logs, job, worker, finished, rewritten):
                        v.duplicated[job] = why
                    if problem := playback_problem(run, anonymous, uploads.get(vid)):
                        v.unplayable[job] = problem
    return v


# -- report ---------------------------------------------------------------------------------------------------


def viewer_row(samples: list[Sample]) -> tuple[int, int, int, float, float]:
    answered = [s.ms for s in samples if s.status is not None]
    errors = sum(1 for s in samples if s.status is not None and not 200 <= s.status < 300)
    drops = sum(1 for s in samples if s.status is None)
    return len(samples), errors, drops, percentile(answered, 0.5), percentile(answered, 0.99)


def report(run: Run, faults: list[Fault], v: Verdict, drained: float) -> tuple[bool, dict]:
    """Print the tables; returns (every goal met, the same figures as a dict for --json)."""
    viewers = [s for s in run.samples if s.who == "viewer"]
    phases: list[dict] = []
    windows = [(f, f.started, (f.ended or f.started) + AFTERMATH) for f in faults if f.started is not None]

    def in_any(s: Sample) -> bool:
        return any(a <= s.at <= b for _, a, b in windows)

    def job_cells(jobs: set[str] | None) -> list[str]:
        pick = v.outcome if jobs is None else {j: o for j, o in v.outcome.items() if j in jobs}
        if jobs is not None:
            missing = jobs - pick.keys()  # a job row that vanished
            pick = {**pick, **dict.fromkeys(missing, "lost")}
        outcomes = Counter(pick.values())
        dup = len(v.duplicated.keys() & pick.keys())
        bad = len(v.unplayable.keys() & pick.keys())
        return [str(len(pick)), str(outcomes["lost"]), str(outcomes["stuck"]), str(dup), str(bad)]

    table = Table(title=f"Load and faults: {run.args.creators} creators, {run.args.viewers} viewers, "
                        f"{run.args.duration:.0f} s through nginx -> 2 API nodes, 2 workers")  # fmt: skip
    for name in ("phase", "window s", "viewer req", "errors", "drops", "p50 ms", "p99 ms",
                 "jobs", "lost", "stuck", "dup", "no play"):  # fmt: skip
        table.add_column(name, justify="left" if name == "phase" else "right")

    def add(phase: str, window: str, samples: list[Sample], jobs: set[str] | None) -> None:
        n, err, drop, p50, p99 = viewer_row(samples)
        cells = job_cells(jobs)
        table.add_row(phase, window, str(n), str(err), str(drop), f"{p50:.1f}", f"{p99:.1f}", *cells)
        figures = dict(zip(("jobs", "lost", "stuck", "duplicated", "unplayable"), map(int, cells), strict=True))
        phases.append({"phase": phase, "window": window, "requests": n, "errors": err, "drops": drop,
                       "p50_ms": p50, "p99_ms": p99, **figures})  # fmt: skip

    add("whole run", f"0-{run.args.duration:.0f}", viewers, None)
    if windows:
        hit = set().union(*(f.jobs for f, _, _ in windows))
        add("outside faults", "", [s for s in viewers if not in_any(s)], set(v.outcome) - hit)
    for f, a, b in windows:
        title = f"{FAULT_TITLES[f.name]}: {f.target}"
        add(title, f"{a:.0f}-{b:.0f}", [s for s in viewers if a <= s.at <= b], f.jobs)
    console.print(table)

    creators = [s for s in run.samples if s.who == "creator"]
    outcomes = Counter(u.outcome.split(" ")[0] for u in run.uploads)
    by_method = Counter(u.method for u in run.uploads if u.video_id)
    statuses = Counter(f"{s.kind} {s.status or s.error}" for s in viewers + creators if s.status != 200
                       and not (s.status in (201, 202, 204) and s.who == "creator"))  # fmt: skip
    console.print(
        f"creators: {len(run.uploads)} uploads ({outcomes['accepted']} accepted: {by_method['multipart']} multipart, "
        f"{by_method['tus']} tus; {outcomes['refused']} refused, {outcomes['dropped']} dropped), "
        f"{len(creators)} requests, {sum(1 for s in creators if s.status is None)} dropped"
    )
    console.print(
        f"jobs: {v.jobs_total} ({Counter(v.outcome.values())['ok']} done), {v.encodes} encodes started, "
        f"{v.reruns} re-run after a fault; queue drained in {drained:.0f} s (limit {run.args.drain:.0f} s)"
    )
    kinds = sorted({s.kind for s in viewers})
    console.print("viewer latency by kind (p50 / p99 ms): " + ", ".join(
        f"{k} {percentile([s.ms for s in viewers if s.kind == k and s.status], 0.5):.0f} / "
        f"{percentile([s.ms for s in viewers if s.kind == k and s.status], 0.99):.0f}" for k in kinds))  # fmt: skip
    fallback = Counter(s.kind for s in viewers if s.fallback)
    console.print(
        f"served from the fallback origin ({run.args.fallback}): {sum(fallback.values())} viewer requests"
        + (" (" + ", ".join(f"{k} x{n}" for k, n in fallback.most_common()) + ")" if fallback else "")
    )
    if statuses:
        console.print("non-2xx / dropped by kind: " + ", ".join(f"{k} x{n}" for k, n in statuses.most_common(12)))
    for reason, n in v.reasons.most_common(6):
        console.print(f"  lost: {n} x {reason}")
    for job, problem in list(v.unplayable.items())[:8]:
        console.print(f"  ready but does not play: job {job[:8]} ({v.details.get(job, '')}): {problem}")
    for job, why in list(v.duplicated.items())[:8]:
        console.print(f"  duplicated: job {job[:8]} ({v.details.get(job, '')}): {why}")
    for job in [j for j, o in v.outcome.items() if o in ("stuck", "lost")][:10]:
        console.print(f"  {v.outcome[job]}: job {job[:8]} ({v.details.get(job, '')})")
    bad = [s for s in viewers if s.status is None or not 200 <= s.status < 300]
    for s in bad[:10]:
        console.print(f"  viewer t={s.at:5.1f}s {s.kind} {s.status or s.error} after {s.ms:.0f} ms")

    n_view, err, drop, _, _ = viewer_row(viewers)
    lost = Counter(v.outcome.values())["lost"] + v.missing_uploads
    goals = [
        ("viewer requests answered 2xx", f"{err} errors of {n_view}", err == 0 and n_view > 0),
        ("no viewer connection dropped", f"{drop} dropped", drop == 0),
        ("no job lost", f"{lost} lost ({v.missing_uploads} accepted uploads with no video/job)", lost == 0),
        ("no job stuck", f"{Counter(v.outcome.values())['stuck']} stuck", "stuck" not in v.outcome.values()),
        ("every job done exactly once", f"{len(v.duplicated)} duplicated", not v.duplicated),
        ("every ready video plays", f"{len(v.unplayable)} do not", not v.unplayable),
    ]
    goal_table = Table(title="Goals")
    for name in ("goal", "measured", "result"):
        goal_table.add_column(name)
    for name, measured, ok in goals:
        goal_table.add_row(name, measured, "[green]PASS[/]" if ok else "[red]FAIL[/]")
    console.print(goal_table)
    summary = {
        "phases": phases,
        "uploads": dict(outcomes),
        "jobs": v.jobs_total,
        "encodes": v.encodes,
        "reruns": v.reruns,
        "fallback": {"origin": run.args.fallback, "served": dict(fallback)},
        "goals": {name: {"measured": measured, "passed": ok} for name, measured, ok in goals},
    }
    return all(ok for _, _, ok in goals), summary


# -- main -----------------------------------------------------------------------------------------------------


def tick(run: Run) -> None:
    """A progress line while the load runs."""
    n, err, drop, p50, p99 = viewer_row([s for s in run.samples if s.who == "viewer"])
    states: Counter = Counter()
    with contextlib.suppress(Exception):  # only a progress line: never let it end the run
        states.update(dict(run.db.query("SELECT state, count(*) FROM transcode_jobs GROUP BY state")))
    console.print(
        f"  t={run.now():5.1f}s  viewers {n} req, {err} errors, {drop} dropped, p99 {p99:.0f} ms; "
        f"{len(run.uploads)} uploads; jobs " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
    )


def make_clips(folder: Path, count: int, seconds: float) -> list[Path]:
    """Small real encodes (testsrc2 + noise, tone): 360p and 270p, a few seconds, so two cores keep up."""
    from tests.media import make_clip

    folder.mkdir(parents=True, exist_ok=True)
    sizes = ["640x360", "480x270"]
    return [make_clip(folder / f"clip{i}.mp4", size=sizes[i % 2], rate=24, seconds=seconds + i % 2, channels=2)
            for i in range(count)]  # fmt: skip


def accounts(database_url: str, count: int) -> list[str]:
    """One API token per creator, minted straight in the database (as bench/delivery.py does)."""
    from sqlmodel import Session

    from core.accounts import create_user, mint_token
    from core.db import make_engine
    from schemas.tables import TokenKind

    engine = make_engine(database_url)
    tokens = []
    try:
        with Session(engine) as session:
            for i in range(count):
                user = create_user(session, f"load-{i}-{secrets.token_hex(3)}@example.test",
                                   secrets.token_urlsafe(18), f"Creator {i}")  # fmt: skip
                tokens.append(mint_token(session, user, TokenKind.api, name="load")[0])
    finally:
        engine.dispose()
    return tokens


def replicate(run: Run, secondary: Azurite) -> None:
    """Azure's geo-replication, every --replication-seconds while the primary answers (a stand-in: see
    Azurite.replicate_to); what it had not copied when the primary went down is missing on the secondary."""
    container = run.stack.settings.azure_media_container
    while not run.over.wait(run.args.replication_seconds):
        with contextlib.suppress(Exception):  # the primary is down (a fault): the secondary keeps what it has
            run.azurite.replicate_to(secondary, container)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creators", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=8)
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of load (default: the fault schedule plus a gap, at least 30)")  # fmt: skip
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated from {','.join(FAULTS)}, or none")
    parser.add_argument("--stop-seconds", type=float, default=STALE_AFTER.total_seconds() * 2,
                        help="SIGSTOP length: beyond the stale timeout plus a reaper round")  # fmt: skip
    parser.add_argument("--storage-seconds", type=float, default=20, help="how long Azurite stays frozen")
    parser.add_argument("--storage-down-seconds", type=float, default=90,
                        help="how long Azurite stays down: beyond the blob client's retries (15+18+24 s)")  # fmt: skip
    parser.add_argument("--fallback", choices=FALLBACKS, default="mirror",
                        help="nginx's second origin: a mirror account the workers write too, the account's "
                             "RA-GRS secondary (replicated by the suite), or none (uncached media fail while "
                             "Azurite is down)")  # fmt: skip
    parser.add_argument(
        "--replication-seconds",
        type=float,
        default=5,
        help="--fallback ragrs: how often the secondary is brought up to date (Azure's geo-replication lag)",
    )
    parser.add_argument("--restart-after", type=float, default=2, help="a killed worker restarts after this")
    parser.add_argument("--inflight", type=int, default=2, help="uploads each creator keeps unfinished")
    parser.add_argument("--think", type=float, default=0.3, help="seconds a viewer waits between two plays")
    parser.add_argument("--segments", type=int, default=3, help="segments a viewer fetches per play")
    parser.add_argument("--clip-seconds", type=float, default=4)
    parser.add_argument("--drain", type=float, default=120, help="longest wait for the queue to empty at the end")
    parser.add_argument("--json", help="also write the figures and goals to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database, and the logs even when goals pass")
    args = parser.parse_args(argv)
    names = [] if args.faults in ("", "none") else [n.strip() for n in args.faults.split(",")]
    if unknown := set(names) - set(FAULTS):
        parser.error(f"unknown fault(s) {', '.join(sorted(unknown))}: choose from {', '.join(FAULTS)}")
    if "stop" in names and args.stop_seconds <= STALE_AFTER.total_seconds() + REAP_INTERVAL:
        parser.error(f"--stop-seconds must exceed the stale timeout plus a reaper round "
                     f"({STALE_AFTER.total_seconds() + REAP_INTERVAL:.0f} s) for the job to move")  # fmt: skip
    args.plan = plan_faults(names, args)
    needed = max((f.start + f.length + AFTERMATH for f in args.plan), default=0.0)
    if args.duration is None:
        args.duration = max(30.0, needed + GAP)
    elif args.duration < needed:
        parser.error(f"--duration {args.duration:.0f} is shorter than the fault schedule: at least {needed:.0f} s")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (timeout, a CI runner) unwinds like Ctrl-C, so the finally below stops Azurite and Redis too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="streamify-load-"))
    data = work / "data"
    data.mkdir()
    redis = Redis(free_port(), work / "redis.log")
    azurite = Azurite(free_port(), work / "azurite")
    secondary = None if args.fallback == "none" else Azurite(free_port(), work / "azurite-secondary")
    db = Database()
    stack: LocalStack | None = None
    run: Run | None = None
    passed = False
    try:
        console.print(f"work dir {work}; database {db.name}; generating clips…")
        clips = make_clips(work / "clips", 3, args.clip_seconds)
        db.create()
        redis.start()
        azurite.start()
        if secondary is not None:
            secondary.start()
        os.environ.update({
            "STREAMIFY_DATA_DIR": str(data),
            "STREAMIFY_DATABASE_URL": db.url,
            "STREAMIFY_BROKER_URL": redis.url,
            "STREAMIFY_AZURE_CONNECTION_STRING": azurite.connection_string,
            "STREAMIFY_QUEUE": f"load-{secrets.token_hex(4)}",
            "STREAMIFY_PLAYBACK_SECRET": secrets.token_urlsafe(48),
            "STREAMIFY_LOG_FORMAT": "json",  # job ids on every worker line: publishes are counted per job
            "STREAMIFY_MAX_UPLOAD_BYTES": str(64 * 1024 * 1024),
        })  # fmt: skip
        os.environ.pop("STREAMIFY_SEGMENT_BASE_URL", None)
        for name in ("STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT", "STREAMIFY_AZURE_MIRROR_CONNECTION_STRING"):
            os.environ.pop(name, None)
        if secondary is not None:
            os.environ.update(secondary.fallback_env(args.fallback))
        from core.db import migrate
        from core.settings import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        migrate(settings)
        stack = LocalStack(settings, 2, "127.0.0.1", free_port(), console)
        stack.start()
        second = Child("worker 2", [*worker_argv(1, "solo", settings.queue), "--hostname", "worker2@%h"],
                       stack.log_dir / "worker-2.log")  # fmt: skip
        second.start(stack.child_env())
        stack.children.insert(0, second)  # stopped last, with the first worker
        workers = [c for c in stack.children if c.name.startswith("worker")]
        run = Run(args, stack, workers, redis, azurite, db)
        run.tokens = accounts(db.url, args.creators)
        where = " (no fallback origin)"
        if secondary is not None:
            every = f", replicated every {args.replication_seconds:g} s" if args.fallback == "ragrs" else ""
            where = f" ({args.fallback} fallback :{secondary.port}{every})"
        console.print(f"stack {stack.url}: nginx -> 2 API nodes, 2 workers; Redis :{redis.port}, Azurite "
                      f":{azurite.port}{where}; {args.creators} creators, {args.viewers} viewers, "
                      f"{args.duration:.0f} s; faults: "
                      f"{', '.join(f'{f.name}@{f.start:.0f}s' for f in args.plan) or 'none'}")  # fmt: skip
        threads = [threading.Thread(target=creator, args=(run, i, tok, clips), name=f"creator-{i}", daemon=True)
                   for i, tok in enumerate(run.tokens)]  # fmt: skip
        threads += [threading.Thread(target=viewer, args=(run, i), name=f"viewer-{i}", daemon=True)
                    for i in range(args.viewers)]  # fmt: skip
        injectors = [threading.Thread(target=inject, args=(run, f), name=f"fault-{f.name}", daemon=True)
                     for f in args.plan]  # fmt: skip
        if secondary is not None and args.fallback == "ragrs":
            threads.append(threading.Thread(target=replicate, args=(run, secondary), name="replication", daemon=True))
        run.t0, run.wall0 = time.monotonic(), time.time()
        for t in threads + injectors:
            t.start()
        next_tick = 15.0
        while run.now() < args.duration:
            run.serve_restarts()
            time.sleep(0.2)
            if run.now() >= next_tick:
                tick(run)
                next_tick += 15.0
        run.over.set()
        while any(t.is_alive() for t in injectors):  # a fault still mending (SIGCONT, restart) finishes first
            run.serve_restarts()
            time.sleep(0.2)
        for t in threads:
            t.join(timeout=90)
        run.thaw_all()
        console.print(f"load over at t={run.now():.0f}s; waiting for the queue to drain…")
        drained = drain(run, args.drain)
        v = verdict(run, stack.log_dir)
        passed, summary = report(run, args.plan, v, drained)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=1))
    finally:
        if run is not None:
            run.thaw_all()
        if stack is not None:
            stack.stop()
        azurite.stop()
        if secondary is not None:
            secondary.stop()
        redis.stop()
        if passed and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            console.print(f"logs kept in {work}")
        if args.keep:
            console.print(f'database kept: {db.name} (drop it with: DROP DATABASE "{db.name}")')
        else:
            with contextlib.suppress(Exception):
                db.drop()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

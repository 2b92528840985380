"""Metrics, JSON logs, `streamify jobs` and `streamify flower` on a real stack of this module's own
(PostgreSQL database, Redis queue, Azurite, a Celery worker process and an API process, both logging JSON),
so every count below is exactly the jobs this module ran."""

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil
import psycopg
import pytest
from azure.storage.blob import BlobServiceClient
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import DURATION_BUCKETS, SPEED_BUCKETS
from tests.conftest import (
    ROOT,
    Stack,
    drop_pg_database,
    free_port,
    make_user,
    new_pg_database,
    start_api,
    start_worker,
    stop,
    upload,
    wait_for,
    wait_status,
)
from tests.media import make_clip

SCRAPE_TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def json_stack(tmp_path_factory, redis_url, azurite) -> Iterator[Stack]:
    """Own database, queue and worker (so no other test's job is counted), logging JSON lines."""
    from core.db import migrate
    from core.settings import Settings

    name, url = new_pg_database()
    database_url = url.replace("postgresql://", "postgresql+psycopg://")
    data = tmp_path_factory.mktemp("json-stack")
    tag = secrets.token_hex(3)
    logs = ROOT / "test-artifacts" / "logs" / f"json-stack-{tag}"
    logs.mkdir(parents=True)
    env = {
        **os.environ,
        "STREAMIFY_DATA_DIR": str(data),
        "STREAMIFY_DATABASE_URL": database_url,
        "STREAMIFY_BROKER_URL": redis_url,
        "STREAMIFY_QUEUE": f"transcode-json-{secrets.token_hex(4)}",
        "STREAMIFY_AZURE_CONNECTION_STRING": azurite.connection_string,
        # Containers of its own, as an install has: another database's blobs would look orphaned to its cleanup.
        "STREAMIFY_AZURE_MEDIA_CONTAINER": f"json-media-{tag}",
        "STREAMIFY_AZURE_SOURCE_CONTAINER": f"json-sources-{tag}",
        "STREAMIFY_PLAYBACK_SECRET": secrets.token_urlsafe(48),
        "STREAMIFY_LOG_FORMAT": "json",
        "STREAMIFY_METRICS_TOKEN": SCRAPE_TOKEN,
    }
    migrate(Settings(database_url=database_url, data_dir=data))
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["worker"] = start_worker(env, logs, name="json-worker")
        procs["api"], api_url = start_api(env, logs)
        _, token = make_user(database_url)
        yield Stack(url=api_url, env=env, database_url=database_url, procs=procs, logs=logs, token=token)
    finally:
        for proc in procs.values():
            stop(proc)
        drop_pg_database(name)


@pytest.fixture(scope="module")
def ran(json_stack, clips, tmp_path_factory) -> dict:
    """Three uploads run to the end: two good ones (one private) and a truncated one that fails."""
    d = tmp_path_factory.mktemp("json-media")
    whole = make_clip(d / "whole.mp4", size="640x360", seconds=8, channels=2, extra=("-movflags", "+faststart"))
    cut = d / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.4)])
    files = {"good": clips["720p_short"], "private": make_clip(d / "p.mp4", size="320x240", seconds=3), "cut": cut}
    secret_title = f"my private diary {secrets.token_hex(3)}"
    ids = {}
    with json_stack.client() as client:
        for key, path in files.items():
            with path.open("rb") as f:
                data = {"title": secret_title, "visibility": "private"} if key == "private" else {"title": key}
                r = client.post("/api/v1/videos", files={"file": (path.name, f)}, data=data)
            assert r.status_code == 202, r.text
            ids[key] = r.json()["id"]
        videos = {key: wait_status(client, video_id) for key, video_id in ids.items()}
    assert [videos[k]["status"] for k in ("good", "private", "cut")] == ["ready", "ready", "failed"]
    return {"ids": ids, "videos": videos, "sizes": {k: p.stat().st_size for k, p in files.items()},
            "secret_title": secret_title}  # fmt: skip


def _jobs(stack) -> dict[str, dict]:
    """Job rows by video id."""
    with psycopg.connect(stack.database_url.replace("+psycopg", "")) as conn:
        conn.row_factory = psycopg.rows.dict_row
        return {str(r["video_id"]): r for r in conn.execute("SELECT * FROM transcode_jobs")}


def _samples(body: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of the exposition, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_match_the_jobs_this_stack_ran(json_stack, ran, azurite):
    _, operator = make_user(json_stack.database_url, operator=True)
    with json_stack.client(anonymous=True) as anonymous, json_stack.client() as creator:
        assert anonymous.get("/metrics").status_code == 401
        assert creator.get("/metrics").status_code == 403  # signed in is not enough
        wrong = anonymous.get("/metrics", headers={"Authorization": "Bearer not-the-scrape-token"})
        assert wrong.status_code == 401
    with json_stack.client(operator) as op:
        assert op.get("/metrics").status_code == 200
    scrape = httpx.get(f"{json_stack.url}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    body = scrape.text
    samples = _samples(body)

    # Nothing private leaves: no title, id or email, only fixed label sets.
    assert ran["secret_title"] not in body and "good" not in body and "@" not in body
    assert not any(video_id in body for video_id in ran["ids"].values())

    jobs = _jobs(json_stack)
    states = {state: sum(j["state"] == state for j in jobs.values()) for state in ("queued", "running", "succeeded")}
    assert states == {"queued": 0, "running": 0, "succeeded": 2}
    for state, n in {"queued": 0, "running": 0, "succeeded": 2, "failed": 1, "cancelled": 0}.items():
        assert _value(samples, "streamify_jobs", state=state) == n, state
    assert _value(samples, "streamify_job_failures_total", reason="corrupt_source") == 1
    assert sum(v for (name, _), v in samples.items() if name == "streamify_job_failures_total") == 1
    # Counted by the kind the worker stored with the job, which the dashboard's API shows too.
    assert jobs[ran["ids"]["cut"]]["failure_kind"] == "corrupt_source"
    with json_stack.client(operator) as op:
        failures = op.get("/api/v1/ops/snapshot").json()["failures"]
    assert [(f["video_id"], f["failure_kind"]) for f in failures] == [(ran["ids"]["cut"], "corrupt_source")]
    assert _value(samples, "streamify_uploads_total") == 3
    assert _value(samples, "streamify_upload_bytes_total") == sum(ran["sizes"].values())
    assert _value(samples, "streamify_stored_bytes", kind="source") == sum(ran["sizes"].values())
    assert _value(samples, "streamify_workers_online") == 1
    assert _value(samples, "streamify_queue_oldest_seconds") == 0

    # Durations and speeds: exactly the succeeded jobs' rows, bucket by bucket.
    done = [j for j in jobs.values() if j["state"] == "succeeded"]
    walls = [(j["finished_at"] - j["started_at"]).total_seconds() for j in done]
    speeds = [j["speed"] for j in done]
    assert all(s and s > 0 for s in speeds), speeds
    for name, values, bounds in (
        ("streamify_job_duration_seconds", walls, DURATION_BUCKETS),
        ("streamify_encode_speed_ratio", speeds, SPEED_BUCKETS),
    ):
        assert _value(samples, f"{name}_count") == len(done) == 2
        assert _value(samples, f"{name}_sum") == pytest.approx(sum(values), abs=1e-3)
        for bound in bounds:
            assert _value(samples, f"{name}_bucket", le=repr(bound)) == sum(v <= bound for v in values), (name, bound)
        assert _value(samples, f"{name}_bucket", le="+Inf") == 2
    encoded = sum(ran["videos"][k]["duration"] for k in ("good", "private"))
    assert _value(samples, "streamify_encoded_seconds_total") == pytest.approx(encoded, abs=1e-6)

    # Media bytes: the HLS segments really in Blob Storage (measured bitrates x duration, within 3%).
    media = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        json_stack.env["STREAMIFY_AZURE_MEDIA_CONTAINER"]
    )
    segments = sum(
        b.size
        for key in ("good", "private")
        for b in media.list_blobs(name_starts_with=f"{ran['ids'][key]}/")
        if b.name.endswith(".m4s")
    )
    assert segments > 0
    assert _value(samples, "streamify_stored_bytes", kind="media") == pytest.approx(segments, rel=0.03)


def _json_lines(path: Path) -> list[dict]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{path.name}: not a JSON line: {line[:200]}")
    return parsed


def test_worker_and_api_log_json_lines_with_the_job_ids(json_stack, ran):
    lines = _json_lines(json_stack.logs / "json-worker.log")  # every line, the startup warning included
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    jobs = _jobs(json_stack)
    threads_with_ids = set()
    for key, video_id in ran["ids"].items():
        job = jobs[video_id]
        job_id, pid = str(job["id"]), int(job["worker"].rsplit(":", 1)[1])
        start = next(i for i, line in enumerate(lines) if line["message"].startswith(f"job {job_id} (video"))
        outcome = "ready" if key != "cut" else "failed"
        end = next(i for i, line in enumerate(lines) if line["message"].startswith(f"video {video_id} {outcome}"))
        # Everything the job's process logged while it ran (other processes' lines interleave: not this job's).
        during = [line for line in lines[start : end + 1] if line["process"] == pid]
        assert len(during) >= 2, during
        for line in during:
            assert (line.get("job_id"), line.get("video_id")) == (job_id, video_id), line
        threads_with_ids |= {line["threadName"] for line in during}
    # Lines from threads the job started (blob uploads, the SDK's transfers) carry the ids too.
    assert len(threads_with_ids) > 1, threads_with_ids
    # ...and lines that are no job's do not: a doorbell arriving, the worker starting up.
    received = [line for line in lines if "received" in line["message"] and line["logger"] == "celery.worker.strategy"]
    assert received and not any("job_id" in line for line in received)

    api_lines = _json_lines(next(json_stack.logs.glob("api-*.log")))
    uploads = [
        line for line in api_lines if line["logger"] == "uvicorn.access" and "POST /api/v1/videos" in line["message"]
    ]
    assert len(uploads) == 3 and all('" 202' in line["message"] for line in uploads), uploads


def _access_log_keeps_no_playback_secret(stack, log: Path) -> None:
    """A playback token opens a private video for up to 30 days, a segment signature its files: whoever reads
    the access log must not be able to watch. The line is still there, with the values redacted."""
    token, signature = f"tok{secrets.token_hex(12)}", f"sig{secrets.token_hex(12)}"
    video_id = "0b6f3f52-5d7e-4d3a-9a43-0c6c1f7e2a11"
    with stack.client(anonymous=True) as anonymous:
        anonymous.get(f"/api/v1/videos/{video_id}/master.m3u8", params={"token": token})
        anonymous.get(f"/api/v1/videos/{video_id}/720p/index.m3u8?lang=en&token={token}&x=1")
        anonymous.get(f"/media/{video_id}/720p/seg_00001.m4s", params={"e": "1900000000", "st": signature})
    wait_for(lambda: log.read_text().count(video_id) >= 3, "the access log lines", timeout=20)
    text = log.read_text()
    assert token not in text and signature not in text
    assert f"/api/v1/videos/{video_id}/master.m3u8?token=[redacted]" in text
    assert "/720p/index.m3u8?lang=en&token=[redacted]&x=1" in text
    assert f"/media/{video_id}/720p/seg_00001.m4s?e=1900000000&st=[redacted]" in text


def test_json_access_log_redacts_playback_tokens_and_signatures(json_stack):
    _access_log_keeps_no_playback_secret(json_stack, next(json_stack.logs.glob("api-*.log")))


def test_text_access_log_redacts_playback_tokens_and_signatures(stack):
    _access_log_keeps_no_playback_secret(stack, stack.logs / f"api-{urlparse(stack.url).port}.log")


def _streamify(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env={**env, "COLUMNS": "160"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_jobs_cli_shows_the_live_queue(json_stack, clips, ran):
    _, operator = make_user(json_stack.database_url, operator=True)
    with json_stack.client() as creator:
        video_id = upload(creator, clips["1080p"], title="cli keynote").json()["id"]
        wait_for(lambda: _jobs(json_stack)[video_id]["state"] == "running", "job to start", timeout=120)
        env = {**os.environ, "STREAMIFY_TOKEN": operator}
        frame = _streamify("jobs", "--once", "--server", json_stack.url, env=env)
        assert frame.returncode == 0, frame.stderr
        out = frame.stdout
        running = out[out.index("Running") : out.index("Queue")]
        assert "cli keynote" in running and "%" in running
        assert "source is truncated or corrupt" in out  # the failure ran() caused
        assert _jobs(json_stack)[video_id]["worker"].rsplit(":", 1)[1] in out  # the worker row names its pid
        assert "succeeded 2" in out and "failed 1" in out and "running 1" in out

        # Live mode polls and redraws until Ctrl-C, then leaves quietly.
        api_log = next(json_stack.logs.glob("api-*.log"))
        polls = lambda: api_log.read_text().count("GET /api/v1/ops/snapshot")  # noqa: E731
        before = polls()
        live = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "jobs", "--server", json_stack.url, "--interval", "0.5"],
            env={**env, "COLUMNS": "160"},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: polls() >= before + 3, "jobs to poll the snapshot again and again", timeout=30)
            live.send_signal(signal.SIGINT)
            out, err = live.communicate(timeout=20)
        finally:
            stop(live)
        assert live.returncode == 0, err
        assert "cli keynote" in out

        # Only operators: a creator's token is refused with the reason, no token is a usage error.
        creator_env = {**os.environ, "STREAMIFY_TOKEN": json_stack.token}
        refused = _streamify("jobs", "--once", "--server", json_stack.url, env=creator_env)
        assert refused.returncode == 1 and "operators only" in refused.stdout
        no_token = {k: v for k, v in os.environ.items() if k != "STREAMIFY_TOKEN"}
        assert _streamify("jobs", "--once", "--server", json_stack.url, env=no_token).returncode == 2
        job_id = _jobs(json_stack)[video_id]["id"]
        with json_stack.client(operator) as op:
            assert op.post(f"/api/v1/ops/jobs/{job_id}/cancel").status_code == 200
        wait_status(creator, video_id, statuses=("cancelled",), timeout=60)


def test_flower_runs_on_loopback_with_the_configured_broker(json_stack):
    port = free_port()
    log = (json_stack.logs / "flower.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "flower", "--port", str(port)],
        env=json_stack.env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{url}/healthcheck", timeout=2).text == "OK", "Flower", timeout=60, proc=proc)
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections("inet") if c.status == "LISTEN"]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
        # Through the configured broker it finds this stack's worker, by the name it was started with.
        wait_for(lambda: "json-worker@" in httpx.get(f"{url}/workers", timeout=10).text, "worker in Flower", 60)
    finally:
        stop(proc)


def test_metrics_on_an_embedded_install(tmp_path):
    """SQLite (`streamify up`) has no interval type: the same exposition, computed its own way."""
    from datetime import timedelta

    from sqlmodel import Session

    from api.metrics import exposition
    from core.accounts import create_user
    from core.db import make_engine, migrate
    from core.settings import Settings
    from schemas.tables import FailureKind, TranscodeJob, Video, utcnow

    settings = Settings(data_dir=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    migrate(settings)
    engine = make_engine(settings.effective_database_url)
    now = utcnow()
    with Session(engine) as session:
        user = create_user(session, "a@example.test", "correct horse battery")
        for i, (state, wall, speed, kind) in enumerate(
            [
                ("succeeded", 12.0, 1.5, None),
                ("succeeded", 400.0, 0.3, None),
                ("failed", 3.0, None, FailureKind.worker_lost),
            ]
        ):
            video = Video(owner_id=user.id, title=f"t{i}", source_key=f"k{i}", source_size=1000, source_format="mp4")
            session.add(video)
            session.flush()
            session.add(TranscodeJob(video_id=video.id, owner_id=user.id, state=state, speed=speed, failure_kind=kind,
                                     started_at=now - timedelta(seconds=wall), finished_at=now))  # fmt: skip
        session.commit()
        samples = _samples(exposition(session)[0].decode())
    engine.dispose()
    assert _value(samples, "streamify_jobs", state="succeeded") == 2
    assert _value(samples, "streamify_job_failures_total", reason="worker_lost") == 1
    assert _value(samples, "streamify_job_duration_seconds_sum") == pytest.approx(412.0, abs=0.01)
    assert _value(samples, "streamify_job_duration_seconds_bucket", le="30.0") == 1
    assert _value(samples, "streamify_job_duration_seconds_bucket", le="600.0") == 2
    assert _value(samples, "streamify_encode_speed_ratio_bucket", le="0.5") == 1


def test_redaction_of_a_request_target():
    from core.logs import redact_query

    assert redact_query("/a/master.m3u8?token=T") == "/a/master.m3u8?token=[redacted]"
    assert redact_query("/m/s.m4s?e=17&st=S&x") == "/m/s.m4s?e=17&st=[redacted]&x"
    assert redact_query("/a?tok%65n=T&token2=keep&atoken=keep") == "/a?tok%65n=[redacted]&token2=keep&atoken=keep"
    assert redact_query("/a/token=x") == "/a/token=x"  # no query: nothing to hide

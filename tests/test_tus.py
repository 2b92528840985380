"""Resumable uploads (tus 1.0) on the real stack: chunks and offsets, a connection cut mid-PATCH that
resumes without re-sending a byte, ownership, size limits, refusals that leave nothing, expiry."""

import base64
import contextlib
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psycopg
import pytest
from azure.storage.blob import BlobServiceClient

from tests.conftest import (
    AZURITE_BIN,
    AZURITE_KEY,
    ROOT,
    UPLOAD_LIMIT,
    free_port,
    start_api,
    stop,
    wait_for,
    wait_status,
)

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = {"Content-Type": "application/offset+octet-stream"}


def metadata(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


def create(client: httpx.Client, length: int, **fields: str) -> str:
    r = client.post(
        "/api/v1/uploads/", headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(**fields)}
    )
    assert r.status_code == 201, r.text
    assert r.headers["tus-resumable"] == "1.0.0"
    assert r.headers["upload-expires"].endswith("GMT")
    return r.headers["location"]


def patch(client: httpx.Client, url: str, offset: int, data: bytes) -> httpx.Response:
    return client.patch(url, headers={**TUS, **OFFSET_STREAM, "Upload-Offset": str(offset)}, content=data)


def head_offset(client: httpx.Client, url: str) -> int:
    r = client.head(url, headers=TUS)
    assert r.status_code == 200, r.status_code
    assert r.headers["cache-control"] == "no-store"
    return int(r.headers["upload-offset"])


def new_client(stack) -> tuple[httpx.Client, str]:
    """A client for a creator of its own, so row and file counts are this test's alone."""
    _, token = stack.new_user()
    me = httpx.get(f"{stack.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    return stack.client(token), me["id"].replace("-", "")


def tus_dir(stack, owner_hex: str) -> Path:
    return Path(stack.env["STREAMIFY_DATA_DIR"]) / "tmp" / "tus" / owner_hex


def upload_bytes_left(stack, owner_hex: str) -> list[str]:
    """Files holding upload bytes (the small `<id>.json` records are kept until expiry to tell the outcome)."""
    d = tus_dir(stack, owner_hex)
    return sorted(p.name for p in d.iterdir() if not p.name.endswith(".json")) if d.exists() else []


def videos_of(stack, owner_hex: str) -> int:
    with psycopg.connect(stack.database_url.replace("+psycopg", "")) as conn:
        return conn.execute("SELECT count(*) FROM videos WHERE owner_id = %s", (owner_hex,)).fetchone()[0]


def source_blobs(azurite) -> list[str]:
    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        "streamify-sources"
    )
    return sorted(b.name for b in container.list_blobs()) if container.exists() else []


def test_discovery_headers(stack):
    with stack.client(anonymous=True) as client:
        r = client.options("/api/v1/uploads/")
    assert r.status_code == 204
    assert r.headers["tus-version"] == "1.0.0"
    assert set(r.headers["tus-extension"].split(",")) == {"creation", "expiration", "termination"}
    assert int(r.headers["tus-max-size"]) == UPLOAD_LIMIT


def test_chunked_upload_reports_offsets_and_becomes_a_ready_video(stack, clips):
    data = clips["720p_short"].read_bytes()
    chunk = 1024 * 1024
    client, _ = new_client(stack)
    with client:
        url = create(
            client, len(data), filename="holiday.mp4", title="Chunked", description="in parts", visibility="unlisted"
        )
        assert head_offset(client, url) == 0
        offsets = []
        for start in range(0, len(data), chunk):
            r = patch(client, url, start, data[start : start + chunk])
            assert r.status_code == 204, r.text
            offsets.append(int(r.headers["upload-offset"]))
            assert head_offset(client, url) == offsets[-1]
        assert offsets == [min(s + chunk, len(data)) for s in range(0, len(data), chunk)]
        video_id = r.headers["streamify-video-id"]  # the completing PATCH ran the ingest
        status = client.get(url).json()
        assert status["state"] == "done" and status["video_id"] == video_id, status
        assert status["watch_url"] == f"/watch/{video_id}"
        assert status["received_bytes"] == len(data)
        assert patch(client, url, len(data), b"x").status_code == 409  # complete: nothing more goes in
        video = wait_status(client, video_id)
        assert video["status"] == "ready", video["error"]
        assert (video["title"], video["description"], video["visibility"]) == ("Chunked", "in parts", "unlisted")
        assert len(video["renditions"]) >= 2


def _cut_patch(stack, token: str, url: str, data: bytes, first: int, second: int) -> None:
    """A PATCH for the whole rest of the file over a raw socket: `first` bytes, a pause, `second` more,
    then the connection dies without the rest (as when a laptop lid closes or Wi-Fi drops)."""
    target = urlparse(stack.url)
    sock = socket.create_connection((target.hostname, target.port))
    head = (
        f"PATCH {url} HTTP/1.1\r\nHost: {target.netloc}\r\nAuthorization: Bearer {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data[:first])
    time.sleep(1.0)  # the server takes these in
    sock.sendall(data[first : first + second])
    sock.close()


def test_connection_cut_mid_patch_resumes_from_the_last_byte_received(stack, clips):
    data = clips["1080p"].read_bytes()
    _, token = stack.new_user()
    with stack.client(token) as client:
        url = create(client, len(data), filename="cut.mp4", title="Cut and resumed")
        first, second = 1_500_001, 700_003  # not aligned to anything: proves byte-exact resumption
        _cut_patch(stack, token, url, data, first, second)

        # HEAD waits for the dying PATCH to finish writing, so it reports what the server really holds.
        def settled() -> int | None:
            offset = head_offset(client, url)
            time.sleep(0.3)
            return offset if offset == head_offset(client, url) and offset > 0 else None

        offset = wait_for(settled, "the cut PATCH to settle", timeout=30)
        assert first <= offset <= first + second, offset
        assert client.get(url).json()["received_bytes"] == offset

        # The client resumes from the server's offset, never from 0.
        assert patch(client, url, 0, data[:1024]).status_code == 409
        r = patch(client, url, offset, data[offset:])
        assert r.status_code == 204, r.text
        assert int(r.headers["upload-offset"]) == len(data)

        status = client.get(url).json()
        # The server's own count: every byte written exactly once, in two PATCHes, the second at the cut.
        assert status["received_bytes"] == len(data), status
        assert status["patch_offsets"] == [0, offset], status
        video = wait_status(client, r.headers["streamify-video-id"])
        assert video["status"] == "ready", video["error"]
        assert video["width"] == 1920 and video["height"] == 1080


def test_another_creator_gets_404_and_anonymous_401(stack):
    owner, _ = new_client(stack)
    intruder, _ = new_client(stack)
    with owner, intruder, stack.client(anonymous=True) as anonymous:
        url = create(owner, 1000, filename="mine.mp4")
        assert intruder.head(url, headers=TUS).status_code == 404
        assert patch(intruder, url, 0, b"\x00" * 10).status_code == 404
        r = intruder.get(url)
        assert r.status_code == 404 and "not found" in r.json()["detail"]
        assert intruder.delete(url, headers=TUS).status_code == 404
        assert anonymous.head(url, headers=TUS).status_code == 401
        r = anonymous.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": "10"})
        assert r.status_code == 401 and r.json()["detail"]
        assert head_offset(owner, url) == 0  # untouched
        assert owner.delete(url, headers=TUS).status_code == 204  # termination
        assert owner.head(url, headers=TUS).status_code == 404


def test_size_limit_and_bad_requests(stack):
    client, owner_hex = new_client(stack)
    with client:
        r = client.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": str(UPLOAD_LIMIT + 1)})
        assert r.status_code == 413 and r.json()["detail"] == f"file too large: the limit is {UPLOAD_LIMIT} bytes"
        for headers, status, words in [
            ({"Upload-Defer-Length": "1"}, 400, "Upload-Length is required"),
            ({"Upload-Length": "-5"}, 400, "non-negative integer"),
            ({"Upload-Length": "0"}, 422, "empty file"),
            ({"Upload-Length": "10", "Upload-Metadata": "title !!!"}, 400, "base64"),
            ({"Upload-Length": "10", "Upload-Metadata": metadata(visibility="everyone")}, 422, "visibility"),
            ({"Upload-Length": "10", "Upload-Metadata": metadata(title="x" * 201)}, 422, "title too long"),
            ({"Upload-Length": "10", "Upload-Concat": "partial"}, 400, "not supported"),
        ]:
            r = client.post("/api/v1/uploads/", headers={**TUS, **headers})
            assert r.status_code == status and words in r.json()["detail"], (headers, r.text)
        r = client.post("/api/v1/uploads/", headers={"Tus-Resumable": "0.2.2", "Upload-Length": "10"})
        assert r.status_code == 412 and r.headers["tus-version"] == "1.0.0"

        url = create(client, 100_000, filename="small.mp4")
        r = client.patch(url, headers={**TUS, "Upload-Offset": "0", "Content-Type": "text/plain"}, content=b"x")
        assert r.status_code == 415 and "offset+octet-stream" in r.json()["detail"]
        # A PATCH that declares more than Upload-Length is refused before a byte is read.
        r = patch(client, url, 0, b"\x00" * 100_001)
        assert r.status_code == 413 and "Upload-Length" in r.json()["detail"]
        assert head_offset(client, url) == 0

        # Streamed without Content-Length and running past Upload-Length: refused, and the upload with it.
        def overrun():
            yield b"\x00\x00\x00\x18ftypisom" + b"\x00" * 50_000
            yield b"\x00" * 60_000

        r = client.patch(url, headers={**TUS, **OFFSET_STREAM, "Upload-Offset": "0"}, content=overrun())
        assert r.status_code == 413 and "past Upload-Length" in r.json()["detail"], r.text
        assert client.head(url, headers=TUS).status_code == 410
        assert upload_bytes_left(stack, owner_hex) == []


@pytest.mark.parametrize(
    ("make", "status", "words", "when"),
    [
        (lambda clip: b"just some notes, not a video\n" * 2000, 415, "not a media file", "first chunk"),
        (lambda clip: clip[: len(clip) // 2], 422, "corrupt", "last chunk"),  # mp4 cut before its index
    ],
    ids=["text", "truncated_mp4"],
)
def test_refused_file_is_explained_and_leaves_nothing(stack, azurite, clips, make, status, words, when):
    data = make(clips["720p_short"].read_bytes())
    client, owner_hex = new_client(stack)
    blobs_before = source_blobs(azurite)
    with client:
        url = create(client, len(data), filename="bad.mp4")
        half = len(data) // 2
        r = patch(client, url, 0, data[:half])
        if when == "last chunk":
            assert r.status_code == 204, r.text
            r = patch(client, url, half, data[half:])
        # A non-media file is refused at its first chunk, before the rest is even sent.
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/json"
        assert words in r.json()["detail"]
        # A client that lost that answer can still learn it; the upload cannot be resumed.
        outcome = client.get(url).json()
        assert outcome["state"] == "refused" and outcome["error_status"] == status and words in outcome["error"]
        assert client.head(url, headers=TUS).status_code == 410
        assert patch(client, url, half, data[half:]).status_code == 410
    assert videos_of(stack, owner_hex) == 0
    assert source_blobs(azurite) == blobs_before
    assert upload_bytes_left(stack, owner_hex) == []


def _expire(stack, owner_hex: str, url: str) -> Path:
    """Age an upload's record past its expiry, as 24 idle hours would."""
    record = tus_dir(stack, owner_hex) / f"{url.rsplit('/', 1)[1]}.json"
    rec = json.loads(record.read_text())
    rec["expires_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    record.write_text(json.dumps(rec))
    return record


def test_expired_partial_uploads_are_cleaned(stack, clips):
    data = clips["720p_short"].read_bytes()[:300_000]
    client, owner_hex = new_client(stack)
    with client:
        urls = [create(client, 1_000_000, filename=f"part{i}.mp4") for i in range(4)]
        for url in urls:
            assert patch(client, url, 0, data).status_code == 204
        r = client.head(urls[3], headers=TUS)
        assert int(r.headers["upload-offset"]) == len(data)
        expires = datetime.strptime(r.headers["upload-expires"], "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
        assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)  # 24 h after the last PATCH

        # Touched after expiry: gone, with its bytes.
        _expire(stack, owner_hex, urls[0])
        assert client.head(urls[0], headers=TUS).status_code == 410
        assert client.head(urls[0], headers=TUS).status_code == 404

        # Never touched again: an API process removes it when it starts (and then periodically).
        record = _expire(stack, owner_hex, urls[1])
        proc, _ = start_api(stack.env, stack.logs)
        try:
            wait_for(lambda: not record.exists(), "startup cleanup", timeout=20)
        finally:
            stop(proc)

        # The same pass on demand, for cron: `python -m ingest.housekeeping`.
        record = _expire(stack, owner_hex, urls[2])
        out = subprocess.run(
            [sys.executable, "-m", "ingest.housekeeping"],
            env=stack.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "removed 1 expired partial uploads" in out.stdout, out
        assert not record.exists()

        # Only the live upload is left, bytes and all.
        assert upload_bytes_left(stack, owner_hex) == [urls[3].rsplit("/", 1)[1]]
        assert head_offset(client, urls[3]) == len(data)


@contextlib.contextmanager
def own_api(stack, **settings: str) -> Iterator[str]:
    """One more API process on the stack's database, blobs and data dir, with a few settings of its own."""
    env = {**stack.env, **{f"STREAMIFY_{k.upper()}": v for k, v in settings.items()}}
    proc, url = start_api(env, stack.logs)
    try:
        yield url
    finally:
        stop(proc)


def test_open_uploads_reserve_their_remaining_bytes_on_disk(stack):
    """Free space is reserved, not just checked: uploads that each fit but together would fill the disk are
    refused (507), whoever started them; the margin is a setting (here set so ~1.5 GiB is left for uploads)."""
    free = shutil.disk_usage(stack.env["STREAMIFY_DATA_DIR"]).free
    gib = 1024**3
    if free < 3 * gib:
        pytest.fail(f"this test needs 3 GiB free on the data dir's disk, found {free}")
    margin = free - 3 * gib // 2
    _, token_a = stack.new_user()
    _, token_b = stack.new_user()
    with own_api(stack, tus_disk_margin_bytes=str(margin), max_upload_bytes=str(2 * gib)) as url:
        a = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token_a}"}, timeout=30)
        b = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token_b}"}, timeout=30)
        with a, b:
            first = create(a, gib, filename="big.mp4")  # 1 GiB + margin fits in what is free
            r = b.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": str(gib)})
            assert r.status_code == 507, r.text  # would fit alone, not beside the first one's 1 GiB still to come
            assert "not enough disk space" in r.json()["detail"] and "try again later" in r.json()["detail"]
            assert r.headers["tus-resumable"] == "1.0.0"
            assert a.delete(first, headers=TUS).status_code == 204  # its reservation goes with it
            second = create(b, gib, filename="big.mp4")
            assert b.delete(second, headers=TUS).status_code == 204


def test_cleanup_pass_survives_files_vanishing_under_it(tmp_path):
    """Another process deletes files while a pass runs (simulated by names that no longer lead to a file:
    dangling links, which stat() reports exactly like a file removed meanwhile): the pass goes on."""
    import uuid

    from core.settings import Settings
    from ingest.tus import TusStore

    store = TusStore(Settings(data_dir=tmp_path))
    owners = [uuid.uuid4() for _ in range(3)]
    recs = [store.create(owner, 1000, {"filename": "a.mp4"}) for owner in owners]
    for owner in owners:  # vanished records and vanished leftovers, in every folder, before and after the others
        folder = store.root / owner.hex
        (folder / f"{uuid.uuid4().hex}.json").symlink_to(tmp_path / "gone")
        (folder / f"{uuid.uuid4().hex}.json.1234abcd.tmp").symlink_to(tmp_path / "gone")
    old = datetime.now(UTC) + timedelta(days=2)
    assert store.cleanup_expired(old) == len(recs)  # every expired upload went despite the vanished files
    assert not any(store.data_path(rec).exists() for rec in recs)


APP_WITH_SETTINGS = """
import sys, uvicorn
from api.app import create_app
from core.settings import Settings
uvicorn.run(create_app(Settings(data_dir=sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]))
"""


@pytest.mark.stack  # an API process of its own
def test_startup_cleanup_sweeps_the_data_dir_the_app_was_created_with(tmp_path):
    import os
    import uuid

    from core.settings import Settings
    from ingest.tus import TusStore

    settings = Settings(data_dir=tmp_path / "install")
    store = TusStore(settings)
    rec = store.create(uuid.uuid4(), 1000, {"filename": "a.mp4"})
    rec.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    store.save(rec)
    env = {**os.environ, "STREAMIFY_DATA_DIR": str(tmp_path / "environment")}  # what get_settings() would say
    argv = [sys.executable, "-c", APP_WITH_SETTINGS, str(settings.data_dir), str(free_port())]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: not store.data_path(rec).exists(), "the startup cleanup of the app's data dir", 30, proc)
    finally:
        stop(proc)


def test_unexpected_storage_failure_is_refused_without_its_internals(stack, azurite, clips):
    """Blob Storage fails mid-ingest (its container deleted under a running API): the creator gets a plain 503,
    in the PATCH answer and in the upload's record; the storage error and its details go to the log only."""
    container = f"leak-{secrets.token_hex(4)}"
    data = clips["720p_short"].read_bytes()
    client, owner_hex = new_client(stack)
    with own_api(stack, azure_source_container=container) as url, client:
        client.base_url = url
        BlobServiceClient.from_connection_string(azurite.connection_string).delete_container(container)
        upload_url = create(client, len(data), filename="clip.mp4")
        r = patch(client, upload_url, 0, data)
        assert r.status_code == 503 and r.json() == {"detail": "could not store the upload; try again"}, r.text
        outcome = client.get(upload_url).json()
        assert (outcome["state"], outcome["error_status"]) == ("refused", 503)
        assert outcome["error"] == "could not store the upload; try again"
        log = stack.logs / f"api-{urlparse(url).port}.log"
        wait_for(lambda: "ContainerNotFound" in log.read_text(), "the storage error in the API log", timeout=20)
    assert videos_of(stack, owner_hex) == 0
    assert upload_bytes_left(stack, owner_hex) == []


@contextlib.contextmanager
def frozen_blob_store(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """An Azurite of this test's own: yields its connection string and a `freeze` that stops the process
    (SIGSTOP: connections are accepted, never answered), as a storage account that hangs would."""
    port = free_port()
    proc = subprocess.Popen(
        [str(AZURITE_BIN), "--silent", "--location", str(tmp_path), "--blobHost", "127.0.0.1", "--blobPort",
         str(port), "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, "Azurite", proc=proc)
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
        yield conn, lambda: proc.send_signal(signal.SIGSTOP)
    finally:
        proc.kill()  # even when stopped; SIGTERM would wait 20 s for the requests it never answered
        proc.wait()


def test_an_ingest_interrupted_by_a_dying_node_is_reported_and_its_bytes_removed(stack, clips, tmp_path):
    """The API process dies while ingesting (SIGKILL while it stores the source in a blob store that hangs):
    the record stays `ingesting`. Past the bound (a setting, 15 min by default, 3 s here) and with no live
    process on it, it is refused with a 503 telling the creator to upload again, and its bytes go."""
    data = clips["720p_short"].read_bytes()
    client, owner_hex = new_client(stack)
    bound = {"STREAMIFY_TUS_INGEST_TIMEOUT_SECONDS": "3"}
    with frozen_blob_store(tmp_path) as (blob_conn, freeze), client:
        proc, url = start_api({**stack.env, **bound, "STREAMIFY_AZURE_CONNECTION_STRING": blob_conn}, stack.logs)
        try:
            client.base_url = url
            upload_url = create(client, len(data), filename="clip.mp4")
            record = tus_dir(stack, owner_hex) / f"{upload_url.rsplit('/', 1)[1]}.json"
            ingest_bytes = record.with_suffix(".ingest")
            freeze()
            patching = threading.Thread(target=_ignore_errors, args=(patch, client, upload_url, 0, data), daemon=True)
            patching.start()
            wait_for(lambda: json.loads(record.read_text())["state"] == "ingesting", "the ingest to start", 60)
            time.sleep(4)  # past the bound, but its process is alive and on it: not interrupted
            still = httpx.get(f"{url}{upload_url}", headers=client.headers, timeout=30).json()
            assert still["state"] == "ingesting", still
        finally:
            proc.kill()
            proc.wait()
        patching.join(timeout=30)
        assert json.loads(record.read_text())["state"] == "ingesting" and ingest_bytes.exists()

        with own_api(stack, tus_ingest_timeout_seconds="3") as url:  # another node: its startup cleanup finds it
            client.base_url = url
            wait_for(lambda: not ingest_bytes.exists(), "the interrupted upload's bytes to be removed", timeout=30)
            outcome = client.get(upload_url).json()
            assert (outcome["state"], outcome["error_status"]) == ("refused", 503), outcome
            assert outcome["error"] == "ingest was interrupted; upload again"
            r = client.head(upload_url, headers=TUS)
            assert r.status_code == 410  # a HEAD has no body: the GET above said why
    assert videos_of(stack, owner_hex) == 0
    assert upload_bytes_left(stack, owner_hex) == []


def _ignore_errors(fn, *args) -> None:
    with contextlib.suppress(httpx.HTTPError):
        fn(*args)


def test_database_failure_at_ingest_is_refused_without_its_internals(stack, clips):
    """The database refuses the video row (a trigger raising for this creator only, as a full disk or a
    constraint would): tus and multipart uploads answer a plain 503; the database's words go to the log only."""
    data = clips["720p_short"].read_bytes()
    client, owner_hex = new_client(stack)
    secret = f"pg-internal-{secrets.token_hex(4)}"
    admin = psycopg.connect(stack.database_url.replace("+psycopg", ""), autocommit=True)
    fn = f"refuse_{owner_hex[:12]}"
    admin.execute(
        f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.owner_id = '{owner_hex}'::uuid THEN RAISE EXCEPTION 'disk full on {secret}'; END IF; "
        "RETURN NEW; END $$"
    )
    admin.execute(f"CREATE TRIGGER {fn} BEFORE INSERT ON videos FOR EACH ROW EXECUTE FUNCTION {fn}()")
    try:
        with client:
            url = create(client, len(data), filename="clip.mp4")
            r = patch(client, url, 0, data)
            assert r.status_code == 503, r.text
            tus_outcome = client.get(url).json()
            multipart = client.post("/api/v1/videos", files={"file": ("clip.mp4", data)})
            assert multipart.status_code == 503, multipart.text
    finally:
        admin.execute(f"DROP TRIGGER {fn} ON videos")
        admin.execute(f"DROP FUNCTION {fn}()")
        admin.close()
    for detail in (r.json()["detail"], tus_outcome["error"], multipart.json()["detail"]):
        assert detail == "could not record the upload, not kept: try again"
    log = stack.logs / f"api-{urlparse(stack.url).port}.log"
    wait_for(lambda: log.read_text().count(secret) >= 2, "the database's error in the API log", timeout=20)
    assert videos_of(stack, owner_hex) == 0
    assert upload_bytes_left(stack, owner_hex) == []


def test_one_creator_cannot_reserve_the_shared_disk_budget(tmp_path):
    """Zero-byte uploads declaring the size limit each used to reserve it until they expired (24 h), so one
    creator could leave every other with 507. Their declared lengths now count against a per-creator cap (429
    naming it); another creator still gets an upload, and deleting one frees its share."""
    from fastapi.testclient import TestClient

    from tests.inprocess import local_app

    mib = 1024 * 1024
    limits = {"max_upload_bytes": 10 * mib, "tus_max_reserved_bytes": 25 * mib, "tus_disk_margin_bytes": 0}
    with local_app(tmp_path, **limits) as app:
        hog = TestClient(app.app, headers=app.as_user(app.user()))
        other = TestClient(app.app, headers=app.as_user(app.user()))
        created = [create(hog, 10 * mib, filename=f"{i}.mp4") for i in range(2)]  # no byte is ever sent
        r = hog.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": str(10 * mib)})
        assert r.status_code == 429, r.text
        assert r.json()["detail"] == (
            f"your unfinished uploads would declare {30 * mib} bytes: at most {25 * mib} bytes per creator; "
            "finish or delete one"
        )
        assert r.headers["tus-resumable"] == "1.0.0"
        create(hog, 5 * mib)  # what is left of its share
        create(other, 10 * mib)  # the others' uploads are not held up
        assert hog.delete(created[0], headers=TUS).status_code == 204  # its share comes back with it
        create(hog, 10 * mib)


def test_a_per_creator_cap_below_the_upload_limit_is_refused_at_start():
    from pydantic import ValidationError

    from core.settings import Settings, refusal

    with pytest.raises(ValidationError) as err:
        Settings(max_upload_bytes=10 * 1024**3, tus_max_reserved_bytes=1024**3)
    message = refusal(err.value)
    assert (
        "STREAMIFY_TUS_MAX_RESERVED_BYTES: must be at least the largest upload allowed (10737418240 bytes)" in message
    )

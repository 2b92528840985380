"""Long requests hold no database connection: a tus PATCH streaming its body and the operators' SSE stream
authenticate, then give their pooled connection back. Otherwise 15 slow uploads (pool 5 + overflow 10) would
take every connection of an API process and all its other requests would time out."""

import contextlib
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil
import psycopg

from tests.conftest import start_api, wait_for
from tests.test_tus import TUS, create, frozen_blob_store

CONCURRENT = 16  # one more than the API process's whole pool (5 + 10 overflow)
PATCH_SENT = 1_500_000  # past the server's 1 MiB write buffer: the first part reaches the disk
HELD = 5.0  # seconds in one transaction: far longer than any tick or lookup here takes
OTHER_REQUEST_TIMEOUT = 20  # generous, and below the pool's 30 s wait for a connection


def _raw(stack, request: str, body: bytes = b"") -> socket.socket:
    target = urlparse(stack.url)
    sock = socket.create_connection((target.hostname, target.port))
    sock.sendall(request.encode() + body)
    return sock


def _held_transactions(stack, pid: int | None = None) -> list[tuple[str, float]]:
    """The API process's PostgreSQL connections (matched by client port) sitting in a transaction opened more
    than HELD seconds ago: a request's connection kept, not a snapshot tick caught between two statements."""
    api = psutil.Process(pid or stack.procs["api"].pid)
    ports = {c.laddr.port for c in api.net_connections("tcp") if c.raddr and c.raddr.port == 5432}
    with psycopg.connect(stack.database_url.replace("+psycopg", ""), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT client_port, state, extract(epoch FROM now() - xact_start)::float FROM pg_stat_activity"
            " WHERE datname = current_database() AND xact_start IS NOT NULL"
        )
        return [(state, age) for port, state, age in rows if port in ports and age > HELD]


def _other_request_answers(stack) -> None:
    _, token = stack.new_user()
    r = httpx.get(
        f"{stack.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=OTHER_REQUEST_TIMEOUT
    )
    assert r.status_code == 200, r.text


def test_slow_tus_patches_hold_no_database_connection(stack, clips):
    data = clips["1080p"].read_bytes()
    assert len(data) > PATCH_SENT
    _, token = stack.new_user()
    me = httpx.get(f"{stack.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    folder = Path(stack.env["STREAMIFY_DATA_DIR"]) / "tmp" / "tus" / me["id"].replace("-", "")
    sockets: list[socket.socket] = []
    with stack.client(token) as client:
        urls = [create(client, len(data), filename=f"slow{i}.mp4") for i in range(CONCURRENT)]
        try:
            for url in urls:  # each PATCH sends part of its body, then the "slow network" pauses
                head = (
                    f"PATCH {url} HTTP/1.1\r\nHost: {urlparse(stack.url).netloc}\r\nAuthorization: Bearer {token}\r\n"
                    f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n"
                )
                sockets.append(_raw(stack, head, data[:PATCH_SENT]))

            def streaming() -> bool:
                sizes = [(folder / url.rsplit("/", 1)[1]).stat().st_size for url in urls]
                return all(size >= 1024 * 1024 for size in sizes)

            wait_for(streaming, f"{CONCURRENT} PATCHes to be streaming their bodies", timeout=60)
            time.sleep(HELD + 1)  # a connection kept by a PATCH would now be in a transaction this old
            assert _held_transactions(stack) == []
            _other_request_answers(stack)

            # The connection is back only while streaming: the PATCH that completes still ingests.
            first = sockets.pop(0)
            first.sendall(data[PATCH_SENT:])
            first.settimeout(120)
            answer = first.recv(65536).decode()
            first.close()
            assert answer.startswith("HTTP/1.1 204"), answer
            assert "streamify-video-id" in answer.lower(), answer
            status = client.get(urls[0]).json()
            assert status["state"] == "done" and status["video_id"], status
        finally:
            for sock in sockets:
                sock.close()
        for url in urls[1:]:  # the client went away: its bytes so far are kept; terminate them
            wait_for(lambda u=url: client.delete(u, headers=TUS).status_code == 204, "termination", timeout=30)


def test_open_ops_event_streams_hold_no_database_connection(stack):
    _, operator = stack.new_user(operator=True)
    netloc = urlparse(stack.url).netloc
    request = (
        f"GET /api/v1/ops/events HTTP/1.1\r\nHost: {netloc}\r\nAuthorization: Bearer {operator}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    )
    sockets = [_raw(stack, request) for _ in range(CONCURRENT)]
    received = [b""] * CONCURRENT
    try:
        for sock in sockets:
            sock.setblocking(False)

        def every_stream_sent_a_snapshot() -> bool:
            for i, sock in enumerate(sockets):
                with contextlib.suppress(BlockingIOError):  # nothing new on this one yet
                    received[i] += sock.recv(1 << 20)
            return all(b"data:" in r for r in received)

        wait_for(every_stream_sent_a_snapshot, f"{CONCURRENT} SSE streams to send a snapshot", timeout=60)
        time.sleep(HELD + 1)  # ticks with every stream open; a connection kept by a stream would be this old
        assert _held_transactions(stack) == []
        _other_request_answers(stack)
        assert all(r.startswith(b"HTTP/1.1 200") for r in received)
    finally:
        for sock in sockets:
            sock.close()


def test_a_multipart_upload_storing_its_source_holds_no_database_connection(stack, clips, tmp_path):
    """POST /api/v1/videos copies, probes and stores the source (minutes for a big file on a slow account)
    after the caller is known: no transaction stays open meanwhile (the blob store here hangs, frozen)."""
    data = clips["720p_short"].read_bytes()
    with frozen_blob_store(tmp_path) as (blob_conn, freeze):
        proc, url = start_api({**stack.env, "STREAMIFY_AZURE_CONNECTION_STRING": blob_conn}, stack.logs)
        try:
            freeze()
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {stack.token}"}) as client:

                def post() -> None:
                    with contextlib.suppress(httpx.HTTPError):  # the API is stopped under it
                        client.post("/api/v1/videos", files={"file": ("clip.mp4", data)}, timeout=120)

                posting = threading.Thread(target=post, daemon=True)
                posting.start()
                time.sleep(HELD + 2)  # the upload is in, stuck storing its source
                assert posting.is_alive()
                assert _held_transactions(stack, proc.pid) == []
        finally:
            proc.kill()  # a graceful stop would wait for the upload stuck in the frozen store
            proc.wait()
        posting.join(timeout=30)

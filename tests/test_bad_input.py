"""Hostile and broken uploads on the real stack: each gets a clear 4xx (or `failed` with a reason when
only the encode can tell), nothing is left behind, and the API and worker keep serving."""

import socket
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from azure.storage.blob import BlobServiceClient

from tests.conftest import UPLOAD_LIMIT, upload, wait_status
from tests.media import broken_inputs


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, clips) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    secret = d / "secret.txt"
    secret.write_text("top secret\n")
    return broken_inputs(d, good=clips["720p_short"], secret=secret)


def _video_count(stack) -> int:
    with psycopg.connect(stack.database_url.replace("+psycopg", "")) as conn:
        return conn.execute("SELECT count(*) FROM videos").fetchone()[0]


def _source_blobs(azurite) -> list[str]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("streamify-sources")
    return [b.name for b in container.list_blobs()] if container.exists() else []


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("empty", 422, "empty file"),
        ("text", 415, "not a media file"),
        ("hls", 415, "not a media file"),
        ("hls_as_mp4", 415, "not a media file"),
        ("concat", 415, "not a media file"),
        ("no_streams", 422, "no decodable video or audio"),
        ("truncated_tail_moov", 422, "corrupt"),
        ("garbage_mp4", 422, "corrupt"),
    ],
)
def test_refused_upload_names_the_problem_and_leaves_nothing(stack, azurite, bad_files, name, status, words):
    before_rows, before_blobs = _video_count(stack), _source_blobs(azurite)
    with stack.client() as client:
        r = upload(client, bad_files[name])
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/json"
        assert words in r.json()["detail"], r.json()
        assert client.get("/readyz").status_code == 200
    assert _video_count(stack) == before_rows
    assert _source_blobs(azurite) == before_blobs
    assert not list((Path(stack.env["STREAMIFY_DATA_DIR"]) / "tmp" / "uploads").glob("*"))


def test_hostile_playlist_never_reads_the_file_it_names(stack, bad_files, tmp_path):
    """Even renamed to .mp4, a playlist naming a local file is refused before ffmpeg could follow it."""
    with stack.client() as client:
        r = upload(client, bad_files["hls_as_mp4"])
    assert r.status_code == 415
    assert "top secret" not in r.text
    # And the product's own opener refuses to treat it as HLS even if asked directly.
    from api.errors import status_for
    from core.errors import Refused
    from core.probe import probe

    with pytest.raises(Refused) as exc:
        probe(bad_files["hls_as_mp4"], "hls")
    assert status_for(exc.value.reason) == 415


def _raw_post(url: str, head: str, body_chunks) -> str:
    """Send a request by hand so the test controls Content-Length and chunking exactly."""
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the body is all sent
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and b"detail" in data:
                break
    return data.decode(errors="replace")


def _multipart(size: int) -> tuple[str, list[bytes]]:
    boundary = "streamifyboundary"
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    end = f"\r\n--{boundary}--\r\n".encode()
    mib = b"\0" * (1024 * 1024)
    return boundary, [start, *([mib] * (size // len(mib))), end]


def test_oversize_upload_is_refused_with_413(stack, azurite):
    before_rows, before_blobs = _video_count(stack), _source_blobs(azurite)
    size = UPLOAD_LIMIT + 2 * 1024 * 1024
    boundary, parts = _multipart(size)
    length = sum(len(p) for p in parts)
    host = urlparse(stack.url).netloc
    # Signed in (an anonymous upload is refused with 401 before its body is read: tests/test_upload_auth.py).
    auth = f"Authorization: Bearer {stack.token}\r\n"
    # Declared up front: refused before the body is read.
    declared = _raw_post(
        stack.url,
        f"POST /api/v1/videos HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"{auth}Content-Length: {length}\r\nConnection: close\r\n\r\n",
        parts,
    )
    assert declared.startswith("HTTP/1.1 413"), declared[:300]
    assert "too large" in declared
    # Chunked, so the size is only known while streaming.
    chunked = _raw_post(
        stack.url,
        f"POST /api/v1/videos HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"{auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        [b"%x\r\n%s\r\n" % (len(p), p) for p in parts] + [b"0\r\n\r\n"],
    )
    assert chunked.startswith("HTTP/1.1 413"), chunked[:300]
    assert "too large" in chunked
    assert _video_count(stack) == before_rows
    assert _source_blobs(azurite) == before_blobs
    with stack.client() as client:
        assert client.get("/readyz").status_code == 200


def test_truncated_media_fails_with_a_reason_and_the_worker_keeps_working(stack, azurite, bad_files, clips):
    with stack.client() as client:
        r = upload(client, bad_files["truncated_faststart"])
        assert r.status_code == 202, r.text
        video = wait_status(client, r.json()["id"])
        assert video["status"] == "failed"
        assert "truncated or corrupt" in video["error"], video["error"]
        assert video["renditions"] == []
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        assert not list(service.get_container_client("streamify-media").list_blobs(name_starts_with=video["id"]))
        with psycopg.connect(stack.database_url.replace("+psycopg", "")) as conn:
            state, error = conn.execute(
                "SELECT state, error FROM transcode_jobs WHERE video_id = %s", (video["id"],)
            ).fetchone()
        assert state == "failed" and error == video["error"]
        # No temp files left on the worker, and the same worker takes the next job.
        assert not list((Path(stack.env["STREAMIFY_DATA_DIR"]) / "tmp" / "jobs").glob("*"))
        assert stack.procs["worker"].poll() is None
        good = wait_status(client, upload(client, clips["720p_short"]).json()["id"])
        assert good["status"] == "ready", good["error"]
        assert client.delete(f"/api/v1/videos/{video['id']}").status_code == 204

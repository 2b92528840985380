"""Request bodies: an upload's caller is checked before its body is read, and every route bounds its body in the
app itself (issue 12, finding 6: an anonymous 300 MiB multipart POST was received and spooled before the 401; on
embedded defaults any route read a 200 MiB JSON body)."""

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest

from tests.inprocess import LocalApp, local_app
from tests.test_tus import own_api

MIB = 1024 * 1024
BOUNDARY = "streamifytestboundary"
FILE_PART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
    "Content-Type: video/mp4\r\n\r\n"
).encode()
CLOSING = f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Iterator[LocalApp]:
    with local_app(tmp_path_factory.mktemp("bodies"), max_upload_bytes=64 * MIB) as app:
        yield app


def _call(app, method: str, path: str, headers: dict[str, str], body_bytes: int) -> tuple[int, dict, int]:
    """Run one request through the ASGI app itself: (status, JSON answer, body bytes the app pulled).

    The body is offered 1 MiB at a time, as a socket would deliver it; whatever the app never asks for was never
    received (nor spooled to disk by the multipart parser)."""
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        chunk = min(MIB, body_bytes - pulled)
        if chunk <= 0:
            await asyncio.sleep(3600)  # nothing more will come: a slow client
        data = (FILE_PART + b"\0" * (chunk - len(FILE_PART))) if pulled == 0 else b"\0" * chunk
        pulled += chunk
        if pulled == body_bytes:  # the closing boundary ends the last chunk
            data = data[: -len(CLOSING)] + CLOSING
        return {"type": "http.request", "body": data, "more_body": pulled < body_bytes}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in headers.items())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    # On a thread of its own: a session fixture (Playwright's sync API) may keep an event loop running here.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(lambda: asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=60))).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


def _multipart(length: int, **extra: str) -> dict[str, str]:
    return {"content-type": f"multipart/form-data; boundary={BOUNDARY}", "content-length": str(length), **extra}


def test_anonymous_or_forged_upload_is_refused_before_its_body_is_read(install):
    cases = [
        ({}, 401, "sign in or send an API token"),
        ({"authorization": "Bearer sfy_forged"}, 401, "invalid or revoked API token"),
        ({"authorization": "Basic abc"}, 401, "malformed Authorization header: use 'Bearer <token>'"),
        ({"cookie": "streamify_session=sfs_x", "sec-fetch-site": "cross-site"}, 403, "cross-site request refused"),
    ]
    for headers, status, detail in cases:
        # Each within its route's limit: only the caller is wrong.
        for path, length in (("/api/v1/videos", 8 * MIB), (f"/api/v1/videos/{uuid.uuid4()}/captions", MIB)):
            got, answer, pulled = _call(install.app, "POST", path, _multipart(length, **headers), length)
            assert (got, answer["detail"]) == (status, detail), (path, headers)
            assert pulled == 0, f"{path} read {pulled} bytes of an unauthenticated body"


def test_signed_in_upload_still_reaches_the_route(install):
    token = install.user()
    got, answer, pulled = _call(
        install.app, "POST", "/api/v1/videos", _multipart(2 * MIB, authorization=f"Bearer {token}"), 2 * MIB
    )
    assert pulled == 2 * MIB  # read by the route, which refuses the zeros as no media file
    assert got == 415, answer


def test_json_routes_refuse_a_large_body_declared_or_streamed(install):
    limit = install.settings.json_body_max_bytes
    detail = f"request body too large: the limit is {limit} bytes"
    big = json.dumps({"email": "a@example.test", "password": "x" * (200 * 1024)}).encode()
    r = install.client.post("/api/v1/auth/login", content=big, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["detail"]) == (413, detail)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        for i in range(0, len(big), 16 * 1024):
            yield big[i : i + 16 * 1024]

    r = install.client.post("/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["detail"]) == (413, detail)
    token = install.user()
    r = install.client.patch(
        "/api/v1/videos/00000000-0000-0000-0000-000000000000",
        content=big,
        headers={**install.as_user(token), "content-type": "application/json"},
    )
    assert r.status_code == 413
    # A small body is untouched, and an upload route keeps its own (larger) limit.
    assert (
        install.client.post("/api/v1/auth/login", json={"email": "a@example.test", "password": "x"}).status_code == 401
    )
    got, answer, _ = _call(
        install.app, "POST", "/api/v1/videos", _multipart(65 * MIB, authorization=f"Bearer {token}"), 65 * MIB
    )
    assert (got, answer["detail"]) == (413, "file too large: the limit is 67108864 bytes")


def test_anonymous_300_mib_upload_gets_its_401_before_the_body_is_sent(stack):
    """On the real stack, over a socket: headers and the first 16 KiB of a declared 300 MiB multipart body, then
    nothing. The 401 must come back now; before the fix the node waited for the other 300 MiB."""
    with own_api(stack, max_upload_bytes=str(400 * MIB)) as url:
        address = urlparse(url)
        head = (
            f"POST /api/v1/videos HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {300 * MIB}\r\n\r\n"
        ).encode()
        with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
            sock.sendall(head + FILE_PART + b"\0" * (16 * 1024))
            answer = b""
            while chunk := sock.recv(65536):  # socket.timeout here: the node is still waiting for the body
                answer += chunk  # until the node closes the connection, as its answer says it will
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 401 Unauthorized", answer[:200]
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert b"connection: close" in headers.lower()
        assert json.loads(body)["detail"] == "sign in or send an API token"

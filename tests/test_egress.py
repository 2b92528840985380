"""Requests to user-given URLs never reach the machine's own network, unless the operator allows a host.

Real sockets: a local HTTP server on 127.0.0.1 stands for an internal service (and, when allowed, for a webhook
receiver); redirects go through real httpx redirect handling.
"""

import asyncio
import http.server
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address

import httpx
import pytest

from core.egress import EgressReason, EgressRefused, check_url, egress_client, is_public, refused, run_async
from core.settings import Settings


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "::",
     "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:7f00:1::1",
     "224.0.0.1", "255.255.255.255"],
)  # fmt: skip
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public(ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::5db8:d822"])
def test_internet_addresses_are_public(address: str) -> None:
    assert is_public(ip_address(address))


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/",
     "http://localhost/hook", "https://[::ffff:10.0.0.1]/", "http://0x7f000001/"],
)  # fmt: skip
def test_internal_urls_are_refused_when_given(url: str) -> None:
    with pytest.raises(EgressRefused) as e:
        check_url(url, Settings(egress_allowed_hosts=""))
    assert e.value.reason in (EgressReason.private_address, EgressReason.unresolvable)
    assert "private" in e.value.message or "resolve" in e.value.message


@pytest.mark.parametrize(
    ("url", "reason"),
    [("file:///etc/passwd", EgressReason.scheme), ("gopher://example.com/", EgressReason.scheme),
     ("ftp://example.com/a.mp4", EgressReason.scheme), ("http://user:pw@example.com/", EgressReason.credentials),
     ("http:///path", EgressReason.no_host), ("not a url", EgressReason.scheme),
     ("http://no-such-host.invalid/", EgressReason.unresolvable)],
)  # fmt: skip
def test_other_bad_urls_say_why(url: str, reason: EgressReason) -> None:
    with pytest.raises(EgressRefused) as e:
        check_url(url, Settings(egress_allowed_hosts=""))
    assert e.value.reason == reason


def test_an_allowed_host_is_let_through_by_name_or_address() -> None:
    settings = Settings(egress_allowed_hosts="127.0.0.1, [::1]")
    assert check_url("http://127.0.0.1:9/hook", settings) == "http://127.0.0.1:9/hook"
    assert check_url("http://[::1]:9/hook", settings) == "http://[::1]:9/hook"
    with pytest.raises(EgressRefused):  # another name for the same machine is not on the list
        check_url("http://localhost:9/hook", settings)


# --- at connection time ---------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            target = self.path.split("?to=", 1)[1]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"internal secret"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def internal_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _get(settings: Settings, url: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with egress_client(settings, timeout=5) as client:
            return await client.get(url)

    return run_async(go())


def test_a_connection_to_an_internal_address_is_refused(internal_server: int) -> None:
    with pytest.raises(EgressRefused) as e:
        _get(Settings(egress_allowed_hosts=""), f"http://127.0.0.1:{internal_server}/")
    assert e.value.reason == EgressReason.private_address


def test_an_allowed_host_is_reached(internal_server: int) -> None:
    r = _get(Settings(egress_allowed_hosts="127.0.0.1"), f"http://127.0.0.1:{internal_server}/")
    assert r.status_code == 200 and r.content == b"internal secret"


def test_a_redirect_to_an_internal_host_is_refused(internal_server: int) -> None:
    """The first hop is allowed; the redirect's target is a name the operator did not allow: refused."""
    url = f"http://127.0.0.1:{internal_server}/redirect?to=http://localhost:{internal_server}/"
    with pytest.raises(Exception) as e:
        _get(Settings(egress_allowed_hosts="127.0.0.1"), url)
    found = refused(e.value)
    assert found is not None and found.reason == EgressReason.private_address


def test_a_guarded_request_runs_from_code_inside_an_event_loop(internal_server: int) -> None:
    """Sync callers (a worker's import, a webhook batch) inside a process that already runs a loop in this thread:
    asyncio.run alone refuses with RuntimeError."""
    settings = Settings(egress_allowed_hosts="127.0.0.1")

    async def get() -> httpx.Response:
        async with egress_client(settings, timeout=5) as client:
            return await client.get(f"http://127.0.0.1:{internal_server}/")

    async def caller() -> int:
        return run_async(get()).status_code  # sync code called from a coroutine, as Playwright's sync API does

    with ThreadPoolExecutor(1) as fresh:  # a thread of its own: this one may run Playwright's loop already
        assert fresh.submit(asyncio.run, caller()).result() == 200

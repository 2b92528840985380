"""Helpers for page tests that upload from the upload page: a throttling TCP proxy between the browser and
the API, a signed-up browser profile, and the upload page's own view of its files (window.streamifyUploads).
"""

import contextlib
import secrets
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import Browser, Page

from tests.conftest import wait_for
from tests.media import make_clip

ITEMS_JS = """() => window.streamifyUploads.items.map(i => ({
  name: i.file ? i.file.name : i.url, state: i.state, progress: i.progress, videoId: i.videoId,
  videoStatus: i.videoStatus, error: i.error, url: i.upload && i.upload.url,
  speed: i.el.querySelector('.speed').textContent, eta: i.el.querySelector('.eta').textContent}))"""


class Proxy:
    """Loopback TCP proxy: throttles browser→API bytes per connection and can cut the next PATCH."""

    def __init__(self, target: str) -> None:
        parsed = urlparse(target)
        self.target = (parsed.hostname, parsed.port)
        self.rate: float | None = None  # bytes/s per connection, browser→API
        self.cut_after: int | None = None  # cut the next PATCH after this many bytes of it
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            # A small receive buffer keeps the browser's progress close to what really went through.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()
        patch_bytes: int | None = None  # bytes of the current PATCH seen so far
        try:
            while data := client.recv(16 * 1024):
                if data.startswith(b"PATCH "):
                    patch_bytes = 0
                with self._lock:
                    cut = self.cut_after
                    if patch_bytes is not None and cut is not None and patch_bytes + len(data) >= cut:
                        self.cut_after = None
                        self.cuts += 1
                    else:
                        cut = None
                if cut is not None:
                    server.sendall(data[: cut - patch_bytes])
                    time.sleep(0.2)  # let the API take those bytes before the connection dies
                    break
                server.sendall(data)
                if patch_bytes is not None:
                    patch_bytes += len(data)
                if self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(64 * 1024):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # The API closed its side (its keep-alive timeout): close the browser's too, or the browser sends its
            # next request down a connection nobody answers any more, and that fetch never ends.
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_RDWR)


def signed_up_page(browser: Browser, proxy: Proxy, viewport: dict) -> Page:
    """A new browser profile whose creator signs up from the page itself (session cookie)."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.on("dialog", lambda d: d.accept())
    page.goto(f"{proxy.url}/upload")
    page.wait_for_selector("#signin", state="visible")
    assert page.get_attribute("#signin a", "href") == "/login?next=/upload"
    email = f"page-{secrets.token_hex(4)}@example.test"
    status = page.evaluate(
        """async (email) => (await fetch('/api/v1/auth/signup', {
             method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({email, password: 'correct horse battery', display_name: 'Page Creator'}),
           })).status""",
        email,
    )
    assert status == 201
    page.reload()
    page.wait_for_selector("#uploader", state="visible")
    return page


def items(page: Page) -> list[dict]:
    return page.evaluate(ITEMS_JS)


def wait_items(page: Page, states: set[str], timeout: float = 300) -> list[dict]:
    def check():
        now = items(page)
        bad = [i for i in now if i["state"] in ("refused", "failed") and i["state"] not in states]
        assert not bad, bad
        return now if all(i["state"] in states for i in now) else None

    return wait_for(check, f"uploads to reach {states}", timeout=timeout)


def server_view(page: Page, url: str) -> dict:
    """What the API recorded about an upload, asked with the page's own session."""
    return page.evaluate("async (url) => (await fetch(url)).json()", url)


def make_big_clips(d: Path) -> list[Path]:
    """High-bitrate clips (~25 MB): large against the browser's socket buffers, so progress is visible."""
    rate = ("-b:v", "40M", "-maxrate", "40M", "-bufsize", "80M")
    return [
        make_clip(d / "garden.mp4", size="1280x720", seconds=5, channels=2, extra=rate),
        make_clip(d / "street.mkv", size="960x540", seconds=4, audio=False, extra=rate),
    ]

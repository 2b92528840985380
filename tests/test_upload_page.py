"""The upload page in Debian's headless Chromium against the real stack: a creator signs up, uploads two
files with tus-js-client and watches both progress bars until both videos are ready; a connection cut
mid-PATCH and a page reload both resume from the server's offset; a refused file shows why.

The browser talks to the API through a small TCP proxy owned by the test: it slows uploads down enough to
watch progress, and can cut a connection in the middle of a PATCH body, as a dropped network would.
"""

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser import DESKTOP, PHONE, shoot
from tests.conftest import wait_for
from tests.media import make_clip

CHUNK_BYTES = 8 * 1024 * 1024  # upload.js's tus chunk size
ITEMS_JS = """() => window.streamifyUploads.items.map(i => ({
  name: i.file.name, state: i.state, progress: i.progress, videoId: i.videoId, videoStatus: i.videoStatus,
  error: i.error, url: i.upload && i.upload.url,
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


@pytest.fixture(scope="module")
def proxy(stack) -> Iterator[Proxy]:
    p = Proxy(stack.url)
    yield p
    p.close()


@pytest.fixture(scope="module")
def big_clips(tmp_path_factory) -> list[Path]:
    """High-bitrate clips (~25 MB): large against the browser's socket buffers, so progress is visible."""
    d = tmp_path_factory.mktemp("big")
    rate = ("-b:v", "40M", "-maxrate", "40M", "-bufsize", "80M")
    return [
        make_clip(d / "garden.mp4", size="1280x720", seconds=5, channels=2, extra=rate),
        make_clip(d / "street.mkv", size="960x540", seconds=4, audio=False, extra=rate),
    ]


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


def test_two_files_upload_with_progress_and_become_ready(stack, big_clips, browser, proxy):
    page = signed_up_page(browser, proxy, DESKTOP)
    files = big_clips
    page.set_input_files("#file-input", [str(f) for f in files])
    page.wait_for_selector(".upload-item >> nth=1")
    page.locator(".upload-item .f-title").nth(0).fill("First from the page")
    page.locator(".upload-item .f-description").nth(0).fill("uploaded with tus-js-client")
    page.locator(".upload-item .f-title").nth(1).fill("Second from the page")
    page.locator(".upload-item .f-visibility").nth(1).select_option("unlisted")

    proxy.rate = 3e6  # slow enough to watch the bars move
    page.click("#start-all")
    seen: list[list[float]] = [[], []]
    stats: set[tuple[bool, bool]] = set()
    shot = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = items(page)
        for i, item in enumerate(now):
            if item["state"] == "uploading":
                seen[i].append(item["progress"])
                stats.add((item["speed"].endswith("/s"), item["eta"].endswith("left")))
        if not shot and all(0.2 < i["progress"] < 0.8 for i in now):
            shoot(page, "upload-desktop-progress.png")
            shot = True
        if all(i["state"] not in ("queued", "uploading") for i in now):
            break
        time.sleep(0.1)
    proxy.rate = None
    for values in seen:  # each bar advanced through several values, never backwards
        middle = sorted({v for v in values if 0 < v < 1})
        assert len(middle) >= 3, values
        assert values == sorted(values), values
    assert (True, True) in stats, stats  # speed and time left were shown
    assert shot

    done = wait_items(page, {"ready"})
    for item, f in zip(done, files, strict=True):
        assert item["name"] == f.name and item["videoId"], item
    page.wait_for_selector(f'.upload-item a.watch[href="/watch/{done[0]["videoId"]}"]', state="visible")
    assert page.locator(".upload-item .state-text").nth(1).inner_text() == "Ready to watch."
    with httpx.Client(base_url=stack.url) as anonymous:
        first = anonymous.get(f"/api/v1/videos/{done[0]['videoId']}").json()
        second = anonymous.get(f"/api/v1/videos/{done[1]['videoId']}").json()
    assert (first["title"], first["description"], first["status"]) == (
        "First from the page",
        "uploaded with tus-js-client",
        "ready",
    )
    assert (second["title"], second["visibility"], second["status"]) == ("Second from the page", "unlisted", "ready")
    shoot(page, "upload-desktop.png")
    page.context.close()


def test_upload_cut_mid_patch_resumes_without_resending(clips, browser, proxy):
    page = signed_up_page(browser, proxy, DESKTOP)
    clip = clips["phone"]
    size = clip.stat().st_size
    page.set_input_files("#file-input", str(clip))
    proxy.rate = 3e6
    proxy.cut_after = 1_234_567  # the first PATCH dies after this many bytes
    cuts_before = proxy.cuts
    page.click(".upload-item .start")
    item = wait_items(page, {"ready"})[0]
    proxy.rate = None
    assert proxy.cuts == cuts_before + 1
    view = server_view(page, item["url"])
    # The server's own account: every byte written once; the second PATCH began where the cut left off.
    assert view["received_bytes"] == size, view
    assert len(view["patch_offsets"]) == 2 and view["patch_offsets"][0] == 0, view
    resumed_at = view["patch_offsets"][1]
    assert 0 < resumed_at < size and resumed_at % CHUNK_BYTES != 0, view
    assert view["state"] == "done" and view["video_id"] == item["videoId"]
    page.context.close()


def test_paused_upload_resumes_after_a_reload(big_clips, browser, proxy):
    page = signed_up_page(browser, proxy, DESKTOP)
    clip = big_clips[0]
    size = clip.stat().st_size
    page.set_input_files("#file-input", str(clip))
    page.fill(".upload-item .f-title", "Survives a reload")
    proxy.rate = 3e6
    page.click(".upload-item .start")
    wait_for(lambda: items(page)[0]["progress"] > 0.4, "some progress", timeout=60)
    page.click(".upload-item .pause")
    url = items(page)[0]["url"]
    proxy.rate = None
    paused_at = server_view(page, url)["offset"]  # waits for the aborted PATCH to finish writing
    assert 0 < paused_at < size

    page.reload()
    page.wait_for_selector("#unfinished", state="visible")
    assert clip.name in page.inner_text("#unfinished-list")
    page.set_input_files("#file-input", str(clip))
    page.wait_for_function("document.querySelector('.upload-item .start').textContent === 'Resume upload'")
    assert page.input_value(".upload-item .f-title") == "Survives a reload"  # metadata from the first try
    page.click(".upload-item .start")
    item = wait_items(page, {"ready"})[0]
    assert item["url"] == url  # the same upload, continued
    view = server_view(page, url)
    assert view["received_bytes"] == size, view  # nothing sent twice
    assert view["patch_offsets"][0] == 0 and paused_at in view["patch_offsets"], view
    page.context.close()


def test_phone_layout_and_refused_file(clips, browser, proxy, tmp_path):
    page = signed_up_page(browser, proxy, PHONE)
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video at all\n" * 1000)
    page.set_input_files("#file-input", [str(clips["720p_short"]), str(notes)])
    page.wait_for_selector(".upload-item >> nth=1")
    page.click("#start-all")
    page.wait_for_selector('.upload-item[data-state="refused"] .error-text', state="visible")
    error = page.locator('.upload-item[data-state="refused"] .error-text').inner_text()
    assert error.startswith("Refused: not a media file"), error
    wait_items(page, {"ready", "refused"})
    assert [i["state"] for i in items(page)] == ["ready", "refused"]
    # Nothing wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "upload-phone.png")
    page.context.close()

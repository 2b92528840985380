"""The upload page when the answer to an upload's last PATCH is lost (it carries the new video's id): the page
asks GET /api/v1/uploads/{id} what became of the upload. A lost connection there is retried and said on the
file; a server that never finishes checking the file is asked less and less often, and the page gives up
after 20 minutes with a message instead of asking every second for ever.

The real stack takes the upload. Playwright's routing stands in for what cannot be caused on demand: a lost
PATCH answer (the real answer, minus its Streamify-Video-Id header), dropped connections, and an upload
stuck in "ingesting" (the real status answer, rewritten); Playwright's clock runs the 20 minutes.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route

from tests.browser import DESKTOP
from tests.conftest import wait_for
from tests.media import make_clip
from tests.uploads import items, server_view, signed_up_page, wait_items

UPLOAD_URL = re.compile(r"/api/v1/uploads/[^/?#]+$")
FIRST_WAIT_MS = 1000  # upload.js INGEST_POLL_FIRST_MS
LONGEST_WAIT_MS = 15_000  # upload.js INGEST_POLL_MAX_MS
GIVE_UP_MS = 20 * 60 * 1000  # upload.js INGEST_GIVE_UP_MS (beyond the server's 15 min ingest timeout)
INGEST_JS = """() => { const i = window.streamifyUploads.items[0];
  return i && { state: i.state, ingest: i.ingest || null, text: i.el.querySelector('.state-text').textContent,
                error: i.el.querySelector('.error-text').textContent } }"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("ingest-wait") / "short.mp4", size="640x360", seconds=2)


def lose_video_id(route: Route) -> bool:
    """The last PATCH goes through, but the page never learns the video's id from its answer."""
    if route.request.method != "PATCH":
        return False
    response = route.fetch()
    headers = {k: v for k, v in response.headers.items() if k.lower() != "streamify-video-id"}
    route.fulfill(response=response, headers=headers)
    return True


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # an unhandled rejection lands here too
    return errors


def next_check(page: Page, seen: int) -> dict | None:
    """The upload once it asked again after `seen` checks, or gave up."""
    now = page.evaluate(INGEST_JS)
    return now if now["state"] == "failed" or (now["ingest"] or {}).get("checks", 0) > seen else None


def test_lost_answer_and_lost_connections_still_find_the_video(browser, stack, clip):
    page = signed_up_page(browser, stack, DESKTOP)  # straight to the API: no throttling wanted
    errors = watch_errors(page)
    drops = {"left": 2}

    def route(r: Route) -> None:
        if lose_video_id(r):
            return
        if r.request.method == "GET" and drops["left"]:
            drops["left"] -= 1
            r.abort("connectionfailed")
            return
        r.fallback()

    page.route(UPLOAD_URL, route)
    page.set_input_files("#file-input", str(clip))
    page.click(".upload-item .start")
    lost = wait_for(
        lambda: (v := page.evaluate(INGEST_JS))["text"].startswith("Connection lost") and v,
        "the page to say the connection was lost",
    )
    assert lost["state"] == "checking" and lost["text"] == "Connection lost while checking the file; retrying…", lost
    assert not lost["error"], lost

    item = wait_items(page, {"processing", "ready"}, timeout=120)[0]
    view = server_view(page, item["url"])
    assert view["state"] == "done" and item["videoId"] == view["video_id"], (item, view)
    assert page.evaluate(INGEST_JS)["ingest"]["checks"] == 3  # two dropped, the third answered
    page.wait_for_selector(f'.upload-item a.watch[href="/watch/{view["video_id"]}"]', state="visible")
    assert not errors, errors
    page.context.close()


def test_a_check_that_never_ends_backs_off_then_gives_up(browser, stack, clip):
    page = signed_up_page(browser, stack, DESKTOP)
    errors = watch_errors(page)
    page.clock.install()
    page.reload()
    page.wait_for_selector("#uploader", state="visible")
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)  # from here on, time moves only when the test says

    def route(r: Route) -> None:
        if lose_video_id(r):
            return
        if r.request.method == "GET":
            response = r.fetch()
            stuck = {**response.json(), "state": "ingesting", "video_id": None, "watch_url": None}
            r.fulfill(response=response, json=stuck)
            return
        r.fallback()

    page.route(UPLOAD_URL, route)
    page.set_input_files("#file-input", str(clip))
    page.click(".upload-item .start")

    waits: list[int] = []
    checks = 0
    while True:
        now = wait_for(lambda seen=checks: next_check(page, seen), "the next check of the upload", timeout=60)
        if now["state"] == "failed":
            break
        assert now["ingest"]["checks"] == checks + 1, (now, waits)
        assert now["state"] == "checking" and now["text"] == "Checking the file…", now
        checks = now["ingest"]["checks"]
        waits.append(now["ingest"]["waitMs"])
        page.clock.run_for(waits[-1])
        assert checks < 200, waits  # a page asking every second would pass 1200

    assert now["ingest"]["checks"] == checks + 1
    # Asked at once, then less and less often, never less often than every 15 s; the whole wait stays within
    # the bound and ends near it: about 80 questions in 20 minutes, not 1200.
    assert waits[0] == FIRST_WAIT_MS, waits
    assert waits == sorted(waits) and max(waits) == LONGEST_WAIT_MS, waits
    assert GIVE_UP_MS - LONGEST_WAIT_MS < sum(waits) <= GIVE_UP_MS, waits
    assert len(waits) < 100, waits
    assert now["error"] == (
        "Gave up after 20 minutes: the server was still checking the file. If the video is not in your library, "
        "upload the file again."
    ), now
    assert page.locator(".upload-item .error-text").is_visible()
    assert page.locator(".upload-item .watch").is_hidden()
    assert [i["state"] for i in items(page)] == ["failed"]
    assert not errors, errors
    page.context.close()

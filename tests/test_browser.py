"""Headless Chromium (Debian's, driven by Playwright) watches a video on the real stack: the page shows
processing progress, then hls.js plays the ladder from Azurite with no fatal error."""

from tests.browser import SHOTS
from tests.conftest import upload, wait_status


def test_watch_page_shows_progress_then_plays_the_ladder(stack, clips, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with stack.client() as client:
        r = upload(client, clips["1080p"], title="Browser test")
        assert r.status_code == 202, r.text
        video_id = r.json()["id"]
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        failed: list[str] = []
        page.on("requestfailed", lambda req: failed.append(req.url))
        # The site navigation asks who is signed in: 401 for this anonymous viewer is an answer, not a failure.
        page.on(
            "response",
            lambda resp: (
                resp.status >= 400
                and not resp.url.endswith("/api/v1/auth/me")
                and failed.append(f"{resp.status} {resp.url}")
            ),
        )
        page.goto(f"{stack.url}/watch/{video_id}")
        # While the worker encodes, the page says so (and does not try to play).
        page.wait_for_selector("#status-text", state="visible", timeout=10_000)
        assert any(w in page.inner_text("#status-text") for w in ("Processing", "Waiting")), page.inner_text("body")
        page.screenshot(path=str(SHOTS / "watch-processing.png"))
        assert wait_status(client, video_id)["status"] == "ready"

    # The same page, never reloaded, starts playing once the video is ready.
    page.wait_for_function("window.streamify && window.streamify.levels > 0", timeout=30_000)
    page.wait_for_function("document.getElementById('video').currentTime >= 3", timeout=60_000)
    state = page.evaluate(
        "({levels: window.streamify.levels, fatal: window.streamify.fatal, errors: window.streamify.errors,"
        " t: document.getElementById('video').currentTime, paused: document.getElementById('video').paused,"
        " options: [...document.querySelectorAll('.plyr__menu__container [data-plyr=quality] span')]"
        "  .map(s => s.firstChild.textContent)})"
    )
    assert state["levels"] >= 2, state
    assert state["fatal"] is None, state
    assert state["t"] >= 3 and not state["paused"], state
    assert {"1080p", "720p", "480p", "360p"} <= set(state["options"]), state
    assert not failed, failed
    page.screenshot(path=str(SHOTS / "watch-playing.png"))
    page.close()


def test_watch_page_for_unknown_video_says_so(stack, browser):
    page = browser.new_page()
    page.goto(f"{stack.url}/watch/00000000-0000-4000-8000-000000000000")
    page.wait_for_selector("#status-text", state="visible")
    page.wait_for_function("document.getElementById('status-text').textContent === 'This video is not available.'")
    page.close()

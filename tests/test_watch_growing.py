"""Progressive publish as a viewer sees it, in headless Chromium: a video plays while it is still encoding.

The encode is stepped by hand (tests/growing.py: real fMP4 ranges made by ffmpeg, the job_parts rows a
chunked encode writes) on an in-process install served over HTTP, so each step is a moment the test
chooses: not playable yet, the first range in, the next range in, ready.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser import shoot
from tests.growing import GrowingVideo, Media, creator, make_media, serving, uploaded
from tests.inprocess import LocalApp, local_app
from tests.media import make_clip
from tests.test_watch_page import Problems, faded_in, menu, new_page, overlay, player, sign_in, wait_time

SECONDS = 10.0  # three ranges: 0–4, 4–8, 8–end
EDGE_JS = """() => { const v = document.getElementById('video');
  return v.seekable.length ? v.seekable.end(v.seekable.length - 1) : 0 }"""


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Media:
    d = tmp_path_factory.mktemp("growing-media")
    src = make_clip(d / "source.mp4", size="640x360", seconds=SECONDS, channels=2)
    return make_media(src, SECONDS, d / "encoded")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[LocalApp, str]]:
    with local_app(tmp_path_factory.mktemp("growing-site")) as install, serving(install.app) as url:
        yield install, url


def new_video(install: LocalApp, media: Media, tmp_path: Path, title: str) -> tuple[str, GrowingVideo]:
    """A new creator's upload, planned and encoding; returns the creator's email and the video."""
    email, token = creator(install)
    source = make_clip(tmp_path / "upload.mp4", size="320x180", seconds=SECONDS, channels=2)
    return email, uploaded(install, media, token, title, source)


def api_video(install: LocalApp, video_id: uuid.UUID) -> dict:
    return install.client.get(f"/api/v1/videos/{video_id}").json()


def edge(page: Page) -> float:
    return page.evaluate(EDGE_JS)


def notice(page: Page) -> str | None:
    return page.evaluate("document.getElementById('encoding').hidden ? null : "
                         "document.getElementById('encoding-text').textContent")  # fmt: skip


def test_plays_while_encoding_and_carries_on_when_ready(site, media, browser, contexts, tmp_path):
    install, url = site
    _, video = new_video(install, media, tmp_path, "Growing talk")

    page = new_page(browser, contexts)
    problems = Problems(page)
    page.goto(f"{url}/watch/{video.video_id}")
    page.evaluate("window.sameDocument = true")  # gone if the page ever reloads

    # Encoding, nothing playable yet: today's processing message.
    page.wait_for_function("window.streamifyPlayer.message === 'processing'")
    assert overlay(page)["text"].startswith("Processing…"), overlay(page)
    assert notice(page) is None

    # The first range lands: the page switches to the player by itself and plays from the start.
    video.publish(0)
    assert api_video(install, video.video_id)["encoded_seconds"] == pytest.approx(4.0)
    page.wait_for_function("window.streamifyPlayer.levels > 0", timeout=30_000)
    page.wait_for_function("document.getElementById('video').currentTime > 0", polling=50, timeout=30_000)
    first = player(page)["t"]
    assert first < 1.5, first  # from the start, not the live edge (hls.js would start 3 target durations back)
    wait_time(page, first + 1.0)  # playback advances
    assert api_video(install, video.video_id)["status"] == "processing"
    assert overlay(page)["hidden"]
    assert notice(page) == "Still encoding: 0:04 of 0:10 ready"
    assert edge(page) == pytest.approx(4.0, abs=0.1)
    # The API lists renditions once ready; meanwhile the quality menu comes from the master playlist.
    assert [o["label"] for o in menu(page, "quality")][1:] == ["240p", "144p"]
    assert sorted(player(page)["labels"]) == ["144p", "240p"]
    # The bar spans the whole video; the part not encoded yet is hatched from the edge on.
    assert page.evaluate("window.streamifyPlayer.plyr.duration") == pytest.approx(SECONDS)
    assert page.inner_text(".plyr__time--duration").endswith("0:10")
    mark = page.evaluate("parseFloat(document.querySelector('.plyr__progress .encoding-edge').style.left)")
    assert mark == pytest.approx(40, abs=1)
    stage = page.locator("#stage").bounding_box()
    page.mouse.move(stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 3)  # Plyr shows its controls
    faded_in(page)
    shoot(page, "watch-growing.png", full_page=False)

    # A seek past the edge lands just before it, and playback goes on from there.
    page.evaluate("document.getElementById('video').currentTime = 9")
    page.wait_for_function("window.streamifyPlayer.clamped > 0")
    page.wait_for_function("!document.getElementById('video').seeking")
    assert 2.5 <= player(page)["t"] <= 4.0, player(page)
    assert "is ready so far" in page.inner_text("#encoding-detail") or page.inner_text("#encoding-detail") in (
        "",
        "Waiting for the next part to be encoded…",
    )

    # The next range lands: the player's seekable end grows on its next playlist refresh, no reload.
    video.publish(1)
    page.wait_for_function(f"({EDGE_JS})() >= 7.9", timeout=20_000)
    page.wait_for_function(
        "document.getElementById('encoding-text').textContent === 'Still encoding: 0:08 of 0:10 ready'",
        timeout=10_000,
    )
    wait_time(page, 4.5)  # it plays on across the seam between the ranges
    assert page.evaluate("window.streamifyPlayer.hls.levels[window.streamifyPlayer.hls.currentLevel].details.live")

    # Ready: the notice goes, hls.js finds ENDLIST on its next refresh, and playback carries on to the end.
    video.finish()
    assert api_video(install, video.video_id)["status"] == "ready"
    page.wait_for_selector("#encoding", state="hidden", timeout=10_000)
    page.wait_for_function(
        "(() => { const h = window.streamifyPlayer.hls; const l = h.levels[h.currentLevel];"
        " return l && l.details && !l.details.live })()",
        timeout=15_000,
    )
    wait_time(page, 8.5)  # past the second range's end: the last range plays too
    assert edge(page) == pytest.approx(SECONDS, abs=0.1)
    assert page.evaluate("window.sameDocument") is True
    state = player(page)
    assert state["fatal"] is None and state["message"] is None, state
    assert not problems.seen, problems.seen

    # Opened now, it is an ordinary ready video: from the start, no notice, no hatching, the media's duration.
    again = new_page(browser, contexts)
    again_problems = Problems(again)  # no storyboard request: the API names none before the track exists
    again.goto(f"{url}/watch/{video.video_id}")
    again.wait_for_function("document.getElementById('video').currentTime > 0", polling=50, timeout=30_000)
    assert player(again)["t"] < 1.5, player(again)
    assert notice(again) is None and again.locator(".encoding-edge").count() == 0
    assert again.evaluate("window.streamifyPlayer.plyr.duration") == pytest.approx(SECONDS, abs=0.1)
    live = "(() => { const h = window.streamifyPlayer.hls; return h.levels[h.currentLevel].details.live })()"
    assert not again.evaluate(live)
    assert not again_problems.seen, again_problems.seen


def test_start_position_of_a_shared_link_stops_at_the_edge(site, media, browser, contexts, tmp_path):
    """?t= beyond what is encoded starts just before the edge instead of waiting on nothing."""
    install, url = site
    _, video = new_video(install, media, tmp_path, "Shared early")
    video.publish(0)
    page = new_page(browser, contexts)
    problems = Problems(page)
    page.goto(f"{url}/watch/{video.video_id}?t=8")
    page.wait_for_function("document.getElementById('video').currentTime > 0", polling=50, timeout=30_000)
    assert 2.0 <= player(page)["t"] <= 4.0, player(page)  # in the last encoded segment, playing
    assert notice(page) == "Still encoding: 0:04 of 0:10 ready"
    assert not problems.seen, problems.seen


def test_library_says_playable_and_links_to_watch(site, media, browser, contexts, tmp_path):
    install, url = site
    email, video = new_video(install, media, tmp_path, "Half done")
    page = new_page(browser, contexts)
    problems = Problems(page)
    sign_in(page, url, email)
    page.goto(f"{url}/library")
    row = page.locator(f'.lib-item[data-id="{video.video_id}"]')
    row.wait_for()
    assert not row.locator(".playable").is_visible()  # encoding, nothing plays yet

    video.publish(0)  # the page polls: no reload
    row.locator(".playable").wait_for(timeout=10_000)
    assert row.locator(".playable-text").inner_text() == "Playable · 0:04 of 0:10 encoded"
    assert row.locator(".badge.status").inner_text().startswith("Processing")
    video.publish(1)
    page.wait_for_function(
        "id => document.querySelector(`.lib-item[data-id='${id}'] .playable-text`).textContent"
        " === 'Playable · 0:08 of 0:10 encoded'",
        arg=str(video.video_id),
        timeout=10_000,
    )
    shoot(page, "library-playable.png")
    row.locator(".watch-now").click()
    page.wait_for_url(f"{url}/watch/{video.video_id}")
    page.wait_for_function("document.getElementById('video').currentTime > 0.5", timeout=30_000)
    assert notice(page) == "Still encoding: 0:08 of 0:10 ready"

    video.finish()
    page.goto(f"{url}/library")
    page.wait_for_selector(f'.lib-item[data-id="{video.video_id}"][data-status="ready"]')
    assert not page.locator(f'.lib-item[data-id="{video.video_id}"] .playable').is_visible()
    assert not problems.seen, problems.seen

"""The watch page in Debian's headless Chromium against the real stack (PostgreSQL, Redis, Azurite, a Celery
worker): the issue's creator journey from sign-up to playback, then the player's parts one by one: the
quality menu wired to hls.js, storyboard previews on the scrub bar, captions attached by the creator,
keyboard shortcuts, the share link, and the messages for processing, failed and unavailable videos.
"""

import re
import secrets
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser import DESKTOP, PHONE, shoot
from tests.conftest import upload, wait_finished, wait_status
from tests.media import make_clip
from tests.uploads import items, wait_items

PASSWORD = "correct horse battery"  # what stack.new_user() gives every account
HOSTILE = "<img src=x onerror=window.pwned=1>Français"
# Allowed in a label, and exactly what an HTML escape layer could mangle (&#39;, &amp;#39;) on its way to the menu.
FRENCH = "Français (l'équipe) — «VF»"
UNAVAILABLE = "This video is not available."
SETTINGS = "button[data-plyr='settings'][aria-controls]"  # the gear; its menu's items are data-plyr=settings too
PLAYER_JS = """() => {
  const s = window.streamifyPlayer, v = document.getElementById('video');
  return {levels: s.levels, labels: s.labels, playing: s.playingLevel, loaded: s.loadedLevels.slice(),
          auto: s.hls ? s.hls.autoLevelEnabled : null, manual: s.hls ? s.hls.manualLevel : null,
          subtitle: s.hls ? s.hls.subtitleTrack : null, t: v.currentTime, paused: v.paused, muted: v.muted,
          fatal: s.fatal, message: s.message, current: document.getElementById('current-level').textContent};
}"""
# A menu item's own words: its first text node (a badge such as "HD" or "EN" may follow it).
MENU_JS = """(type) => [...document.querySelectorAll(`.plyr__menu__container [data-plyr="${type}"]`)]
  .map(b => ({label: b.querySelector('span').firstChild.textContent.trim(), value: b.value,
              checked: b.getAttribute('aria-checked') === 'true'}))"""
CAPTIONS = """WEBVTT

00:00:00.000 --> 00:00:05.000
First words on screen

00:00:05.000 --> 00:01:00.000
Second words on screen
"""


class Problems:
    """JavaScript errors, failed requests and error responses a page met, except those a test expects."""

    def __init__(self, page: Page, allowed: tuple[str, ...] = ()) -> None:
        self.seen: list[str] = []
        # Signed-out visitors: the site navigation asks who is signed in and gets 401.
        allowed = (*allowed, "401 /api/v1/auth/me")
        page.on("pageerror", lambda e: self.seen.append(f"pageerror {e}"))
        # ERR_ABORTED is a request the page gave up itself (leaving for another page, hls.js dropping a fragment
        # load when the level changes); refused, reset or blocked requests still count.
        page.on(
            "requestfailed",
            lambda r: r.failure != "net::ERR_ABORTED" and self.seen.append(f"failed {r.url} {r.failure}"),
        )

        def response(r) -> None:
            line = f"{r.status} {httpx.URL(r.url).path}"
            if r.status >= 400 and not any(line.startswith(a) for a in allowed):
                self.seen.append(line)

        page.on("response", response)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """20 s at 720p: ten storyboard tiles, and time to seek and share a position."""
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", size="1280x720", seconds=20, channels=2)


@pytest.fixture(scope="module")
def ready_video(stack, long_clip) -> dict:
    """A public, ready video of the stack's default creator, as its owner sees it."""
    with stack.client() as client:
        r = client.post(
            "/api/v1/videos",
            files={"file": (long_clip.name, long_clip.read_bytes())},
            data={"title": "Colour bars", "description": "Twenty seconds of test pattern.\nSecond line."},
        )
        assert r.status_code == 202, r.text
        return wait_finished(client, r.json()["id"])


def new_page(browser: Browser, contexts: list, viewport: dict = DESKTOP, **kwargs) -> Page:
    context = browser.new_context(viewport=viewport, **kwargs)
    contexts.append(context)
    return context.new_page()


def sign_in(page: Page, base: str, email: str) -> None:
    """The session cookie for a stack.new_user() account, set in the page's own browser context."""
    r = page.context.request.post(f"{base}/api/v1/auth/login", data={"email": email, "password": PASSWORD})
    assert r.status == 200, r.text()


def player(page: Page) -> dict:
    return page.evaluate(PLAYER_JS)


def menu(page: Page, type_: str) -> list[dict]:
    return page.evaluate(MENU_JS, type_)


def watch(page: Page, base: str, video_id: str) -> None:
    page.goto(f"{base}/watch/{video_id}")
    page.wait_for_function("window.streamifyPlayer && window.streamifyPlayer.levels > 0", timeout=60_000)


def wait_time(page: Page, beyond: float) -> None:
    page.wait_for_function(f"document.getElementById('video').currentTime > {beyond}", timeout=60_000)


def toggle_play(page: Page, paused: bool) -> None:
    """Press K (play/pause) and wait for the video to get there."""
    page.keyboard.press("k")
    page.wait_for_function(f"document.getElementById('video').paused === {str(paused).lower()}")


def settled_box(page: Page, selector: str) -> dict:
    """Where an element is once it stopped moving (Plyr's controls slide in and out)."""
    last = None
    for _ in range(50):
        box = page.locator(selector).bounding_box()
        if box is not None and box == last:
            return box
        last = box
        time.sleep(0.1)
    raise AssertionError(f"{selector} never settled: {last}")


def faded_in(page: Page) -> None:
    """Wait for Plyr's fades (CSS transitions of its controls and previews) to end: a screenshot shows them whole."""
    page.wait_for_function(
        "document.getAnimations().every(a => a.playState !== 'running' || a.effect.getTiming().iterations === Infinity)"
    )


def open_settings(page: Page, submenu: str) -> None:
    """Plyr's settings menu (left open on its first pane after a choice), then one of its panes."""
    button = page.locator(SETTINGS)
    if button.get_attribute("aria-expanded") != "true":
        button.click()
    pane = page.locator(f".plyr__menu__container [id$='-{submenu.lower()}']")
    if not pane.is_visible():
        back = page.locator(".plyr__menu__container .plyr__control--back:visible")
        if back.count():
            back.click()
        page.click(f".plyr__menu__container [data-plyr='settings']:has-text('{submenu}')")
    pane.wait_for(state="visible")


# ---- the journey --------------------------------------------------------------------------------


def test_creator_signs_up_uploads_two_files_and_plays_one(stack, browser, contexts, proxy, big_clips):
    """A creator signs up, uploads two files from the upload page, watches both progress bars, sees them
    become ready in the library, and plays one on the watch page: playback advances, the quality menu lists
    every rendition, choosing one makes hls.js load that level."""
    page = new_page(browser, contexts)
    base = proxy.url  # every byte goes through the throttling proxy
    email = f"journey-{secrets.token_hex(4)}@example.test"

    # Sign up from the site's own pages, starting at the upload page.
    page.goto(f"{base}/upload")
    page.wait_for_selector("#signin", state="visible")
    page.click("#sign-up")
    page.wait_for_selector("#auth-form")
    page.fill("#email", email)
    page.fill("#display_name", "Journey Creator")
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{base}/upload")
    page.wait_for_selector("#uploader", state="visible")
    problems = Problems(page)  # from here on (the sign-up form's own request ends as it navigates away)

    # Two files, both progress bars moving.
    page.set_input_files("#file-input", [str(f) for f in big_clips])
    page.wait_for_selector(".upload-item >> nth=1")
    page.locator(".upload-item .f-title").nth(0).fill("Garden walk")
    page.locator(".upload-item .f-title").nth(1).fill("Street corner")
    proxy.rate = 3e6
    page.click("#start-all")
    bars: list[list[float]] = [[], []]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        now = items(page)
        values = page.locator(".upload-item progress.bar").evaluate_all("bars => bars.map(b => b.value)")
        for i, item in enumerate(now):
            if item["state"] == "uploading":
                bars[i].append(values[i])
        if all(i["state"] not in ("queued", "uploading") for i in now):
            break
        time.sleep(0.1)
    proxy.rate = None
    for seen in bars:  # each bar showed several values on its way, never going back
        assert len({v for v in seen if 0 < v < 1}) >= 3, seen
        assert seen == sorted(seen), seen
    uploaded = wait_items(page, {"processing", "ready"})
    ids = [item["videoId"] for item in uploaded]
    assert all(ids), uploaded

    # The library shows both, and both become ready there.
    page.click('.site-nav a[href="/library"]')
    page.wait_for_url(f"{base}/library")
    for video_id in ids:
        page.wait_for_selector(f'.lib-item[data-id="{video_id}"][data-status="ready"]', timeout=300_000)
        assert page.locator(f'.lib-item[data-id="{video_id}"] .badge.status').inner_text() == "Ready"
    assert page.locator(f'.lib-item[data-id="{ids[0]}"] .lib-title').inner_text() == "Garden walk"

    # Play the first one from its library row.
    link = page.locator(f'.lib-item[data-id="{ids[0]}"] a.watch')
    assert link.get_attribute("href") == f"/watch/{ids[0]}"
    link.click()
    page.wait_for_url(lambda url: url.startswith(f"{base}/watch/{ids[0]}"), timeout=10_000)
    page.wait_for_function("window.streamifyPlayer && window.streamifyPlayer.levels > 0", timeout=60_000)
    video = page.evaluate(f"async () => (await fetch('/api/v1/videos/{ids[0]}')).json()")
    assert page.inner_text("#title") == "Garden walk"
    assert page.inner_text("#owner") == "by Journey Creator"
    wait_time(page, 1.0)
    before = player(page)["t"]
    wait_time(page, before + 1.0)  # playback advances

    toggle_play(page, paused=True)
    open_settings(page, "Quality")
    state = player(page)
    options = menu(page, "quality")
    names = [r["name"] for r in video["renditions"]]
    assert len(names) >= 3, names
    playing = state["labels"][state["playing"]]
    # Auto first, saying what it plays, then every rendition, best first; hls.js has a level for each.
    assert [o["label"] for o in options] == [f"Auto ({playing})", *names], options
    assert sorted(state["labels"]) == sorted(names), state
    assert options[0]["checked"] and state["auto"], options
    page.evaluate("window.scrollTo(0, 0)")
    settled_box(page, ".plyr__menu__container")  # the menu grows to its pane's size
    shoot(page, "watch-quality-menu.png", full_page=False)

    choice = next(name for name in reversed(names) if name != playing)  # the lowest one not on screen
    level = state["labels"].index(choice)
    loaded_before = len(state["loaded"])
    page.click(f".plyr__menu__container [data-plyr='quality']:has-text('{choice}')")
    toggle_play(page, paused=False)
    page.wait_for_function(
        f"window.streamifyPlayer.playingLevel === {level} && "
        f"window.streamifyPlayer.loadedLevels.slice({loaded_before}).includes({level})",
        timeout=60_000,
    )
    after = player(page)
    assert after["manual"] == level and after["auto"] is False, after
    assert after["current"] == f"Playing {choice}", after
    switched_at = after["t"]
    wait_time(page, switched_at + 0.5)  # and it keeps playing on the chosen level
    assert player(page)["playing"] == level
    if not player(page)["paused"]:  # (a short clip may have ended by now)
        toggle_play(page, paused=True)
    open_settings(page, "Quality")
    page.click(".plyr__menu__container .plyr__control--back:visible")  # the menu's first pane shows the choice
    quality = page.locator(".plyr__menu__container [data-plyr='settings']:has-text('Quality')")
    assert quality.inner_text().split() == ["Quality", choice]
    assert [o["label"] for o in menu(page, "quality") if o["checked"]] == [choice]
    assert player(page)["fatal"] is None
    assert not problems.seen, problems.seen


# ---- quality menu, Auto and back ------------------------------------------------------------------------


def test_quality_menu_shows_auto_and_goes_back_to_it(stack, browser, contexts, ready_video):
    page = new_page(browser, contexts)
    problems = Problems(page)
    watch(page, stack.url, ready_video["id"])
    wait_time(page, 1.0)
    toggle_play(page, paused=True)
    open_settings(page, "Quality")
    names = [r["name"] for r in ready_video["renditions"]]
    labels = [o["label"] for o in menu(page, "quality")]
    assert labels[1:] == names and re.fullmatch(r"Auto \(\d+p\)", labels[0]), labels

    page.click(f".plyr__menu__container [data-plyr='quality']:has-text('{names[-1]}')")
    level = player(page)["labels"].index(names[-1])
    toggle_play(page, paused=False)
    page.wait_for_function(f"window.streamifyPlayer.playingLevel === {level}", timeout=60_000)
    assert player(page)["current"] == f"Playing {names[-1]}"

    toggle_play(page, paused=True)
    open_settings(page, "Quality")
    page.click(".plyr__menu__container [data-plyr='quality'][value='0']")
    assert player(page)["auto"] is True
    toggle_play(page, paused=False)
    # Back in Auto the menu says which level hls.js plays.
    page.wait_for_function("document.getElementById('current-level').textContent.endsWith('(auto)')")
    state = player(page)
    assert state["current"] == f"Playing {state['labels'][state['playing']]} (auto)", state
    assert menu(page, "quality")[0]["label"] == f"Auto ({state['labels'][state['playing']]})"
    assert not problems.seen, problems.seen


# ---- storyboard -----------------------------------------------------------------------------------------


def parse_storyboard(text: str) -> list[tuple[float, float, str, tuple[int, int, int, int]]]:
    def seconds(stamp: str) -> float:
        h, m, s = stamp.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    cues = []
    for start, end, url, xywh in re.findall(r"(\S+) --> (\S+)\n(\S+)#xywh=(\S+)", text):
        x, y, w, h = (int(n) for n in xywh.split(","))
        cues.append((seconds(start), seconds(end), url, (x, y, w, h)))
    return cues


def test_seeking_shows_storyboard_thumbnails(stack, browser, contexts, ready_video):
    page = new_page(browser, contexts)
    problems = Problems(page)
    watch(page, stack.url, ready_video["id"])
    track = page.evaluate(f"async () => (await fetch({ready_video['storyboard_url']!r})).text()")
    cues = parse_storyboard(track)
    assert len(cues) >= 8, track
    wait_time(page, 0.5)
    toggle_play(page, paused=True)  # the controls stay on screen
    duration = page.evaluate("document.getElementById('video').duration")
    bar = settled_box(page, ".plyr__progress")  # the controls slide in when the video pauses

    for k in (2, len(cues) - 2):
        start, end, url, (x, y, w, h) = cues[k]
        at = (start + end) / 2
        page.mouse.move(bar["x"] + bar["width"] * at / duration, bar["y"] + bar["height"] / 2)
        page.wait_for_function(
            """(k) => { const img = document.querySelector(
                 '.plyr__preview-thumb--is-shown .plyr__preview-thumb__image-container img:last-of-type');
               return img && img.dataset.index === String(k) && img.complete && img.naturalWidth > 0; }""",
            arg=k,
        )
        shown = page.evaluate(
            """() => { const box = document.querySelector('.plyr__preview-thumb__image-container');
               const img = box.querySelector('img:last-of-type');
               return {src: img.src, left: parseFloat(img.style.left), top: parseFloat(img.style.top),
                       height: box.clientHeight, width: box.clientWidth,
                       time: document.querySelector('.plyr__preview-thumb__time-container').innerText}; }"""
        )
        # The sprite sheet of this cue, moved so that exactly the cue's x, y, w, h rectangle shows.
        assert shown["src"] == url, (shown, cues[k])
        scale = shown["height"] / h
        assert shown["left"] == pytest.approx(-x * scale, abs=0.5), (shown, cues[k])
        assert shown["top"] == pytest.approx(-y * scale, abs=0.5), (shown, cues[k])
        assert shown["width"] == pytest.approx(w * scale, abs=1.5), (shown, cues[k])
        minutes, secs = (int(n) for n in shown["time"].split(":"))
        assert int(start) <= minutes * 60 + secs < end, (shown, cues[k])  # the hovered time, inside the cue
        if k == 2:
            faded_in(page)  # the preview
            shoot(page, "watch-storyboard.png", full_page=False)
    assert not problems.seen, problems.seen


# ---- captions -------------------------------------------------------------------------------------------


def test_caption_attached_by_the_creator_is_selectable_and_renders(stack, browser, contexts, ready_video, tmp_path):
    video_id = ready_video["id"]
    vtt = tmp_path / "captions.vtt"
    vtt.write_text(CAPTIONS)
    with stack.client() as owner:

        def attach(language: str, label: str):
            with vtt.open("rb") as f:
                return owner.post(
                    f"/api/v1/videos/{video_id}/captions",
                    files={"file": ("captions.vtt", f, "text/vtt")},
                    data={"language": language, "label": label},
                )

        # Markup never reaches a player's menu (Plyr writes labels as HTML, Safari's native tracks unescaped).
        r = attach("fr", HOSTILE)
        assert r.status_code == 422 and r.json()["detail"].startswith("label must not contain '<' or '>'"), r.text
        assert owner.get(f"/api/v1/videos/{video_id}/captions").json() == []
        for language, label in (("en", "English"), ("fr", FRENCH)):
            r = attach(language, label)
            assert r.status_code == 201, r.text

    page = new_page(browser, contexts)  # a viewer who is not signed in
    problems = Problems(page)
    watch(page, stack.url, video_id)
    page.wait_for_function("window.streamifyPlayer.hls.subtitleTracks.length === 2")
    wait_time(page, 0.5)
    toggle_play(page, paused=True)
    open_settings(page, "Captions")
    options = menu(page, "language")
    # Plyr's "Disabled", then each track hls.js made from the master playlist, its label shown as written.
    assert [o["label"] for o in options] == ["Disabled", "English", FRENCH], options
    assert player(page)["subtitle"] == -1

    page.click(".plyr__menu__container [data-plyr='language']:has-text('English')")
    english = page.evaluate("window.streamifyPlayer.hls.subtitleTracks.findIndex(t => t.lang === 'en')")
    assert player(page)["subtitle"] == english
    toggle_play(page, paused=False)
    page.wait_for_function(
        "document.querySelector('.plyr--captions-active .plyr__caption')?.textContent === 'First words on screen'",
        timeout=30_000,
    )
    shoot(page, "watch-player-captions.png")
    page.keyboard.press("c")  # off
    page.wait_for_function("!document.querySelector('.plyr--captions-active')")
    assert player(page)["subtitle"] == -1
    page.keyboard.press("c")  # on again, the same language
    page.wait_for_function("document.querySelector('.plyr--captions-active .plyr__caption')")
    assert player(page)["subtitle"] == english
    assert not problems.seen, problems.seen


# ---- keyboard and share ---------------------------------------------------------------------------------


def test_keyboard_shortcuts_and_share_link(stack, browser, contexts, ready_video):
    page = new_page(browser, contexts, permissions=["clipboard-read", "clipboard-write"])
    problems = Problems(page)
    base = stack.url
    watch(page, base, ready_video["id"])
    wait_time(page, 1.0)

    toggle_play(page, paused=True)  # k
    page.keyboard.press(" ")
    page.wait_for_function("!document.getElementById('video').paused")
    page.keyboard.press(" ")
    page.wait_for_function("document.getElementById('video').paused")
    t0 = player(page)["t"]
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"Math.abs(document.getElementById('video').currentTime - {t0 + 5}) < 0.3")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"Math.abs(document.getElementById('video').currentTime - {t0 + 10}) < 0.3")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"Math.abs(document.getElementById('video').currentTime - {t0 + 5}) < 0.3")
    page.keyboard.press("m")
    page.wait_for_function("document.getElementById('video').muted")
    page.keyboard.press("m")
    page.wait_for_function("!document.getElementById('video').muted")
    page.keyboard.press("f")
    page.wait_for_function("window.streamifyPlayer.plyr.fullscreen.active")
    page.keyboard.press("f")
    page.wait_for_function("!window.streamifyPlayer.plyr.fullscreen.active")
    assert not page.evaluate("document.getElementById('shortcuts').open")
    page.keyboard.press("?")
    assert page.evaluate("document.getElementById('shortcuts').open")
    assert "Play / pause" in page.inner_text("#shortcuts")

    # Share: the watch URL, and with "Start at" the position the video was paused at.
    at = int(player(page)["t"])
    page.click("#share-button")
    page.wait_for_selector("#share-panel", state="visible")
    plain = f"{base}/watch/{ready_video['id']}"
    assert page.input_value("#share-url") == plain
    # Typing into a field never reaches the player: K in the link field does not start the video.
    page.focus("#share-url")
    page.keyboard.press("k")
    page.keyboard.press("ArrowRight")
    time.sleep(0.3)
    assert player(page)["paused"] and int(player(page)["t"]) == at
    page.check("#share-start")
    assert page.inner_text("#share-time") == f"0:{at:02d}"
    page.click("#share-copy")
    page.wait_for_selector("#share-done:has-text('Link copied.')")
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == f"{plain}?t={at}" == page.input_value("#share-url")

    other = new_page(browser, contexts)
    other_problems = Problems(other)
    other.goto(link)
    assert other.evaluate("window.streamifyPlayer.startAt") == at
    # It starts at the shared position: the first time the video reports past 0 is already there.
    other.wait_for_function("document.getElementById('video').currentTime > 0", timeout=60_000, polling=50)
    assert player(other)["t"] >= at - 0.25, player(other)
    wait_time(other, at + 1.0)
    assert not problems.seen and not other_problems.seen, (problems.seen, other_problems.seen)


# ---- messages -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_clip(tmp_path_factory) -> Path:
    """An MP4 whose index is intact but whose media data is cut: only the encode finds out."""
    d = tmp_path_factory.mktemp("broken")
    clip = make_clip(d / "whole.mp4", size="640x360", seconds=8, channels=2, extra=("-movflags", "+faststart"))
    cut = d / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: int(clip.stat().st_size * 0.4)])
    return cut


def overlay(page: Page) -> dict:
    return page.evaluate(
        """() => ({kind: document.getElementById('overlay').dataset.kind,
                   hidden: document.getElementById('overlay').hidden,
                   text: document.getElementById('status-text').textContent,
                   detail: document.getElementById('status-detail').hidden ? ''
                           : document.getElementById('status-detail').textContent,
                   bar: document.getElementById('status-progress').hidden ? null
                        : document.getElementById('status-progress').value,
                   details: !document.getElementById('details').hidden})"""
    )


def test_processing_shows_live_progress_then_plays(stack, clips, browser, contexts):
    with stack.client() as client:
        r = upload(client, clips["1080p"], title="Still cooking")
        assert r.status_code == 202, r.text
        video_id = r.json()["id"]
    page = new_page(browser, contexts)
    problems = Problems(page)
    page.goto(f"{stack.url}/watch/{video_id}")
    percents: set[int] = set()
    shot = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = overlay(page)
        if state["hidden"]:
            break
        if state["kind"] is None:  # before the first answer from the API
            assert state["text"] == "Loading…", state
            time.sleep(0.1)
            continue
        assert state["kind"] == "processing", state
        match = re.fullmatch(r"Processing… (\d+)%", state["text"])
        if match:
            percents.add(int(match.group(1)))
            assert state["bar"] == pytest.approx(int(match.group(1)) / 100, abs=0.006), state
            if not shot and 0 < int(match.group(1)) < 100:
                shoot(page, "watch-processing.png")
                shot = True
        else:
            assert state["text"] == "Waiting for a transcoder…", state
        time.sleep(0.2)
    assert len(percents) >= 2, percents  # the number moved while the page was open
    assert page.inner_text("#title") == "Still cooking"
    page.wait_for_function("window.streamifyPlayer.levels > 0", timeout=60_000)
    wait_time(page, 1.0)  # and it plays by itself, never reloaded
    labels = [o["label"] for o in menu(page, "quality")]
    assert labels[1:5] == ["1080p", "720p", "480p", "360p"], labels  # the 1080p source's ladder, best first
    assert player(page)["fatal"] is None
    assert not problems.seen, problems.seen


def test_failed_video_tells_its_owner_why_and_others_only_that_it_failed(stack, browser, contexts, broken_clip):
    email, token = stack.new_user()
    with stack.client(token) as client:
        r = upload(client, broken_clip, title="Broken upload")
        assert r.status_code == 202, r.text
        video = wait_status(client, r.json()["id"])
    assert video["status"] == "failed" and "truncated or corrupt" in video["error"], video

    owner = new_page(browser, contexts)
    sign_in(owner, stack.url, email)
    owner.goto(f"{stack.url}/watch/{video['id']}")
    owner.wait_for_function("window.streamifyPlayer.message === 'failed'")
    seen = overlay(owner)
    assert seen["text"] == "Processing failed." and seen["detail"] == f"Reason: {video['error']}", seen
    assert owner.inner_text("#title") == "Broken upload"
    shoot(owner, "watch-failed.png")

    viewer = new_page(browser, contexts)
    viewer.goto(f"{stack.url}/watch/{video['id']}")
    viewer.wait_for_function("window.streamifyPlayer.message === 'failed'")
    seen = overlay(viewer)
    assert seen["text"] == "This video could not be processed." and seen["detail"] == "", seen
    assert "truncated" not in viewer.inner_text("body")
    # The reason is the owner's: the API does not give it to anyone else either.
    with stack.client(anonymous=True) as anonymous:
        assert anonymous.get(f"/api/v1/videos/{video['id']}").json()["error"] is None


def test_missing_and_private_videos_get_the_same_message(stack, clips, browser, contexts):
    email, token = stack.new_user()
    with stack.client(token) as client:
        r = client.post(
            "/api/v1/videos",
            files={"file": (clips["720p_short"].name, clips["720p_short"].read_bytes())},
            data={"title": "Only mine", "visibility": "private"},
        )
        assert r.status_code == 202, r.text
        private = wait_status(client, r.json()["id"])
    assert private["status"] == "ready", private["error"]

    messages = []
    for video_id in ("00000000-0000-4000-8000-000000000000", private["id"]):  # missing, then someone's private
        page = new_page(browser, contexts, viewport=PHONE)
        problems = Problems(page, allowed=("404 /api/v1/videos/",))
        page.goto(f"{stack.url}/watch/{video_id}")
        page.wait_for_function("window.streamifyPlayer.message === 'unavailable'")
        messages.append(overlay(page))
        assert page.title() == "Video not available · Streamify"
        assert "Only mine" not in page.inner_text("body")
        assert not problems.seen, problems.seen
    assert messages[0] == messages[1], messages  # nothing tells a private video from a missing one
    assert messages[0]["text"] == UNAVAILABLE and not messages[0]["details"], messages
    shoot(page, "watch-unavailable-phone.png")

    # Signed in as someone else: still the same message. Its owner plays it.
    other_email, _ = stack.new_user()
    page = new_page(browser, contexts)
    sign_in(page, stack.url, other_email)
    page.goto(f"{stack.url}/watch/{private['id']}")
    page.wait_for_function("window.streamifyPlayer.message === 'unavailable'")
    assert overlay(page) == messages[0]

    page = new_page(browser, contexts)
    problems = Problems(page)
    sign_in(page, stack.url, email)
    watch(page, stack.url, private["id"])
    wait_time(page, 1.0)
    assert page.inner_text("#visibility") == "Private"
    page.click("#share-button")
    assert page.is_visible("#share-note")  # the plain link opens it for its owner only
    assert not problems.seen, problems.seen

    # The owner's expiring link plays it for anyone holding it, and sharing from there keeps the token.
    with stack.client(token) as client:
        link = client.post(f"/api/v1/videos/{private['id']}/playback-token", json={}).json()
    page = new_page(browser, contexts)
    problems = Problems(page)
    page.goto(f"{stack.url}{link['watch_url']}")
    page.wait_for_function("window.streamifyPlayer.levels > 0", timeout=60_000)
    wait_time(page, 1.0)
    assert page.inner_text("#title") == "Only mine"
    page.click("#share-button")
    assert page.input_value("#share-url") == f"{stack.url}{link['watch_url']}"
    assert not page.is_visible("#share-note")
    assert not problems.seen, problems.seen


# ---- layout ---------------------------------------------------------------------------------------------


def test_watch_page_at_desktop_and_phone_width(stack, browser, contexts, ready_video):
    for viewport, name in ((DESKTOP, "watch-desktop.png"), (PHONE, "watch-phone.png")):
        page = new_page(browser, contexts, viewport=viewport)
        problems = Problems(page)
        watch(page, stack.url, ready_video["id"])
        wait_time(page, 2.0)
        toggle_play(page, paused=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        stage = settled_box(page, "#stage")
        controls = settled_box(page, ".plyr__controls")
        # The player spans the content width at 16:9, its controls inside it and on screen.
        assert stage["width"] >= min(viewport["width"], 1100) - 2 * 16 - 1
        assert stage["height"] == pytest.approx(stage["width"] * 9 / 16, abs=2)
        assert (
            controls["x"] >= stage["x"] - 0.5 and controls["x"] + controls["width"] <= stage["x"] + stage["width"] + 0.5
        )
        assert page.locator(SETTINGS).is_visible()
        assert page.inner_text("#title") == "Colour bars"
        assert page.inner_text("#description") == "Twenty seconds of test pattern.\nSecond line."
        poster = page.evaluate("document.querySelector('.plyr__poster').style.backgroundImage")
        assert ready_video["poster_url"].split("?")[0] in poster, poster
        page.mouse.move(viewport["width"] / 2, stage["y"] + stage["height"] / 3)
        faded_in(page)
        shoot(page, name)
        assert not problems.seen, problems.seen

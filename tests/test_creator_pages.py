"""The creator's and the viewer's pages in Debian's headless Chromium against the real stack (PostgreSQL,
Redis, Azurite, a Celery worker): sign up / sign in / sign out, the library (live progress, search, pages,
inline edit, delete with a confirmation, captions), the public index, and what another account or an
anonymous viewer can reach. Titles are hostile: an `<img onerror>` title must stay text.
"""

import re
import secrets
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import DESKTOP, PHONE, shoot
from tests.conftest import wait_for, wait_status
from tests.media import make_clip

PASSWORD = "correct horse battery"  # what stack.new_user() gives every account
HOSTILE = "<img src=x onerror=alert(1)>"
LABEL = "English (Tom's cut) — SDH"  # what a caption label may still hold: apostrophes, any script, dashes


@pytest.fixture(scope="module")
def small_clips(tmp_path_factory) -> list[Path]:
    """Short, small clips: real media the worker turns ready in seconds."""
    d = tmp_path_factory.mktemp("small")
    return [
        make_clip(d / "a.mp4", size="480x270", seconds=2, channels=2),
        make_clip(d / "b.mkv", size="640x360", seconds=3, audio=False),
    ]


class Watcher:
    """Collects what must never happen on a page: script errors and dialogs (an XSS would alert())."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.problems.append(f"{dialog.type} dialog: {dialog.message}")
        dialog.dismiss()


def open_page(browser: Browser, contexts: list, viewport: dict = DESKTOP, **kwargs) -> tuple[Page, Watcher]:
    context = browser.new_context(viewport=viewport, **kwargs)
    contexts.append(context)
    page = context.new_page()
    return page, Watcher(page)


def at(page: Page, url: str) -> None:
    """Wait until the page is at exactly `url` (a plain comparison: no glob characters in the way)."""
    page.wait_for_url(lambda current: current == url)


def sign_in(page: Page, base: str, email: str, next_path: str = "/library") -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    at(page, f"{base}{next_path}")
    page.wait_for_selector("#account-email", state="visible")


def post_video(client: httpx.Client, path: Path, title: str, visibility: str = "public", description: str = "") -> str:
    with path.open("rb") as f:
        r = client.post(
            "/api/v1/videos",
            files={"file": (path.name, f)},
            data={"title": title, "visibility": visibility, "description": description},
        )
    assert r.status_code == 202, r.text
    return r.json()["id"]


def row(page: Page, video_id: str):
    return page.locator(f'.lib-item[data-id="{video_id}"]')


def titles(page: Page, selector: str) -> list[str]:
    return page.locator(selector).all_inner_texts()


def posters_loaded(page: Page) -> None:
    """Every poster shown has really loaded from the blob store (lazy images load once scrolled to)."""
    for poster in page.locator(".poster:not([hidden])").all():
        poster.scroll_into_view_if_needed()
        poster.evaluate("img => img.decode()")  # rejects if the image cannot be fetched or decoded
        assert poster.evaluate("img => img.naturalWidth") > 0
    page.evaluate("window.scrollTo(0, 0)")


def no_sideways_scroll(page: Page) -> None:
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width


# ---- accounts -------------------------------------------------------------------------------------------


def test_sign_up_sign_out_and_back_in(stack, browser, contexts):
    page, watch = open_page(browser, contexts)
    base = stack.url
    taken, _ = stack.new_user()
    email = f"new-{secrets.token_hex(4)}@example.test"

    page.goto(f"{base}/")
    page.wait_for_selector("#sign-up", state="visible")
    assert page.locator("#account-email").is_hidden()
    page.click("#sign-up")
    at(page, f"{base}/signup?next=%2F")

    # The API's refusal is shown on the form, in words.
    page.fill("#email", taken)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.wait_for_selector("#form-error", state="visible")
    assert page.inner_text("#form-error") == "An account with this email already exists"

    page.fill("#email", email)
    page.fill("#display_name", "Page Person")
    page.click("#submit")
    at(page, f"{base}/")  # back where the visitor was, signed in
    page.wait_for_selector("#account-email", state="visible")
    assert page.inner_text("#account-email") == email
    assert page.locator("#sign-in").is_hidden() and page.locator("#nav-ops").is_hidden()  # not an operator
    me = page.evaluate("async () => (await fetch('/api/v1/auth/me')).json()")
    assert me["email"] == email and me["display_name"] == "Page Person"

    page.goto(f"{base}/library")
    page.wait_for_selector("#empty", state="visible")
    assert page.inner_text("#empty-text") == "You have not uploaded any videos yet."
    assert page.get_attribute('.site-nav a[href="/library"]', "aria-current") == "page"

    page.click("#sign-out")
    at(page, f"{base}/")
    page.wait_for_selector("#sign-in", state="visible")
    assert page.evaluate("async () => (await fetch('/api/v1/auth/me')).status") == 401
    page.goto(f"{base}/library")
    page.wait_for_selector("#signin", state="visible")  # the library asks to sign in
    assert page.get_attribute("#signin a", "href") == "/login?next=/library"

    page.click("#signin a")
    at(page, f"{base}/login?next=/library")
    page.fill("#email", email)
    page.fill("#password", "not the password")
    page.click("#submit")
    page.wait_for_selector("#form-error", state="visible")
    assert page.inner_text("#form-error") == "Wrong email or password"
    shoot(page, "login-desktop.png")
    page.fill("#password", PASSWORD)
    page.click("#submit")
    at(page, f"{base}/library")
    page.wait_for_selector("#account-email", state="visible")
    assert page.inner_text("#account-email") == email
    assert not watch.problems, watch.problems


def test_sign_in_never_redirects_off_site_and_operators_get_the_dashboard_link(stack, browser, contexts):
    operator, _ = stack.new_user(operator=True)
    page, watch = open_page(browser, contexts, PHONE)
    for evil in ("//evil.example/x", "https://evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        page.goto(f"{stack.url}/login?next={httpx.QueryParams({'n': evil})['n']}")
        assert page.get_attribute("#auth-form", "data-next") == "/", evil
    page.goto(f"{stack.url}/login?next=//evil.example/x")
    page.wait_for_selector("#email")
    shoot(page, "login-phone.png")
    no_sideways_scroll(page)
    page.fill("#email", operator)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    at(page, f"{stack.url}/")  # the site's own index, not evil.example
    page.wait_for_selector("#nav-ops", state="visible")
    assert page.get_attribute("#nav-ops", "href") == "/ops"
    assert page.inner_text("#account-email") == operator
    # Signed in already: the sign-in page sends the operator straight on.
    page.goto(f"{stack.url}/login?next=/library")
    at(page, f"{stack.url}/library")
    assert not watch.problems, watch.problems


# ---- library --------------------------------------------------------------------------------------------


def test_library_live_progress_search_pages_edit_and_delete(stack, clips, small_clips, browser, contexts):
    email, token = stack.new_user()
    with stack.client(token) as api:
        quick = {
            post_video(api, small_clips[0], "Alpha harbour", description="first light"): "Alpha harbour",
            post_video(api, small_clips[1], "Beta harbour", "unlisted"): "Beta harbour",
            post_video(api, small_clips[0], HOSTILE): HOSTILE,
        }
        for vid in quick:
            assert wait_status(api, vid)["status"] == "ready"
        slow = post_video(api, clips["1080p"], "Long processing", "private")  # 9 s of 1080p: many seconds of work

    page, watch = open_page(browser, contexts)
    sign_in(page, stack.url, email)
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page
    page.wait_for_selector(f'.lib-item[data-id="{slow}"]')
    assert sorted(page.locator(".lib-item").evaluate_all("els => els.map(e => e.dataset.id)")) == sorted([*quick, slow])

    # The processing row advances by itself, then turns ready with its poster.
    seen: list[float] = []
    shot = False

    def progress():
        state = row(page, slow).evaluate(
            "el => ({status: el.dataset.status, value: el.querySelector('.processing .bar').value,"
            " shown: !el.querySelector('.processing').hidden, badge: el.querySelector('.badge.status').textContent})"
        )
        nonlocal shot
        if state["status"] == "processing" and state["shown"]:
            if 0 < state["value"] < 1 and (not seen or state["value"] != seen[-1]):
                seen.append(state["value"])
                assert state["badge"] == f"Processing {round(state['value'] * 100)}%", state
            if not shot and state["value"] > 0.15:
                shoot(page, "library-desktop-processing.png")
                shot = True
        return state["status"] == "ready"

    wait_for(progress, "the processing row to turn ready", timeout=600)
    assert len(seen) >= 2 and seen == sorted(seen), seen  # it moved forward, several times, never back
    slow_row = row(page, slow)
    slow_row.locator(".poster").wait_for(state="visible")
    assert slow_row.locator(".processing").is_hidden()
    assert slow_row.locator(".badge.status").inner_text() == "Ready"
    assert slow_row.locator(".duration").inner_text() == "0:09"
    assert page.evaluate("window.__sameDocument") is True

    # Hostile title: shown as text, never parsed.
    hostile = [v for v, t in quick.items() if t == HOSTILE][0]
    assert row(page, hostile).locator(".lib-title").inner_text() == HOSTILE
    assert page.locator('img[src="x"]').count() == 0
    posters_loaded(page)
    shoot(page, "library-desktop.png")

    # Search by title; the address keeps it.
    page.fill("#q", "harbour")
    page.press("#q", "Enter")
    page.wait_for_function("document.querySelectorAll('.lib-item').length === 2")
    assert sorted(titles(page, ".lib-title")) == ["Alpha harbour", "Beta harbour"]
    assert page.evaluate("location.search") == "?q=harbour"
    page.fill("#q", "no such words")
    page.press("#q", "Enter")
    page.wait_for_selector("#empty", state="visible")
    assert page.inner_text("#empty-text") == "No videos with “no such words” in their title."

    # Pages: two per page over four videos.
    page.goto(f"{stack.url}/library?per_page=2")
    page.wait_for_selector(".lib-item >> nth=1")
    assert page.inner_text("#pager .page-info") == "1–2 of 4 · page 1 of 2"
    assert page.locator("#pager .prev").is_disabled()
    first_page = titles(page, ".lib-title")
    assert first_page[0] == "Long processing"  # newest first
    page.click("#pager .next")
    page.wait_for_function("document.querySelector('#pager .page-info').textContent.startsWith('3–4')")
    second_page = titles(page, ".lib-title")
    assert page.locator("#pager .next").is_disabled()
    assert sorted(first_page + second_page) == sorted([*quick.values(), "Long processing"])
    assert page.evaluate("location.search") == "?page=2&per_page=2"

    # Edit inline: title, description and visibility persist (the API says so).
    page.goto(f"{stack.url}/library?q=alpha")
    alpha = [v for v, t in quick.items() if t == "Alpha harbour"][0]
    r = row(page, alpha)
    r.wait_for()
    r.locator(".edit").click()
    form = r.locator(".edit-form")
    assert form.locator('[name="title"]').input_value() == "Alpha harbour"
    form.locator('[name="title"]').fill("  ")
    form.locator(".save").click()
    assert form.locator(".form-error").inner_text() == "Title: must not be blank."
    form.locator('[name="title"]').fill(f"Alpha renamed {HOSTILE}")
    form.locator('[name="description"]').fill("second light")
    form.locator('[name="visibility"]').select_option("private")
    form.locator(".save").click()
    form.wait_for(state="hidden")
    assert r.locator(".lib-title").inner_text() == f"Alpha renamed {HOSTILE}"
    assert r.locator(".badge.visibility").inner_text() == "Private"
    with stack.client(token) as api:
        saved = api.get(f"/api/v1/videos/{alpha}").json()
    assert (saved["title"], saved["description"], saved["visibility"]) == (
        f"Alpha renamed {HOSTILE}",
        "second light",
        "private",
    )

    # Delete: a confirmation first; keeping it changes nothing; confirming removes it everywhere.
    page.goto(f"{stack.url}/library")
    beta = [v for v, t in quick.items() if t == "Beta harbour"][0]
    r = row(page, beta)
    r.locator(".delete").click()
    page.wait_for_selector("#confirm-delete[open]")
    assert page.inner_text("#confirm-video") == "Beta harbour"
    page.click("#confirm-cancel")
    page.wait_for_selector("#confirm-delete", state="hidden")
    assert r.is_visible()
    with stack.client(token) as api:
        assert api.get(f"/api/v1/videos/{beta}").status_code == 200
    r.locator(".delete").click()
    page.click("#confirm-ok")
    r.wait_for(state="detached")
    assert page.locator(".lib-item").count() == 3
    with stack.client(token) as api:
        assert api.get(f"/api/v1/videos/{beta}").status_code == 404
        assert beta not in [v["id"] for v in api.get("/api/v1/me/videos").json()["items"]]

    # A page past the end (a bookmark from before videos were deleted) shows the last page instead.
    page.goto(f"{stack.url}/library?page=9&per_page=2")
    page.wait_for_function("document.querySelector('#pager .page-info').textContent.startsWith('3–3 of 3')")
    assert page.locator(".lib-item").count() == 1
    assert page.evaluate("location.search") == "?page=2&per_page=2"

    # The same library on a phone, signed in with the same session.
    phone, phone_watch = open_page(browser, contexts, PHONE, storage_state=page.context.storage_state())
    phone.goto(f"{stack.url}/library")
    phone.wait_for_selector(".lib-item >> nth=2")
    phone.locator(f'.lib-item[data-id="{hostile}"] .edit').click()
    no_sideways_scroll(phone)
    posters_loaded(phone)
    shoot(phone, "library-phone.png")
    assert not watch.problems and not phone_watch.problems, watch.problems + phone_watch.problems


def test_a_failed_video_shows_its_error(stack, browser, contexts, tmp_path):
    """A file whose index is intact but whose media is cut off: accepted, then the encode fails with a reason."""
    whole = make_clip(tmp_path / "whole.mp4", size="640x360", seconds=8, channels=2, extra=("-movflags", "+faststart"))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.4)])
    email, token = stack.new_user()
    with stack.client(token) as api:
        video = post_video(api, cut, "Cut short")
        failed = wait_status(api, video)
    assert failed["status"] == "failed" and failed["error"], failed

    page, watch = open_page(browser, contexts)
    sign_in(page, stack.url, email)
    r = row(page, video)
    r.wait_for()
    assert r.get_attribute("data-status") == "failed"
    assert r.locator(".badge.status").inner_text() == "Failed"
    assert r.locator(".video-error").inner_text() == f"Processing failed: {failed['error']}"
    assert r.locator(".processing").is_hidden() and r.locator(".poster").is_hidden()
    assert not watch.problems, watch.problems


def test_captions_panel_attaches_lists_and_removes(stack, small_clips, browser, contexts, tmp_path):
    email, token = stack.new_user()
    with stack.client(token) as api:
        video = post_video(api, small_clips[0], "Captioned")
        wait_status(api, video)
    vtt = tmp_path / "english.vtt"
    vtt.write_text("WEBVTT\n\n00:00.000 --> 00:01.500\nHello <script>alert(1)</script>there\n")
    srt = tmp_path / "portugues.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,500\nOlá\n", encoding="utf-8")
    junk = tmp_path / "notes.vtt"
    junk.write_text("just some notes, not captions\n")

    page, watch = open_page(browser, contexts)
    sign_in(page, stack.url, email)
    r = row(page, video)
    r.locator(".captions-toggle").click()
    panel = r.locator(".captions-panel")
    expect(panel.locator(".captions-status")).to_have_text(re.compile(r"^No captions yet"))
    form = panel.locator(".caption-form")

    def attach(path: Path, language: str, label: str = "") -> None:
        form.locator('[name="file"]').set_input_files(str(path))
        form.locator('[name="language"]').fill(language)
        form.locator('[name="label"]').fill(label)
        form.locator(".attach").click()

    attach(junk, "en")  # refusals from the API, in its words
    expect(form.locator(".form-error")).to_have_text(re.compile(r"^Not a caption file"))
    attach(vtt, "klingon!")
    expect(form.locator(".form-error")).to_contain_text("is not a valid BCP 47 language tag")

    attach(vtt, "en", f"English {HOSTILE}")  # markup in a label: refused by the API, nothing attached
    expect(form.locator(".form-error")).to_have_text(
        re.compile(r"^Label must not contain '<' or '>' \(caption labels may not hold any of < > & \"\)$")
    )
    assert panel.locator(".caption-item").count() == 0
    attach(vtt, "en", LABEL)
    panel.locator('.caption-item[data-language="en"]').wait_for()
    form.locator('[name="default"]').check()
    attach(srt, "pt-br")
    panel.locator('.caption-item[data-language="pt-BR"]').wait_for()
    assert form.locator(".form-error").is_hidden()
    items = panel.locator(".caption-item")
    assert items.locator(".caption-label").all_inner_texts() == [LABEL, "Português (Brasil)"]
    assert r.locator(".captions-toggle").inner_text() == "Captions (2)"
    assert panel.locator('.caption-item[data-language="pt-BR"] .caption-default').is_visible()
    assert page.locator('img[src="x"]').count() == 0
    shoot(page, "library-captions-desktop.png")
    with stack.client(token) as api:
        listed = api.get(f"/api/v1/videos/{video}/captions").json()
    assert {(c["language"], c["label"], c["is_default"]) for c in listed} == {
        ("en", LABEL, False),
        ("pt-BR", "Português (Brasil)", True),
    }

    panel.locator('.caption-item[data-language="en"] .caption-delete').click()
    panel.locator('.caption-item[data-language="en"]').wait_for(state="detached")
    with stack.client(token) as api:
        assert [c["language"] for c in api.get(f"/api/v1/videos/{video}/captions").json()] == ["pt-BR"]
    assert not watch.problems, watch.problems


# ---- other accounts and anonymous viewers --------------------------------------------------------------


def card_ids(page: Page) -> list[str]:
    return page.locator(".video-card").evaluate_all("els => els.map(e => e.dataset.id)")


def test_others_see_only_what_they_may(stack, small_clips, browser, contexts):
    owner_email, owner_token = stack.new_user()
    other_email, other_token = stack.new_user()
    tag = f"zebra{secrets.token_hex(3)}"  # a word only this test's titles hold
    with stack.client(owner_token) as api:
        public = [post_video(api, small_clips[i % 2], f"{tag} public {i} {HOSTILE}") for i in range(3)]
        private = post_video(api, small_clips[0], f"{tag} private", "private")
        unlisted = post_video(api, small_clips[1], f"{tag} unlisted", "unlisted")
        for vid in [*public, private, unlisted]:
            assert wait_status(api, vid)["status"] == "ready"
    with stack.client(other_token) as api:
        mine = post_video(api, small_clips[1], "The other account's own video", "private")
        wait_status(api, mine)

    # The second account: its library holds only its own video; the owner's are out of reach.
    page, watch = open_page(browser, contexts)
    sign_in(page, stack.url, other_email)
    page.wait_for_selector(".lib-item")
    assert page.locator(".lib-item").evaluate_all("els => els.map(e => e.dataset.id)") == [mine]
    page.fill("#q", tag)
    page.press("#q", "Enter")
    page.wait_for_selector("#empty", state="visible")  # searching does not reach them either
    for vid in (private, public[0]):
        answers = page.evaluate(
            """async (id) => {
                 const patch = await fetch(`/api/v1/videos/${id}`, {method: 'PATCH',
                   headers: {'Content-Type': 'application/json'}, body: JSON.stringify({title: 'taken over'})});
                 const del = await fetch(`/api/v1/videos/${id}`, {method: 'DELETE'});
                 const get = await fetch(`/api/v1/videos/${id}`);
                 return [patch.status, del.status, get.status];
               }""",
            vid,
        )
        assert answers == [404, 404, 404 if vid == private else 200], (vid, answers)
    with stack.client(other_token) as api:  # and with an API token
        assert api.patch(f"/api/v1/videos/{private}", json={"title": "x"}).status_code == 404
        assert api.delete(f"/api/v1/videos/{public[0]}").status_code == 404
    with stack.client(owner_token) as api:
        assert api.get(f"/api/v1/videos/{public[0]}").json()["title"] == f"{tag} public 0 {HOSTILE}"
        assert api.get(f"/api/v1/videos/{private}").json()["title"] == f"{tag} private"

    page.goto(f"{stack.url}/?q={tag}")
    page.wait_for_selector(".video-card >> nth=2")
    assert sorted(card_ids(page)) == sorted(public)  # the private (and unlisted) video is not listed
    page.goto(f"{stack.url}/watch/{private}")
    # The watch page (another helper's) words a 404 its own way: "not available" / "does not exist".
    page.wait_for_function("() => /not available|does not exist|not found/i.test(document.body.innerText)")
    assert f"{tag} private" not in page.inner_text("body")
    assert not watch.problems, watch.problems

    # Anonymous viewers: public, ready videos only, with poster, duration and owner; search and pages.
    anon, anon_watch = open_page(browser, contexts)
    anon.goto(f"{stack.url}/")
    anon.wait_for_selector(".video-card")
    with stack.client(anonymous=True) as api:
        for vid in card_ids(anon):
            seen = api.get(f"/api/v1/videos/{vid}").json()
            assert (seen["visibility"], seen["status"]) == ("public", "ready"), seen
    anon.fill("#q", tag)  # typing searches (no button press needed)
    anon.wait_for_function(
        "ids => [...document.querySelectorAll('.video-card')].map(e => e.dataset.id).sort().join() === ids",
        arg=",".join(sorted(public)),
    )
    assert anon.evaluate("location.search") == f"?q={tag}"  # kept in the address for reload and back
    card = anon.locator(f'.video-card[data-id="{public[2]}"]')
    assert card.locator(".card-title").inner_text() == f"{tag} public 2 {HOSTILE}"
    assert card.locator(".card-owner").inner_text() == owner_email.split("@")[0]
    assert card.locator(".duration").inner_text() == "0:02"
    card.locator(".poster").wait_for(state="visible")
    assert card.locator(".card-link").get_attribute("href") == f"/watch/{public[2]}"
    assert anon.locator('img[src="x"]').count() == 0
    posters_loaded(anon)
    shoot(anon, "index-desktop.png")

    anon.goto(f"{stack.url}/?q={tag}&per_page=2")
    anon.wait_for_selector(".video-card >> nth=1")
    assert card_ids(anon) == public[::-1][:2]  # newest first
    assert anon.inner_text("#pager .page-info") == "1–2 of 3 · page 1 of 2"
    anon.click("#pager .next")
    anon.wait_for_function("document.querySelector('#pager .page-info').textContent.startsWith('3–3')")
    assert card_ids(anon) == [public[0]]
    assert anon.evaluate("location.search") == f"?q={tag}&page=2&per_page=2"
    assert not anon_watch.problems, anon_watch.problems

    phone, phone_watch = open_page(browser, contexts, PHONE)
    phone.goto(f"{stack.url}/?q={tag}")
    phone.wait_for_selector(".video-card >> nth=2")
    no_sideways_scroll(phone)
    posters_loaded(phone)
    shoot(phone, "index-phone.png")
    assert not phone_watch.problems, phone_watch.problems

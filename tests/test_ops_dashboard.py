"""The operator dashboard (/ops) in Debian's headless Chromium against the real stack (PostgreSQL, Redis,
Azurite, a Celery worker process): it follows the SSE stream without a reload (a running job's progress bar
advances), shows a failed job's reason and ffmpeg log tail, steers the queue with its buttons, fits a phone,
and refuses anyone but an operator: the page, the API behind it, and an open stream once the role is gone.
"""

import re
import secrets
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser import DESKTOP, PHONE, shoot
from tests.conftest import upload, wait_status
from tests.media import make_clip

PASSWORD = "correct horse battery"  # tests.conftest.make_user


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ops-media")
    # An MP4 whose index is intact but whose media data is cut: only the encode finds out, and ffmpeg says why.
    whole = make_clip(d / "whole.mp4", size="640x360", seconds=8, channels=2, extra=("-movflags", "+faststart"))
    data = whole.read_bytes()
    (d / "cut.mp4").write_bytes(data[: int(len(data) * 0.4)])
    # The job the page watches and then cancels: long enough that it is still encoding by then on a fast machine.
    long = make_clip(d / "long.mp4", seconds=60, channels=2, extra=("-b:v", "2M"))  # well under the upload limit
    return {
        "cut": d / "cut.mp4",
        "small": make_clip(d / "small.mp4", size="320x240", seconds=2, channels=2),
        "long": long,
    }


def signed_in(browser: Browser, stack, email: str, viewport: dict) -> BrowserContext:
    """A browser context holding the session cookie of `email` (signed in through the real login endpoint)."""
    context = browser.new_context(viewport=viewport)
    r = context.request.post(f"{stack.url}/api/v1/auth/login", data={"email": email, "password": PASSWORD})
    assert r.status == 200, r.text()
    return context


def ops_requests(page: Page) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda req: "/api/v1/ops/" in req.url and seen.append(req.url))
    return seen


def row(kind: str, video_id: str) -> str:
    return f'#{kind} li[data-video="{video_id}"]'


def test_dashboard_follows_the_queue_live_and_steers_it(stack, clips, media, browser):
    tag = secrets.token_hex(3)
    op_email, _ = stack.new_user(operator=True)
    with stack.client() as creator:
        cut = upload(creator, media["cut"], title=f"cut short {tag}").json()["id"]
        done = upload(creator, media["small"], title=f"done already {tag}").json()["id"]  # history has a point
        assert wait_status(creator, cut)["status"] == "failed"
        assert wait_status(creator, done)["status"] == "ready"
        running = upload(creator, media["long"], title=f"keynote {tag}").json()["id"]
        first = upload(creator, media["small"], title=f"queued first {tag}").json()["id"]
        second = upload(creator, media["small"], title=f"queued second {tag}").json()["id"]

        context = signed_in(browser, stack, op_email, DESKTOP)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        response = page.goto(f"{stack.url}/ops")
        assert response.status == 200
        page.evaluate("window.sameDocument = true")  # gone if the page ever reloads

        # A running job: its bar, its parts (a chunked encode: time ranges and the audio), how soon it played,
        # and its worker; then the same bar further on, with no reload.
        bar = f"{row('running', running)} progress"
        page.wait_for_function(
            "sel => { const b = document.querySelector(sel); return b && b.value > 0.02"
            " && /^parts \\d+\\/\\d+ done/.test(b.closest('li').querySelector('.parts').textContent) }",
            arg=bar,
            timeout=180_000,
        )
        before = page.eval_on_selector(bar, "b => b.value")
        job = page.locator(row("running", running))
        assert re.fullmatch(r"parts \d+/\d+ done(, \d+ running)?", job.locator(".parts").inner_text()), job.inner_text()
        playable = job.locator(".first-playable").inner_text()
        assert re.fullmatch(r"first playable in \d+\.\d s|not playable yet", playable), job.inner_text()
        assert re.search(r"pid \d+", job.locator(".worker").inner_text()), job.inner_text()
        page.wait_for_function(
            "([sel, v]) => document.querySelector(sel).value >= v + 0.05", arg=[bar, before], timeout=180_000
        )
        assert page.evaluate("window.sameDocument") is True
        assert "keynote" in page.locator("#workers").inner_text()  # the worker says what it encodes

        # The queue behind it, in order; raising the second one's priority puts it first.
        def position(video: str) -> int:
            return int(page.locator(f"{row('queue', video)} .position").inner_text().lstrip("#"))

        page.wait_for_selector(row("queue", second), timeout=30_000)
        assert position(first) < position(second)
        page.locator(f"{row('queue', second)} .raise").click()
        page.wait_for_function(
            "([a, b]) => { const p = v => Number(document.querySelector(`#queue li[data-video='${v}'] .position`)"
            "?.textContent.slice(1)); return p(b) < p(a) }",
            arg=[first, second],
            timeout=15_000,
        )
        assert "priority +10" in page.locator(row("queue", second)).inner_text()

        # The failure: its reason, and ffmpeg's complaints once the log is opened.
        failure = page.locator(row("failures", cut))
        failure.wait_for(timeout=15_000)
        assert "source is truncated or corrupt" in failure.locator(".reason").inner_text()
        assert failure.locator(".kind").inner_text() == "corrupt_source"  # as /metrics counts it
        assert not failure.locator(".log-tail").is_visible()
        failure.locator("summary").click()
        tail = failure.locator(".log-tail")
        assert tail.is_visible()
        assert re.search(r"corrupt|partial file|Invalid NAL", tail.inner_text()), tail.inner_text()
        page.wait_for_timeout(2500)  # two more snapshots: an open log stays open while the page updates
        assert tail.is_visible()

        shoot(page, "ops-dashboard-desktop.png")

        # At phone width: everything fits the screen (no sideways scrolling), even an open log.
        phone = signed_in(browser, stack, op_email, PHONE).new_page()
        phone.goto(f"{stack.url}/ops")
        phone.wait_for_selector(row("failures", cut))
        phone.locator(f"{row('failures', cut)} summary").click()
        phone.wait_for_selector(f"{row('running', running)} progress")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shoot(phone, "ops-dashboard-phone.png")
        phone.context.close()

        # Retry the failure, cancel the encode: both from the page.
        failure.locator(".retry").click()
        page.wait_for_function(
            "() => document.getElementById('action-status').textContent.includes('queued again')", timeout=15_000
        )
        page.locator(f"{row('running', running)} .cancel").click()
        page.wait_for_selector(row("running", running), state="detached", timeout=60_000)
        assert wait_status(creator, running, statuses=("cancelled",), timeout=60)["status"] == "cancelled"
        for video in (first, second):
            assert wait_status(creator, video)["status"] == "ready"
        assert wait_status(creator, cut)["status"] == "failed"  # retried, and refused again for the same reason
        # The history charts were drawn from the snapshot (uPlot canvases), and count what finished.
        assert page.locator("#chart-throughput canvas").count() >= 1
        assert sum(h["jobs"] for h in page.evaluate("window.streamifyOps.last.history")) >= 3
        assert not errors, errors
        context.close()


def test_dashboard_refuses_everyone_but_operators(stack, media, browser):
    tag = secrets.token_hex(3)
    creator_email, creator_token = stack.new_user()
    with stack.client(creator_token) as creator:
        secret_title = f"private thing {tag}"
        video = creator.post(
            "/api/v1/videos",
            files={"file": ("s.mp4", media["small"].read_bytes())},
            data={"title": secret_title, "visibility": "private"},
        )
        assert video.status_code == 202, video.text
        wait_status(creator, video.json()["id"])

    # Signed out: 401, a way to sign in, and no data asked for.
    anonymous = browser.new_context(viewport=DESKTOP)
    page = anonymous.new_page()
    asked = ops_requests(page)
    response = page.goto(f"{stack.url}/ops")
    assert response.status == 401
    assert "Sign in with an operator account" in page.locator("#refused").inner_text()
    assert page.locator("#refused a[href='/login?next=/ops']").is_visible()
    assert page.locator("#dashboard").count() == 0 and secret_title not in page.content()
    assert not asked, asked
    anonymous.close()

    # Signed in without the role: 403, the reason, no data; the API refuses the same session too.
    context = signed_in(browser, stack, creator_email, DESKTOP)
    page = context.new_page()
    asked = ops_requests(page)
    response = page.goto(f"{stack.url}/ops")
    assert response.status == 403
    assert "Operators only" in page.locator("#refused").inner_text()
    assert page.locator("#dashboard").count() == 0 and secret_title not in page.content()
    assert not asked, asked
    api = page.evaluate(
        "async () => { const r = await fetch('/api/v1/ops/snapshot'); return [r.status, await r.text()] }"
    )
    assert api[0] == 403 and secret_title not in api[1]
    assert context.request.get(f"{stack.url}/api/v1/ops/events").status == 403
    context.close()

    # An operator watching the live page loses the role: the stream stops and the page says why.
    op_email, _ = stack.new_user(operator=True)
    context = signed_in(browser, stack, op_email, DESKTOP)
    page = context.new_page()
    page.goto(f"{stack.url}/ops")
    page.wait_for_function("() => window.streamifyOps.snapshots >= 2", timeout=30_000)
    with psycopg.connect(stack.database_url.replace("+psycopg", "")) as conn:
        conn.execute("UPDATE users SET is_operator = false WHERE email = %s", (op_email,))
    page.wait_for_selector("#refused", state="visible", timeout=30_000)
    assert "operators only" in page.locator("#refused").inner_text()
    assert page.locator("#dashboard").is_hidden()
    seen = page.evaluate("window.streamifyOps.snapshots")
    page.wait_for_timeout(3000)
    assert page.evaluate("window.streamifyOps.snapshots") == seen  # no data after the refusal
    context.close()


# ---- progressive publish: a chunked job's parts and its time to first playable --------------------------


def test_running_job_shows_its_parts_and_time_to_first_playable(browser, tmp_path_factory):
    """A chunked encode stepped by hand (tests/growing.py) on an in-process install: the running row counts
    its parts as they land and says how long the video took to become playable; the figure stays on the job."""
    from tests.growing import creator, make_media, serving, uploaded
    from tests.inprocess import local_app

    d = tmp_path_factory.mktemp("ops-growing")
    source = make_clip(d / "source.mp4", size="640x360", seconds=10, channels=2)
    media = make_media(source, 10.0, d / "encoded")
    with local_app(d / "site") as install, serving(install.app) as url:
        op_email, op_token = creator(install, operator=True)
        _, token = creator(install)
        video = uploaded(install, media, token, f"chunked {secrets.token_hex(3)}", source)
        context = browser.new_context(viewport=DESKTOP)
        r = context.request.post(f"{url}/api/v1/auth/login", data={"email": op_email, "password": PASSWORD})
        assert r.status == 200, r.text()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/ops")
        job = page.locator(row("running", str(video.video_id)))

        def shows(selector: str, text: str) -> None:
            page.wait_for_function(
                "([sel, text]) => document.querySelector(sel)?.textContent === text",
                arg=[f"{row('running', str(video.video_id))} {selector}", text],
                timeout=15_000,
            )

        # Planned: three ranges queued and the audio running; nothing plays yet.
        shows(".parts", "parts 0/4 done, 1 running")
        assert job.locator(".first-playable").inner_text() == "not playable yet"
        video.publish(0)
        shows(".parts", "parts 1/4 done, 1 running")
        page.wait_for_function(
            "sel => /^first playable in \\d+\\.\\d s$/.test(document.querySelector(sel)?.textContent || '')",
            arg=f"{row('running', str(video.video_id))} .first-playable",
            timeout=15_000,
        )
        first = float(job.locator(".first-playable").inner_text().split()[-2])
        video.publish(1)
        shows(".parts", "parts 2/4 done, 1 running")
        assert job.locator(".first-playable").inner_text() == f"first playable in {first:.1f} s"  # it never moves
        shoot(page, "ops-dashboard-parts.png")

        video.finish()
        job.wait_for(state="detached", timeout=15_000)
        finished = install.client.get(f"/api/v1/ops/jobs/{video.job_id}", headers=install.as_user(op_token))
        assert finished.status_code == 200, finished.text
        assert finished.json()["state"] == "succeeded"
        assert finished.json()["first_playable_seconds"] == pytest.approx(first, abs=0.05)
        assert not errors, errors
        context.close()

# ruff: noqa: F811 - fixtures imported from tests.test_delivery / test_embedded are parameters here
"""Private playback on the real front: nginx in front of two uvicorn nodes (`streamify up --nodes 2`),
PostgreSQL, Redis, a Celery worker; local-disk media for the static path, Azurite for nginx's blob cache, the
single API process on Azurite for direct SAS URLs, and the embedded single process for its /media mount.

A private video's playlists (404, like a missing video) and segments (403, with the reason) are refused without
a token; the owner's link plays in headless Chromium through nginx with no failed request; an expired, tampered,
revoked or other video's token is refused; public videos need nothing and stay publicly cacheable. Signed
segments are checked by nginx, which asks a node only whether the link was revoked, once per video per cache
period (never per segment); with the nodes unreachable, media access fails closed.
"""

import json
import re
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

import httpx
import m3u8
import pytest

from core.playback_tokens import nginx_key, segment_query, sign_token
from core.settings import Settings
from infra.nginx import DELIVERY_HEADER, TEMPLATE_DIR, NginxPlan, nginx_exe, nginx_user, write_nginx_config
from tests.conftest import free_port, make_user, stop, wait_finished, wait_for
from tests.test_delivery import (  # noqa: F401 - fixtures, reused: each module starts its own stack
    IMMUTABLE,
    UpStack,
    azure_stack,
    disk_stack,
)
from tests.test_embedded import embedded  # noqa: F401 - fixture

PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"


# --- helpers ------------------------------------------------------------------------------------------


def secret_of(stack: UpStack) -> bytes:
    """`streamify up` keeps the install's secret in its data dir (STREAMIFY_PLAYBACK_SECRET unset)."""
    return (stack.data / "playback-secret").read_text().strip().encode()


def owner_client(stack: UpStack, token: str) -> httpx.Client:
    return httpx.Client(base_url=stack.url, timeout=60, headers={"Authorization": f"Bearer {token}"})


def upload_ready(client: httpx.Client, clip: Path, title: str, visibility: str) -> dict:
    with clip.open("rb") as f:
        r = client.post(
            "/api/v1/videos", files={"file": (clip.name, f)}, data={"title": title, "visibility": visibility}
        )
    assert r.status_code == 202, r.text
    return wait_finished(client, r.json()["id"])


def playlist_urls(client: httpx.Client, master_url: str) -> tuple[m3u8.M3U8, list[str], list[str]]:
    """(master, its variant URLs as a player resolves them, [init, segments...] of the top variant)."""
    master_resp = client.get(master_url)
    assert master_resp.status_code == 200, master_resp.text
    master = m3u8.loads(master_resp.text)
    base = urlsplit(master_url).path.rsplit("/", 1)[0]
    variants = [f"{base}/{p.uri}" for p in master.playlists]
    media = client.get(variants[0])
    assert media.status_code == 200, media.text
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', media.text)
    segments = [line for line in media.text.splitlines() if line and not line.startswith("#")]
    assert init and segments, media.text
    return master, variants, [init.group(1), *segments]


def internal_calls(stack: UpStack, video_id: str) -> int:
    return stack.api_log_text().count(f"/internal/media-access/{video_id}")


def logged(stack: UpStack, path: str) -> None:
    """Wait for nginx to log the answer to `path` (it writes a line once a request is done)."""
    wait_for(lambda: f'"GET {path} HTTP/1.1" 200 ' in stack.access_log.read_text(), f"nginx to log GET {path}")


def detail(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/json"), (r.status_code, r.headers, r.text)
    return r.json()["detail"]


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def creator(disk_stack) -> tuple[str, str]:
    """A second account on the disk stack: (email, API token); its password is conftest's."""
    return make_user(disk_stack.env["STREAMIFY_DATABASE_URL"])


@pytest.fixture(scope="module")
def videos(disk_stack, creator, clips) -> dict[str, dict]:
    """Two private videos and a public one, owned by `creator`, ready."""
    with owner_client(disk_stack, creator[1]) as owner:
        return {
            "a": upload_ready(owner, clips["720p_short"], "private a", "private"),
            "b": upload_ready(owner, clips["silent"], "private b", "private"),
            "public": upload_ready(owner, clips["silent"], "public", "public"),
        }


@pytest.fixture(scope="module")
def link(disk_stack, creator, videos) -> dict:
    """What the owner hands out for video A: POST /api/v1/videos/{id}/playback-token."""
    with owner_client(disk_stack, creator[1]) as owner:
        r = owner.post(f"/api/v1/videos/{videos['a']['id']}/playback-token", json={"ttl_seconds": 3600})
    assert r.status_code == 201, r.text
    return r.json()


# --- the API: tokens, owner links, refusals ----------------------------------------------------------------


def test_owner_gets_an_expiring_link_and_nobody_else_can_mint_one(disk_stack, creator, videos, link):
    video_id = videos["a"]["id"]
    token = link["token"]
    expires_at = link["expires_at"].replace("Z", "+00:00")
    from datetime import datetime

    remaining = datetime.fromisoformat(expires_at).timestamp() - time.time()
    assert 3500 < remaining <= 3600, link
    assert link["playback_url"] == f"/api/v1/videos/{video_id}/master.m3u8?token={token}"
    assert link["watch_url"] == f"/watch/{video_id}?token={token}"
    _, stranger = make_user(disk_stack.env["STREAMIFY_DATABASE_URL"])
    with owner_client(disk_stack, stranger) as other, httpx.Client(base_url=disk_stack.url) as anon:
        r = other.post(f"/api/v1/videos/{video_id}/playback-token", json={})
        assert r.status_code == 404 and detail(r) == f"video {video_id} not found"
        assert anon.post(f"/api/v1/videos/{video_id}/playback-token").status_code == 401
    with owner_client(disk_stack, creator[1]) as owner:
        r = owner.post(f"/api/v1/videos/{video_id}/playback-token", json={"ttl_seconds": 10**9})
        assert r.status_code == 422 and "at most" in detail(r)
        assert owner.post(f"/api/v1/videos/{video_id}/playback-token", json={"ttl_seconds": 5}).status_code == 422
        # The owner's own view carries a working link too (the watch page plays it as is).
        mine = owner.get(f"/api/v1/videos/{video_id}").json()
        assert mine["is_owner"] and "?token=" in mine["playback_url"] and "?token=" in mine["storyboard_url"]
        assert "&st=" in mine["poster_url"]
        assert owner.get(mine["poster_url"]).status_code == 200
        listed = owner.get("/api/v1/me/videos").json()["items"]
        assert all("?token=" in v["playback_url"] for v in listed if v["visibility"] == "private")


def test_private_video_without_token_is_refused_everywhere_and_public_needs_nothing(disk_stack, videos):
    a, public = videos["a"], videos["public"]
    with httpx.Client(base_url=disk_stack.url, timeout=30) as anon:
        for path in ("master.m3u8", "720p/index.m3u8", "storyboard.vtt"):  # 404, like a video that does not exist
            r = anon.get(f"/api/v1/videos/{a['id']}/{path}")
            assert r.status_code == 404, (path, r.status_code)
            assert detail(r) == f"video {a['id']} not found"
        # Its files, by their plain names: nginx refuses them without asking Python to serve anything.
        for name in ("720p/seg_00000.m4s", "720p/init_0.mp4", "720p/index.m3u8", "master.m3u8", "poster.jpg"):
            r = anon.get(f"/media/{a['id']}/{name}")
            assert r.status_code == 403, (name, r.status_code)
            assert "private" in detail(r) and r.headers["cache-control"] == "no-store"
        # The metadata stays invisible, exactly like a video that does not exist.
        assert anon.get(f"/api/v1/videos/{a['id']}").status_code == 404
        # The internal question nginx asks is not reachable from outside.
        assert anon.get(f"/internal/media-access/{public['id']}").status_code == 404

        # A public video: no token anywhere, plain URLs, public caching.
        _, _, urls = playlist_urls(anon, public["playback_url"])
        assert public["playback_url"] == f"/api/v1/videos/{public['id']}/master.m3u8"
        assert not [u for u in urls if "?" in u], urls
        seg = anon.get(urls[1])
        assert seg.status_code == 200 and seg.headers["cache-control"] == IMMUTABLE
        assert seg.headers[DELIVERY_HEADER] == "nginx-static"
        assert anon.get(public["playback_url"]).headers["cache-control"].startswith("public")
        assert anon.get(public["playback_url"]).headers["x-cache-status"] == "HIT"  # shared, micro-cached


def test_valid_token_opens_playlists_and_nginx_checks_segments_itself(disk_stack, videos, link):
    a = videos["a"]
    media_dir = disk_stack.data / "blobs" / "media"
    with httpx.Client(base_url=disk_stack.url, timeout=30) as anon:
        calls_before = internal_calls(disk_stack, a["id"])
        started = time.monotonic()
        master, variants, urls = playlist_urls(anon, link["playback_url"])
        # Every URI of the master carries the token; every media URL is signed for this video.
        assert master.playlists and all(p.uri.endswith(f"?token={link['token']}") for p in master.playlists)
        resp = anon.get(link["playback_url"])
        assert resp.headers["cache-control"] == "private, no-store"
        # Personal answers skip nginx's playlist micro-cache (no lookup, no lock behind other viewers).
        assert resp.headers["x-cache-status"] == "BYPASS"
        for url in urls:
            path, _, query = url.partition("?")
            assert path.startswith(f"/media/{a['id']}/"), url
            assert set(parse_qs(query)) == {"e", "st"}, url
        for url in urls[:3]:
            r = anon.get(url)
            assert r.status_code == 200, (url, r.text)
            assert r.content == (media_dir / url.partition("?")[0].removeprefix("/media/")).read_bytes()
            assert r.headers["cache-control"] == PRIVATE_IMMUTABLE  # never in a shared cache
            assert r.headers[DELIVERY_HEADER] == "nginx-static" and r.headers["etag"]
        part = anon.get(urls[1], headers={"Range": "bytes=10-109"})
        assert part.status_code == 206 and len(part.content) == 100
        # The signature opens the video's other files too (it covers the video, not one path)...
        other_rendition = variants[-1].split("/")[-2]
        encode = PurePosixPath(urls[0].partition("?")[0].removeprefix("/media/")).parent.parent  # <id>/enc-<lease>
        other_init = next((media_dir / encode / other_rendition).glob("*.init.mp4")).name
        signature = urls[1].partition("?")[2]
        assert anon.get(f"/media/{encode}/{other_rendition}/{other_init}?{signature}").status_code == 200
        assert anon.get(f"/media/{encode}/poster.jpg?{signature}").status_code == 200
        for variant in variants:
            assert anon.get(variant).status_code == 200
    logged(disk_stack, urlsplit(variants[-1]).path)
    # ...and an API node was asked only whether the link was revoked: once per access-cache period (10 s) the run
    # overlaps (the entry cached before it may expire during it), not once per request (about 12 above).
    periods = 2 + int((time.monotonic() - started) / 10)
    assert internal_calls(disk_stack, a["id"]) - calls_before <= periods
    lines = [line for line in disk_stack.access_log.read_text().splitlines() if f"GET /media/{a['id']}/" in line]
    assert lines and all('upstream="-"' in line for line in lines if " 200 " in line or " 206 " in line), lines


def test_expired_tampered_and_other_videos_tokens_are_refused(disk_stack, videos, link):
    a, b = videos["a"], videos["b"]
    secret = secret_of(disk_stack)
    key = nginx_key(secret)
    a_id, b_id = uuid.UUID(a["id"]), uuid.UUID(b["id"])
    past = int(time.time()) - 30
    expired = sign_token(secret, a_id, past)
    tampered = link["token"][:-2] + ("AA" if not link["token"].endswith("AA") else "BB")
    stretched = f"{int(time.time()) + 10**6}.{link['token'].split('.')[1]}"
    with httpx.Client(base_url=disk_stack.url, timeout=30) as anon:
        _, _, a_urls = playlist_urls(anon, link["playback_url"])
        for path in ("master.m3u8", "720p/index.m3u8", "storyboard.vtt"):
            r = anon.get(f"/api/v1/videos/{a['id']}/{path}", params={"token": expired})
            assert r.status_code == 403 and detail(r).startswith("playback link expired at "), path
            assert r.headers.get("cache-control") != "public", r.headers
            for bad in (tampered, stretched, "nonsense", link["token"] + "x"):
                r = anon.get(f"/api/v1/videos/{a['id']}/{path}", params={"token": bad})
                assert r.status_code == 403, (path, bad)
            # A's token never opens B (nor B's metadata).
            r = anon.get(f"/api/v1/videos/{b['id']}/{path}", params={"token": link["token"]})
            assert r.status_code == 403 and detail(r) == "playback token is not valid for this video", path
        assert anon.get(f"/api/v1/videos/{b['id']}", params={"token": link["token"]}).status_code == 403
        assert anon.get(f"/api/v1/videos/{a['id']}", params={"token": link["token"]}).json()["is_owner"] is False

        # Segments: nginx refuses expired, tampered and other videos' signatures with the reason.
        seg_path, _, good_query = a_urls[1].partition("?")
        media_dir = disk_stack.data / "blobs" / "media"
        b_file = next((media_dir / b["id"]).glob("enc-*/360p/*.seg_00000.m4s"))  # B's published encode
        b_seg = "/media/" + b_file.relative_to(media_dir).as_posix()
        cases = {
            f"{seg_path}?{segment_query(key, a_id, past)}": "expired",
            f"{seg_path}?{good_query[:-3]}abc": "not valid",
            f"{seg_path}?e={int(time.time()) + 10**6}&st={parse_qs(good_query)['st'][0]}": "not valid",
            f"{b_seg}?{good_query}": "not valid",  # A's signature on B's file
            f"{seg_path}?{segment_query(nginx_key(secrets.token_bytes(32)), a_id, past + 10**4)}": "not valid",
        }
        for url, why in cases.items():
            r = anon.get(url)
            assert r.status_code == 403, (url, r.status_code)
            assert why in detail(r), (url, detail(r))
        assert anon.get(f"{b_seg}?{segment_query(key, b_id, past + 10**4)}").status_code == 200  # B's own: fine


def test_nginx_access_log_holds_no_token_or_signature(disk_stack, videos, link):
    """A playback token opens a private video for up to 30 days and a media signature for hours: nginx logs the
    path of each request, never its query string."""
    a = videos["a"]
    with httpx.Client(base_url=disk_stack.url, timeout=30) as anon:
        _, variants, urls = playlist_urls(anon, link["playback_url"])  # master and media playlist, ?token=
        assert anon.get(urls[1]).status_code == 200  # a signed segment, ?e=&st=
        assert anon.get(f"/watch/{a['id']}", params={"token": link["token"]}).status_code == 200
    logged(disk_stack, f"/watch/{a['id']}")
    log = disk_stack.access_log.read_text()
    signature = parse_qs(urlsplit(urls[1]).query)["st"][0]
    for secret in (link["token"], link["token"].split(".")[1], signature):
        assert secret not in log
    assert "token=" not in log and "st=" not in log
    # ...while every request is still there, by method, path and protocol.
    for path in (urlsplit(link["playback_url"]).path, urlsplit(variants[0]).path, urls[1].partition("?")[0]):
        assert f'"GET {path} HTTP/1.1" 200 ' in log, path
    assert f'"GET /watch/{a["id"]} HTTP/1.1" 200 ' in log


def test_making_a_video_private_locks_its_plain_urls_within_the_cache_period(disk_stack, creator, clips):
    """nginx caches "may serve unsigned" per video for 10 s: the switch takes effect within that, both ways."""
    with owner_client(disk_stack, creator[1]) as owner, httpx.Client(base_url=disk_stack.url) as anon:
        video = upload_ready(owner, clips["audio"], "switch", "public")
        _, _, urls = playlist_urls(anon, video["playback_url"])
        plain = urls[1]
        for _ in range(20):  # many plain requests: one access question per video per period, not one per request
            assert anon.get(plain).status_code == 200
        assert internal_calls(disk_stack, video["id"]) <= 2
        assert owner.patch(f"/api/v1/videos/{video['id']}", json={"visibility": "private"}).status_code == 200
        t0 = time.monotonic()
        while anon.get(plain).status_code == 200:
            assert time.monotonic() - t0 < 20, "unsigned URL still served 20 s after the video went private"
            time.sleep(0.5)
        assert anon.get(plain).status_code == 403
        assert owner.patch(f"/api/v1/videos/{video['id']}", json={"visibility": "unlisted"}).status_code == 200
        t0 = time.monotonic()
        while anon.get(plain).status_code != 200:
            assert time.monotonic() - t0 < 20, "unsigned URL still refused 20 s after the video went unlisted"
            time.sleep(0.5)


# --- Chromium through nginx -------------------------------------------------------------------------


HARNESS = """<!doctype html><meta charset="utf-8"><title>link</title>
<video id="video" muted playsinline></video>
<script src="/static/vendor/hls.min.js"></script>
<script>
  window.result = {fatal: null, code: null, errors: [], levels: 0};
  const video = document.getElementById("video");
  const hls = new Hls();
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => { window.result.levels = d.levels.length; video.play(); });
  hls.on(Hls.Events.ERROR, (_e, d) => {
    window.result.errors.push(d.details);
    if (d.fatal) { window.result.fatal = d.details; window.result.code = d.response ? d.response.code : null; }
  });
  hls.loadSource(SOURCE);
  hls.attachMedia(video);
</script>"""


def _link_page(browser, stack_url: str, source: str, failed: list[str]):
    """A page of the stack's origin that plays one URL with the stack's own hls.js (no session, no cookie)."""
    context = browser.new_context()
    page = context.new_page()
    html = HARNESS.replace("SOURCE", json.dumps(source))
    page.route(f"{stack_url}/link-test", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.on("requestfailed", lambda req: failed.append(f"failed {req.url} {req.failure}"))
    page.on("response", lambda resp: resp.status >= 400 and failed.append(f"{resp.status} {resp.url}"))
    page.goto(f"{stack_url}/link-test")
    return context, page


def test_valid_token_plays_in_chromium_and_expired_token_does_not(disk_stack, videos, link, browser):
    a = videos["a"]
    # Refresh nginx's decision alone first: the previous test's answer has expired, and while nginx refreshes an
    # expired answer every request that arrives asks too (its cache lock covers new entries only), so the
    # player's opening burst would each ask. Real players hit this at each expiry; the bound below allows it.
    with httpx.Client(base_url=disk_stack.url) as anon:
        _, _, urls = playlist_urls(anon, link["playback_url"])
        assert anon.get(urls[1]).status_code == 200
    calls_before = internal_calls(disk_stack, a["id"])
    started = time.monotonic()
    failed: list[str] = []
    context, page = _link_page(browser, disk_stack.url, link["playback_url"], failed)
    page.wait_for_function("window.result.levels > 0", timeout=30_000)
    page.wait_for_function("document.getElementById('video').currentTime >= 2", timeout=60_000)
    assert page.evaluate("window.result.fatal") is None
    context.close()
    assert not failed, failed
    # Segments were checked by nginx; a node heard whether the link was revoked once per access-cache period (10 s)
    # the run reached, and also from the requests in flight when that answer expired (at most Chromium's six
    # connections to one host); +1: the warm-up's own line may reach the log late. Never once per segment.
    periods = int((time.monotonic() - started) / 10)
    assert internal_calls(disk_stack, a["id"]) - calls_before <= 1 + 6 * periods
    requested = [line for line in disk_stack.access_log.read_text().splitlines() if f"/media/{a['id']}/" in line]
    # A private video's segment answered 200: its signed URL (logged without the signature: see below).
    assert any(re.search(r'\.m4s HTTP/1\.1" 200 ', line) for line in requested), requested[-5:]

    expired = sign_token(secret_of(disk_stack), uuid.UUID(a["id"]), int(time.time()) - 1)
    failed = []
    context, page = _link_page(browser, disk_stack.url, f"/api/v1/videos/{a['id']}/master.m3u8?token={expired}", failed)
    page.wait_for_function("window.result.fatal !== null", timeout=30_000)
    assert page.evaluate("[window.result.fatal, window.result.code]") == ["manifestLoadError", 403]
    assert page.evaluate("document.getElementById('video').currentTime") == 0
    context.close()
    assert [f for f in failed if f.startswith("403 ")], failed


def test_owner_watch_page_plays_the_private_video(disk_stack, creator, videos, browser):
    """The owner, signed in with the session cookie, needs no link: the page's playback_url carries one."""
    a = videos["a"]
    context = browser.new_context()
    login = context.request.post(
        f"{disk_stack.url}/api/v1/auth/login", data={"email": creator[0], "password": "correct horse battery"}
    )
    assert login.ok, login.text()
    failed: list[str] = []
    page = context.new_page()
    page.on("requestfailed", lambda req: failed.append(f"failed {req.url} {req.failure}"))
    page.on("response", lambda resp: resp.status >= 400 and failed.append(f"{resp.status} {resp.url}"))
    page.goto(f"{disk_stack.url}/watch/{a['id']}")
    page.wait_for_function("document.getElementById('video').currentTime >= 2", timeout=60_000)
    context.close()
    assert not failed, failed


def test_pages_keep_working_under_their_content_security_policy(disk_stack, creator, videos, browser):
    """Issue 12, finding 9: every page is served with a strict CSP (own scripts and styles only); nothing the
    pages, hls.js or Plyr do is blocked by it, the player plays, and the library's Revoke links works."""
    public = videos["public"]
    context = browser.new_context(bypass_csp=False)  # conftest's contexts bypass it: Playwright's waits use eval
    login = context.request.post(
        f"{disk_stack.url}/api/v1/auth/login", data={"email": creator[0], "password": "correct horse battery"}
    )
    assert login.ok, login.text()
    blocked: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(f"{page.url}: {m.text}"))
    page.on("dialog", lambda dialog: dialog.accept())  # the Revoke links confirmation
    for path in ("/", "/upload", "/login"):
        response = page.goto(f"{disk_stack.url}{path}")
        assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
    page.goto(f"{disk_stack.url}/watch/{public['id']}")
    # Polled from here: page.evaluate is DevTools' own evaluation, which the page's CSP does not govern.
    wait_for(lambda: page.evaluate("document.getElementById('video').currentTime") >= 1, "the player", 60)
    page.goto(f"{disk_stack.url}/library")
    row = page.locator(f".lib-item[data-id='{public['id']}']")
    row.locator(".revoke-links").click()
    row.locator(".row-note").get_by_text("Playback links revoked.").wait_for(timeout=15_000)
    context.close()
    assert not blocked, blocked


# --- Azure: nginx's blob cache, and direct per-blob SAS URLs --------------------------------------------


def test_private_media_through_nginx_blob_cache(azure_stack, clips):
    with azure_stack.client() as owner, httpx.Client(base_url=azure_stack.url, timeout=30) as anon:
        video = upload_ready(owner, clips["silent"], "private azure", "private")
        token = owner.post(f"/api/v1/videos/{video['id']}/playback-token", json={}).json()["playback_url"]
        _, _, urls = playlist_urls(anon, token)
        plain = urls[1].partition("?")[0]
        r = anon.get(plain)
        assert r.status_code == 403 and "private" in detail(r)
        first, second = anon.get(urls[1]), anon.get(urls[1])
        assert first.status_code == second.status_code == 200 and first.content == second.content
        assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
        assert first.headers["cache-control"] == PRIVATE_IMMUTABLE
        assert first.headers[DELIVERY_HEADER] == "nginx-cache"
        assert anon.get(plain).status_code == 403  # cached bytes are still behind the check


def test_direct_sas_urls_are_per_blob_and_end_with_the_token(stack, clips):
    """Without nginx (players fetch from Blob Storage), a private video's URLs are blob SAS that expire with
    the token, and no SAS in any playlist opens another blob."""
    with stack.client() as owner, stack.client(anonymous=True) as anon:
        video = upload_ready(owner, clips["silent"], "private sas", "private")
        link = owner.post(f"/api/v1/videos/{video['id']}/playback-token", json={"ttl_seconds": 600}).json()
        _, _, urls = playlist_urls(anon, link["playback_url"])
        seg = urls[1]
        query = parse_qs(urlsplit(seg).query)
        assert query["sr"] == ["b"] and query["sp"] == ["r"], query  # one blob, read only
        expires_at = link["expires_at"].replace("Z", "+00:00")
        assert query["se"][0].replace("Z", "+00:00") == expires_at, (query["se"], expires_at)
        assert httpx.get(seg).status_code == 200
        neighbour = seg.replace("seg_00000", "seg_00001") if "seg_00000" in seg else seg.replace("seg_", "seg_0")
        assert httpx.get(neighbour).status_code == 403  # this SAS is for its own blob only
        assert anon.get(f"/api/v1/videos/{video['id']}/master.m3u8").status_code == 404


# --- the embedded single process: its /media mount applies the same rule -------------------------------


def test_embedded_media_mount_enforces_the_same_check(embedded, clips):
    url, data, _, token = embedded
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as owner:
        video = upload_ready(owner, clips["silent"], "embedded private", "private")
        link = owner.post(f"/api/v1/videos/{video['id']}/playback-token", json={}).json()
    with httpx.Client(base_url=url, timeout=30) as anon:
        assert anon.get(f"/api/v1/videos/{video['id']}/master.m3u8").status_code == 404
        _, _, urls = playlist_urls(anon, link["playback_url"])
        signed = anon.get(urls[1])
        assert signed.status_code == 200 and signed.headers["cache-control"] == PRIVATE_IMMUTABLE
        assert (
            signed.content
            == (data / "blobs" / "media" / urls[1].partition("?")[0].removeprefix("/media/")).read_bytes()
        )
        plain = anon.get(urls[1].partition("?")[0])
        assert plain.status_code == 403 and "private" in detail(plain)
        secret = (data / "playback-secret").read_text().strip().encode()
        expired = anon.get(f"{urls[1].partition('?')[0]}?{segment_query(nginx_key(secret), uuid.UUID(video['id']), 1)}")
        assert expired.status_code == 403 and "expired" in detail(expired)
        forged = anon.get(urls[1][:-3] + "abc")
        assert forged.status_code == 403 and "not valid" in detail(forged)


# --- fail closed, and revoked links, at nginx: a second nginx whose nodes can be taken away ------------------


class Front:
    """A second nginx rendered from the stack's settings (the same template), with a 1 s access cache, whose
    upstream can be pointed at a dead port and reloaded: the API nodes become unreachable for it alone, and the
    shared stack goes on serving the module's other tests."""

    def __init__(self, stack: UpStack, state: Path, template_dir: Path = TEMPLATE_DIR) -> None:
        self.stack, self.state, self.template_dir = stack, state, template_dir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.conf = state / "nginx.conf"
        self.proc: subprocess.Popen | None = None

    def plan(self, nodes: list[str]) -> NginxPlan:
        return NginxPlan(
            listen=self.url.removeprefix("http://"),
            nodes=tuple(nodes),
            state_dir=str(self.state),
            error_log=str(self.state / "error.log"),
            access_log=str(self.state / "access.log"),
            upload_max_bytes=10**9,
            segment_key=nginx_key(secret_of(self.stack)),
            media_root=str((self.stack.data / "blobs").resolve()),
            user=nginx_user(),
            access_cache_seconds=ACCESS_CACHE_SECONDS,
        )

    def start(self) -> "Front":
        write_nginx_config(
            self.plan([n.url.removeprefix("http://") for n in self.stack.nodes]), self.conf, self.template_dir
        )
        exe = nginx_exe(Settings())
        self.proc = subprocess.Popen([exe, "-p", str(self.state), "-e", str(self.state / "error.log"),
                                      "-c", str(self.conf), "-g", "daemon off;"])  # fmt: skip
        wait_for(lambda: httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200, "second nginx", 30, self.proc)
        return self

    def lose_the_nodes(self) -> None:
        """Reload with the only node on a port nobody listens on (nginx keeps its caches across a reload)."""
        write_nginx_config(self.plan([f"127.0.0.1:{free_port()}"]), self.conf, self.template_dir)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: httpx.get(f"{self.url}/readyz", timeout=2).status_code == 502, "nginx reloaded", 30)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


ACCESS_CACHE_SECONDS = 1


@pytest.fixture
def front(disk_stack, tmp_path) -> Iterator[Front]:
    f = Front(disk_stack, tmp_path / "front")
    try:
        yield f.start()
    finally:
        f.stop()


def past_the_access_cache() -> None:
    """Let the second nginx's cached access decisions expire (waiting, not asserting on time)."""
    time.sleep(ACCESS_CACHE_SECONDS + 1)


def test_media_access_fails_closed_when_the_nodes_are_unreachable(disk_stack, creator, clips, front):
    """Issue 12, finding 8: the cached "public" answer must not be used stale once the video is private."""
    with owner_client(disk_stack, creator[1]) as owner, httpx.Client(base_url=front.url, timeout=30) as anon:
        video = upload_ready(owner, clips["audio"], "fails closed", "public")
        _, _, urls = playlist_urls(anon, video["playback_url"])
        plain = urls[1]
        assert anon.get(plain).status_code == 200  # nginx asked a node and cached "public"
        assert owner.patch(f"/api/v1/videos/{video['id']}", json={"visibility": "private"}).status_code == 200
        front.lose_the_nodes()
        past_the_access_cache()
        r = anon.get(plain)
        assert r.status_code == 503, (r.status_code, r.headers.get(DELIVERY_HEADER))
        assert "cannot be checked" in detail(r) and r.headers["cache-control"] == "no-store"
        assert r.headers["retry-after"]


def test_revoked_playback_links_stop_at_the_api_and_at_nginx(disk_stack, creator, clips, front):
    """Issue 12, finding 9: an owner ends every link handed out so far; new links work."""
    with owner_client(disk_stack, creator[1]) as owner, httpx.Client(base_url=front.url, timeout=30) as anon:
        video = upload_ready(owner, clips["audio"], "revocable", "private")
        vid = video["id"]
        old = owner.post(f"/api/v1/videos/{vid}/playback-token", json={}).json()
        _, _, old_urls = playlist_urls(anon, old["playback_url"])
        assert anon.get(old_urls[1]).status_code == 200  # nginx asked a node and cached "generation 0 is current"

        assert anon.post(f"/api/v1/videos/{vid}/playback-token/revoke").status_code == 401
        assert owner.post(f"/api/v1/videos/{vid}/playback-token/revoke").status_code == 204
        r = anon.get(old["playback_url"])  # the API: at once
        assert r.status_code == 403 and "revoked" in detail(r), r.text
        past_the_access_cache()
        r = anon.get(old_urls[1])  # nginx: once its cached answer expired
        assert r.status_code == 403 and "revoked" in detail(r), r.status_code

        new = owner.post(f"/api/v1/videos/{vid}/playback-token", json={}).json()
        _, _, new_urls = playlist_urls(anon, new["playback_url"])
        assert parse_qs(urlsplit(new_urls[1]).query)["g"] == ["1"]
        ok = anon.get(new_urls[1])
        assert ok.status_code == 200 and ok.headers[DELIVERY_HEADER] == "nginx-static"
        # A forged generation never reaches a node: the signature covers it.
        forged = new_urls[1].replace("&g=1", "&g=0")
        assert anon.get(forged).status_code == 403

"""Accounts and ownership on the real stack: sign-up/sign-in with cookies, API tokens, and every video
visible, playable and changeable only by whom it should be."""

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import upload, wait_status

PASSWORD = "a long enough password"


def _browser(stack) -> httpx.Client:
    """A cookie-carrying client, as a browser on the site's own pages."""
    return httpx.Client(base_url=stack.url, timeout=30, headers={"Origin": stack.url})


@contextmanager
def _signup(stack, email: str) -> Iterator[httpx.Client]:
    with _browser(stack) as client:
        r = client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "display_name": "Eve"})
        assert r.status_code == 201, r.text
        yield client


def test_sign_up_sign_in_sign_out(stack):
    with _signup(stack, "Alice@Example.test") as client:
        cookie = client.cookies.jar and next(iter(client.cookies.jar))
        assert cookie.name == "streamify_session" and cookie.has_nonstandard_attr("HttpOnly")
        me = client.get("/api/v1/auth/me").json()
        assert me["email"] == "alice@example.test" and me["is_operator"] is False  # not the install's first account

        with _browser(stack) as other:
            dup = other.post("/api/v1/auth/signup", json={"email": "alice@example.TEST", "password": PASSWORD})
            assert dup.status_code == 409 and "already exists" in dup.json()["detail"]
            short = other.post("/api/v1/auth/signup", json={"email": "bob@example.test", "password": "short"})
            assert short.status_code == 422
            bad_email = other.post("/api/v1/auth/signup", json={"email": "not-an-email", "password": PASSWORD})
            assert bad_email.status_code == 422
            wrong = other.post("/api/v1/auth/login", json={"email": "alice@example.test", "password": "nope nope nope"})
            unknown = other.post("/api/v1/auth/login", json={"email": "nobody@example.test", "password": PASSWORD})
            assert wrong.status_code == unknown.status_code == 401
            assert wrong.json() == unknown.json() == {"detail": "wrong email or password"}
            assert other.get("/api/v1/auth/me").status_code == 401
            ok = other.post("/api/v1/auth/login", json={"email": " ALICE@example.test", "password": PASSWORD})
            assert ok.status_code == 200 and other.get("/api/v1/auth/me").json()["id"] == me["id"]

        assert client.post("/api/v1/auth/logout").status_code == 204
        assert client.get("/api/v1/auth/me").status_code == 401


def test_api_tokens_are_shown_once_and_can_be_revoked(stack):
    with _signup(stack, "tokens@example.test") as browser:
        created = browser.post("/api/v1/auth/tokens", json={"name": "laptop"}).json()
        secret = created["token"]
        listed = browser.get("/api/v1/auth/tokens").json()
        assert [t["name"] for t in listed] == ["laptop"] and "token" not in listed[0]
        assert secret.startswith(listed[0]["prefix"])
        with stack.client(secret) as cli:
            assert cli.get("/api/v1/auth/me").json()["email"] == "tokens@example.test"
        assert browser.delete(f"/api/v1/auth/tokens/{created['id']}").status_code == 204
        with stack.client(secret) as cli:
            r = cli.get("/api/v1/auth/me")
            assert r.status_code == 401 and "revoked" in r.json()["detail"]
    with stack.client("sfy_made-up") as forged:
        assert forged.get("/api/v1/auth/me").status_code == 401
    with httpx.Client(base_url=stack.url, headers={"Authorization": "Basic abc"}) as basic:
        assert "Bearer" in basic.get("/api/v1/auth/me").json()["detail"]


def test_cross_site_requests_with_the_session_cookie_are_refused(stack, clips):
    with _signup(stack, "csrf@example.test") as browser:
        forged = browser.post("/api/v1/auth/tokens", json={"name": "x"}, headers={"Origin": "http://evil.test"})
        assert forged.status_code == 403
        fetch = browser.post("/api/v1/auth/tokens", json={"name": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert fetch.status_code == 403
        assert browser.get("/api/v1/auth/tokens").json() == []


def test_cookie_writes_through_a_proxy_are_judged_by_sec_fetch_site(stack):
    """Behind Front Door -> nginx -> API, Host is an internal name and Origin the public one: the browser's own
    Sec-Fetch-Site decides; Origin against Host (or X-Forwarded-Host) only for browsers that do not send it."""
    public = {"Origin": "https://videos.example.com"}  # never the API's Host here
    with _signup(stack, "proxied@example.test") as browser:
        for site in ("same-origin", "none"):
            r = browser.post("/api/v1/auth/tokens", json={"name": site}, headers={**public, "Sec-Fetch-Site": site})
            assert r.status_code == 201, (site, r.text)
        for site in ("cross-site", "same-site", "bogus"):
            r = browser.post("/api/v1/auth/tokens", json={"name": site}, headers={**public, "Sec-Fetch-Site": site})
            assert r.status_code == 403 and r.json()["detail"] == "cross-site request refused", (site, r.text)
        # Sec-Fetch-Site wins even when Origin would match Host.
        r = browser.post("/api/v1/auth/tokens", json={"name": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        # No Sec-Fetch-Site (an old browser): Origin must be the Host the proxy forwarded, or the API's own.
        r = browser.post("/api/v1/auth/tokens", json={"name": "old"}, headers=public)
        assert r.status_code == 403
        forwarded = {**public, "X-Forwarded-Host": "videos.example.com"}
        r = browser.post("/api/v1/auth/tokens", json={"name": "forwarded"}, headers=forwarded)
        assert r.status_code == 201, r.text
        r = browser.post("/api/v1/auth/tokens", json={"name": "x"}, headers={"Origin": "null"})
        assert r.status_code == 403
        assert sorted(t["name"] for t in browser.get("/api/v1/auth/tokens").json()) == [
            "forwarded",
            "none",
            "same-origin",
        ]
        # Every other cookie write passes the same check: sign-out from the public origin.
        r = browser.post("/api/v1/auth/logout", headers={**public, "Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 204 and browser.get("/api/v1/auth/me").status_code == 401
    # API tokens are not cookies: no CSRF check at all, whatever the headers say.
    with stack.client() as script:
        r = script.post("/api/v1/auth/tokens", json={"name": "s"}, headers={**public, "Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 201, r.text
        assert script.delete(f"/api/v1/auth/tokens/{r.json()['id']}").status_code == 204


def test_anonymous_upload_is_refused_and_leaves_nothing(stack, clips):
    with stack.client(anonymous=True) as anon:
        before = anon.get("/api/v1/videos").json()["total"]
        r = upload(anon, clips["720p_short"])
        assert r.status_code == 401 and "sign in" in r.json()["detail"]
        assert anon.get("/api/v1/videos").json()["total"] == before


@pytest.fixture(scope="module")
def three_videos(stack, clips):
    """The default creator's public, unlisted and private video, all ready."""
    ids = {}
    with stack.client() as owner:
        for visibility in ("public", "unlisted", "private"):
            r = owner.post(
                "/api/v1/videos",
                files={"file": ("clip.mp4", clips["720p_short"].read_bytes())},
                data={"title": f"{visibility} clip", "visibility": visibility},
            )
            assert r.status_code == 202, r.text
            ids[visibility] = r.json()["id"]
        for video_id in ids.values():
            assert wait_status(owner, video_id)["status"] == "ready"
    return ids


def test_private_videos_are_invisible_to_everyone_else(stack, three_videos):
    _, other_token = stack.new_user()
    private = three_videos["private"]
    with stack.client() as owner, stack.client(other_token) as other, stack.client(anonymous=True) as anon:
        assert owner.get(f"/api/v1/videos/{private}").json()["is_owner"] is True
        assert owner.get(f"/api/v1/videos/{private}/master.m3u8").status_code == 200
        for who in (other, anon):
            r = who.get(f"/api/v1/videos/{private}")
            assert r.status_code == 404, r.status_code
            assert r.json()["detail"] == f"video {private} not found"  # same as a video that never existed
            # Playback routes answer the same 404 (README: a video someone may not see answers 404); a playback
            # token opens them (tests/test_private_playback.py).
            for path in ("/master.m3u8", "/720p/index.m3u8"):
                r = who.get(f"/api/v1/videos/{private}{path}")
                assert r.status_code == 404, (path, r.status_code)
                assert r.json()["detail"] == f"video {private} not found"
        cache = owner.get(f"/api/v1/videos/{private}/master.m3u8").headers["cache-control"]
        assert cache == "private, no-store", cache


def test_others_can_watch_but_never_change_public_and_unlisted_videos(stack, three_videos):
    _, other_token = stack.new_user()
    with stack.client(other_token) as other, stack.client(anonymous=True) as anon:
        for visibility in ("public", "unlisted"):
            video_id = three_videos[visibility]
            for who in (other, anon):
                video = who.get(f"/api/v1/videos/{video_id}").json()
                assert video["status"] == "ready" and video["is_owner"] is False
                assert who.get(f"/api/v1/videos/{video_id}/master.m3u8").status_code == 200
            assert other.patch(f"/api/v1/videos/{video_id}", json={"title": "mine now"}).status_code == 404
            assert other.delete(f"/api/v1/videos/{video_id}").status_code == 404
            assert anon.delete(f"/api/v1/videos/{video_id}").status_code == 401
        assert other.get("/api/v1/me/videos").json()["items"] == []
    with stack.client() as owner:
        assert owner.get(f"/api/v1/videos/{three_videos['public']}").json()["title"] == "public clip"


def test_index_lists_only_public_ready_videos_and_search_finds_them(stack, three_videos):
    with stack.client(anonymous=True) as anon:
        index = anon.get("/api/v1/videos", params={"limit": 100}).json()
        ids = {v["id"] for v in index["items"]}
        assert three_videos["public"] in ids
        assert not {three_videos["unlisted"], three_videos["private"]} & ids
        assert all(v["visibility"] == "public" and v["status"] == "ready" for v in index["items"])
        found = anon.get("/api/v1/videos", params={"q": "PUBLIC clip"}).json()
        assert [v["id"] for v in found["items"]] == [three_videos["public"]]
    with stack.client() as owner:
        mine = owner.get("/api/v1/me/videos", params={"q": "clip", "limit": 100}).json()
        assert set(three_videos.values()) <= {v["id"] for v in mine["items"]}


def test_owner_edits_title_description_and_visibility(stack, clips):
    with stack.client() as owner:
        video_id = upload(owner, clips["720p_short"], title="draft").json()["id"]
        r = owner.patch(f"/api/v1/videos/{video_id}", json={"title": "  Final cut ", "description": "About it",
                                                             "visibility": "private"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert (r.json()["title"], r.json()["description"], r.json()["visibility"]) == (
            "Final cut", "About it", "private")  # fmt: skip
        assert owner.patch(f"/api/v1/videos/{video_id}", json={"visibility": "secret"}).status_code == 422
        assert owner.patch(f"/api/v1/videos/{video_id}", json={"title": ""}).status_code == 422
        with stack.client(anonymous=True) as anon:
            assert anon.get(f"/api/v1/videos/{video_id}").status_code == 404
        wait_status(owner, video_id)
        assert owner.delete(f"/api/v1/videos/{video_id}").status_code == 204

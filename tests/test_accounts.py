"""Accounts and ownership on the real stack: sign-up/sign-in with cookies, API tokens, and every video
visible, playable and changeable only by whom it should be."""

import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.accounts import mint_token, set_password
from schemas.tables import AuthToken, TokenKind, User
from tests.conftest import start_api, stop, upload, wait_status
from tests.inprocess import LocalApp, local_app

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


# --- Issue 12, finding 7: throttled sign-ins, bounded Argon2, password policy, expiring tokens, Secure cookies ---


def _forwarded(address: str) -> dict[str, str]:
    """The stack's node trusts X-Forwarded-For from 127.0.0.1 (uvicorn's default), as behind nginx."""
    return {"X-Forwarded-For": address}


def test_sign_ins_are_throttled_per_account_on_every_node(stack):
    """Failures count in the database: guesses spread over two nodes and many addresses still stop at the
    account's limit (10), and then even the right password waits, with Retry-After; other accounts do not."""
    email, _ = stack.new_user()
    other_email, _ = stack.new_user()
    second, second_url = start_api(stack.env, stack.logs)
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as a, httpx.Client(base_url=second_url, timeout=30) as b:
            for i in range(10):
                node = (a, b)[i % 2]
                r = node.post("/api/v1/auth/login", json={"email": email, "password": f"guess number {i}"},
                              headers=_forwarded(f"198.51.100.{i + 1}"))  # fmt: skip
                assert r.status_code == 401, (i, r.text)
            for node in (a, b):
                r = node.post("/api/v1/auth/login", json={"email": email, "password": "correct horse battery"},
                              headers=_forwarded("198.51.100.200"))  # fmt: skip
                assert r.status_code == 429, r.text
                assert 1 <= int(r.headers["retry-after"]) <= 900
                assert (
                    r.json()["detail"] == f"too many failed sign-ins: try again in {r.headers['retry-after']} seconds"
                )
            r = b.post("/api/v1/auth/login", json={"email": other_email, "password": "correct horse battery"},
                       headers=_forwarded("198.51.100.200"))  # fmt: skip
            assert r.status_code == 200, r.text
    finally:
        stop(second)


def test_sign_ins_are_throttled_per_address(stack):
    """One address guessing many accounts is stopped at the address limit (50), whatever the account; a success
    does not clear it. Another address is not affected."""
    email, _ = stack.new_user()
    guesser, bystander = _forwarded("203.0.113.7"), _forwarded("203.0.113.8")
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for i in range(50):
            r = client.post("/api/v1/auth/login", json={"email": f"nobody-{i}@example.test", "password": "whatever!!"},
                            headers=guesser)  # fmt: skip
            assert r.status_code == 401, (i, r.text)
        r = client.post(
            "/api/v1/auth/login", json={"email": email, "password": "correct horse battery"}, headers=guesser
        )
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        r = client.post(
            "/api/v1/auth/login", json={"email": email, "password": "correct horse battery"}, headers=bystander
        )
        assert r.status_code == 200, r.text


def test_weak_passwords_are_refused_and_a_new_password_revokes_tokens_on_the_stack(stack):
    """On PostgreSQL behind a real node: `12345678` and `password` were accepted, and API tokens outlived a
    password change."""
    with _browser(stack) as browser:
        for weak in ("12345678", "password", "password1234"):
            r = browser.post("/api/v1/auth/signup", json={"email": "weak@example.test", "password": weak})
            assert r.status_code == 422, (weak, r.text)
        r = browser.post("/api/v1/auth/signup", json={"email": "changer@example.test", "password": PASSWORD})
        assert r.status_code == 201, r.text
        created = browser.post("/api/v1/auth/tokens", json={"name": "laptop"}).json()
        assert created["expires_at"] is not None
        with stack.client(created["token"]) as script:
            assert script.get("/api/v1/auth/me").status_code == 200
            new = {"current_password": PASSWORD, "new_password": "another long password"}
            assert browser.post("/api/v1/auth/password", json=new).status_code == 204
            assert script.get("/api/v1/auth/me").status_code == 401
        assert browser.get("/api/v1/auth/me").json()["email"] == "changer@example.test"


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_forty_concurrent_sign_ins_stay_within_bounded_memory(stack):
    """Argon2 takes 64 MiB per hash: 40 sign-ins at once took a node 1 GB. Now at most
    password_hash_concurrency (2) hash at once per process; the others wait their turn (or get 503 + Retry-After)."""
    email, _ = stack.new_user()
    node, url = start_api(stack.env, stack.logs)
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            client.get("/api/v1/videos")  # the node's ordinary working set, before the burst
            before = _peak_rss(node.pid)

            def sign_in(i: int) -> httpx.Response:
                return client.post("/api/v1/auth/login", json={"email": email, "password": "correct horse battery"},
                                   headers=_forwarded(f"192.0.2.{i + 1}"))  # fmt: skip

            with ThreadPoolExecutor(40) as pool:
                answers = list(pool.map(sign_in, range(40)))
            grown = _peak_rss(node.pid) - before
    finally:
        stop(node)
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) <= {200, 503} and statuses[200] >= 1, statuses
    assert all(int(r.headers["retry-after"]) >= 1 for r in answers if r.status_code == 503)
    print(f"40 concurrent sign-ins: {dict(statuses)}, peak RSS grew {grown / 2**20:.0f} MiB")
    assert grown < 400 * 2**20, f"peak RSS grew {grown / 2**20:.0f} MiB"


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Iterator[LocalApp]:
    with local_app(tmp_path_factory.mktemp("accounts"), api_token_ttl_days=7) as app:
        yield app


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("12345678", "password must be 10 to 128 characters"),
        ("password", "password must be 10 to 128 characters"),
        ("1234567890", "one of the most common passwords"),
        ("qwertyuiop", "one of the most common passwords"),
        ("PassWord123", "one of the most common passwords"),
        ("policy-owner@example.test", "must not be the email address"),
    ],
)
def test_short_and_common_passwords_are_refused(install, password, words):
    r = install.client.post("/api/v1/auth/signup", json={"email": "policy-owner@example.test", "password": password})
    assert r.status_code == 422 and words in r.json()["detail"], r.text


def _new_account(install: LocalApp, client: TestClient | None = None) -> tuple[TestClient, str]:
    client = client or install.client
    email = f"user-{secrets.token_hex(4)}@example.test"
    r = client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return client, email


def test_api_tokens_expire(install):
    with TestClient(install.app) as browser:
        _new_account(install, browser)
        created = browser.post("/api/v1/auth/tokens", json={"name": "ci"}).json()
        expires = datetime.fromisoformat(created["expires_at"])
        assert timedelta(days=7) - timedelta(minutes=5) < expires - datetime.now(UTC) <= timedelta(days=7)
        assert browser.get("/api/v1/auth/tokens").json()[0]["expires_at"] == created["expires_at"]
        script = {"Authorization": f"Bearer {created['token']}"}
        assert install.client.get("/api/v1/auth/me", headers=script).status_code == 200
        with Session(install.app.state.engine) as session:
            row = session.get(AuthToken, uuid.UUID(created["id"]))
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            session.add(row)
            session.commit()
        assert install.client.get("/api/v1/auth/me", headers=script).status_code == 401


def test_a_password_change_revokes_every_session_and_api_token(install):
    with TestClient(install.app) as browser, TestClient(install.app) as elsewhere:
        _, email = _new_account(install, browser)
        token = browser.post("/api/v1/auth/tokens", json={"name": "laptop"}).json()["token"]
        assert elsewhere.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
        wrong = browser.post("/api/v1/auth/password", json={"current_password": "not it at all", "new_password": "x"})
        assert wrong.status_code == 401
        weak = browser.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "password1"})
        assert weak.status_code == 422
        new = "a different long password"
        r = browser.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": new})
        assert r.status_code == 204, r.text
        assert install.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert elsewhere.get("/api/v1/auth/me").status_code == 401  # the other browser is signed out
        assert browser.get("/api/v1/auth/me").json()["email"] == email  # this one got a fresh session
        assert browser.get("/api/v1/auth/tokens").json() == []
        assert elsewhere.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 401
        assert elsewhere.post("/api/v1/auth/login", json={"email": email, "password": new}).status_code == 200


def test_the_cli_password_reset_revokes_api_tokens_too(install):
    _, email = _new_account(install, TestClient(install.app))
    with Session(install.app.state.engine) as session:
        user = session.exec(select(User).where(User.email == email)).one()
        token, _ = mint_token(session, user, TokenKind.api, name="script")
        set_password(session, user, "yet another long password")
    assert install.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def _session_cookie(response) -> str:
    return next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "streamify_session=" in v)


def test_session_cookie_is_secure_when_the_public_url_is_https(install, tmp_path):
    """Behind a proxy that terminates TLS the API is spoken to over http: the public URL decides."""
    with local_app(tmp_path, public_url="https://videos.example.com") as behind_tls:
        r = behind_tls.client.post("/api/v1/auth/signup", json={"email": "a@example.test", "password": PASSWORD})
        assert r.status_code == 201 and "; secure" in _session_cookie(r).lower(), _session_cookie(r)
    r = install.client.post("/api/v1/auth/signup", json={"email": "plain@example.test", "password": PASSWORD})
    assert r.status_code == 201 and "secure" not in _session_cookie(r).lower()  # plain http, no public URL


def test_sign_ins_from_one_address_are_throttled_in_process(tmp_path):
    """The same rules on embedded defaults (SQLite), with small limits: the client address is the peer's."""
    with local_app(tmp_path, login_max_failures_per_address=3, login_max_failures_per_account=2) as app:
        _, email = _new_account(app, TestClient(app.app))
        with (
            TestClient(app.app, client=("192.0.2.1", 1)) as guesser,
            TestClient(app.app, client=("192.0.2.2", 1)) as ok,
        ):
            for i in range(3):
                r = guesser.post("/api/v1/auth/login", json={"email": f"x{i}@example.test", "password": "nope nope"})
                assert r.status_code == 401
            r = guesser.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            for _ in range(2):
                assert ok.post("/api/v1/auth/login", json={"email": email, "password": "wrong one!"}).status_code == 401
            r = ok.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            assert r.status_code == 429  # the account's own limit now


def test_api_tokens_from_before_expiry_get_the_default_life(tmp_path):
    """Tokens minted when API tokens never expired get 90 days from the upgrade (migration 0007)."""
    from alembic import command
    from sqlalchemy import text

    from core.db import alembic_config, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0005")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, display_name, password_hash, is_operator, created_at)"
                    " VALUES (:id, 'a@example.test', 'a', 'x', false, CURRENT_TIMESTAMP)"
                ),
                {"id": uuid.UUID(int=1).hex},
            )
            conn.execute(
                text(
                    "INSERT INTO auth_tokens (id, user_id, kind, name, token_hash, prefix, created_at, expires_at)"
                    " VALUES (:id, :user, 'api', 'old', :hash, 'sfy_', CURRENT_TIMESTAMP, NULL)"
                ),
                {"id": uuid.UUID(int=2).hex, "user": uuid.UUID(int=1).hex, "hash": "0" * 64},
            )
        command.upgrade(cfg, "head")
        with Session(engine) as session:
            expires = session.get(AuthToken, uuid.UUID(int=2)).expires_at
    finally:
        engine.dispose()
    left = expires.replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(days=90) - timedelta(minutes=5) < left <= timedelta(days=90)


def test_ipv6_clients_are_counted_by_their_64():
    from core.login_throttle import address_key

    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("192.0.2.1") != address_key("192.0.2.2")
    assert address_key(None) is None

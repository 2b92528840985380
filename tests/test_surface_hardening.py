"""Issue 12, finding 9 (the HTTP surface), in-process (TestClient on SQLite, real blob folders): a lone surrogate
is a 422 not a 500; PATCH cleans titles with the upload path's sanitizer; a private video's playlists answer 404
like a missing video; pages carry a Content-Security-Policy their templates satisfy, nosniff and Referrer-Policy;
an owner revokes every playback link at once (the API and the embedded /media mount; nginx: test_private_playback).
"""

import base64
import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.playback_tokens import (
    Revoked,
    TokenRefused,
    nginx_key,
    segment_query,
    sign_token,
    verify_segment,
    verify_token,
)
from ingest.intake import clean_title
from tests.inprocess import LocalApp, local_app
from tests.media import make_clip

HOSTILE = "\u202e\u200bcat\x07 \u2066video\u2069\ufeff\u00ad\u200d\u2028  "
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("tiny") / "tiny.mp4", size="160x90", rate=10, seconds=1, channels=1)


@pytest.fixture
def install(tmp_path) -> Iterator[LocalApp]:
    with local_app(tmp_path / "install") as app:
        yield app


def upload(install: LocalApp, token: str, clip: Path, title: str, visibility: str = "public") -> dict:
    with clip.open("rb") as f:
        r = install.client.post(
            "/api/v1/videos",
            files={"file": (clip.name, f)},
            data={"title": title, "visibility": visibility},
            headers=install.as_user(token),
        )
    assert r.status_code == 202, r.text
    return r.json()


# --- a lone surrogate -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/api/v1/auth/tokens", "post", b'{"name": "\\ud800"}'),  # refused by the string field itself
        ("/api/v1/auth/tokens", "post", b'{"name": ["\\udfff"]}'),  # echoed back in the error
        ("/api/v1/auth/login", "post", b'{"email": "\\ud83d@example.test", "password": ["\\ude00"]}'),
    ],
)
def test_a_lone_surrogate_in_json_is_a_422_naming_the_field(install, path, method, body):
    token = install.user()
    headers = {**install.as_user(token), "content-type": "application/json"}
    r = getattr(install.client, method)(path, content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["detail"] and all("loc" in e for e in r.json()["detail"])
    r.content.decode("utf-8")  # encodable: the surrogate echoed as U+FFFD


# --- one title sanitizer ------------------------------------------------------------------------------------


def test_patch_cleans_titles_with_the_upload_paths_sanitizer(install, tiny_clip):
    token = install.user()
    uploaded = upload(install, token, tiny_clip, HOSTILE)
    assert uploaded["title"] == clean_title(HOSTILE, None) == "cat video"
    r = install.client.patch(
        f"/api/v1/videos/{uploaded['id']}", json={"title": HOSTILE}, headers=install.as_user(token)
    )
    assert r.status_code == 200, r.text
    assert r.json()["title"] == uploaded["title"]
    assert install.client.get(f"/api/v1/videos/{uploaded['id']}").json()["title"] == "cat video"
    # Nothing printable left: blank, refused, and nothing changed.
    for blank in ("\u200b\u200d", "\u202e", " \x00 "):
        r = install.client.patch(
            f"/api/v1/videos/{uploaded['id']}", json={"title": blank}, headers=install.as_user(token)
        )
        assert r.status_code == 422 and "blank" in r.json()["detail"], (blank, r.text)
    assert install.client.get(f"/api/v1/videos/{uploaded['id']}").json()["title"] == "cat video"


# --- private playlists: 404 ---------------------------------------------------------------------------------


def test_private_playlists_answer_404_like_a_missing_video(install, tiny_clip):
    owner, other = install.user(), install.user()
    video = upload(install, owner, tiny_clip, "secret", "private")
    for path in ("master.m3u8", "720p/index.m3u8", "storyboard.vtt"):
        missing = install.client.get(f"/api/v1/videos/{MISSING}/{path}")
        assert missing.status_code == 404
        for headers in ({}, install.as_user(other)):
            r = install.client.get(f"/api/v1/videos/{video['id']}/{path}", headers=headers)
            assert r.status_code == 404, (path, r.status_code)
            assert r.json()["detail"] == f"video {video['id']} not found"
            assert r.json()["detail"].replace(video["id"], MISSING) == missing.json()["detail"]


# --- pages: CSP, nosniff, Referrer-Policy -------------------------------------------------------------------


class InlineFinder(HTMLParser):
    """Everything a `script-src 'self'; style-src 'self'` policy would block in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {name}=" for name in names if name == "style" or name.startswith("on")]
        self.found += [
            f"{tag} javascript: URL" for _, value in attrs if value and value.strip().startswith("javascript:")
        ]


def test_pages_send_a_csp_their_templates_satisfy(install):
    operator = install.user(operator=True)
    pages = ["/", "/login", "/signup", "/library", "/upload", f"/watch/{uuid.uuid4()}"]
    for path in [*pages, "/ops"]:
        r = install.client.get(path, headers=install.as_user(operator) if path == "/ops" else {})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        policy = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'", policy
        assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
        assert "unsafe" not in r.headers["content-security-policy"]
        assert "blob:" in policy["worker-src"] and "blob:" in policy["media-src"]  # hls.js: MSE and its worker
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-frame-options"] == "DENY"
        finder = InlineFinder()
        finder.feed(r.text)
        assert not finder.found, (path, finder.found)
        for src in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', r.text):
            assert src.startswith("/static/"), (path, src)  # our own files only
    api = install.client.get("/api/v1/videos")
    assert api.headers["x-content-type-options"] == "nosniff" and api.headers["referrer-policy"] == "same-origin"
    docs = install.client.get("/docs")  # FastAPI's Swagger page keeps its CDN script, but cannot be framed
    assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"


def test_the_csp_names_the_media_origin_players_fetch_from(tmp_path):
    with local_app(tmp_path / "cdn", segment_base_url="https://cdn.example.test/media") as install:
        policy = install.client.get("/").headers["content-security-policy"]
    for directive in ("img-src", "media-src", "connect-src"):
        assert re.search(rf"{directive} [^;]*https://cdn\.example\.test(;| )", policy), (directive, policy)


# --- revoking playback links --------------------------------------------------------------------------------


def test_revoking_links_ends_every_earlier_token_and_media_signature(install, tiny_clip):
    owner, other = install.user(), install.user()
    video = upload(install, owner, tiny_clip, "shared", "private")
    vid = video["id"]
    link = install.client.post(f"/api/v1/videos/{vid}/playback-token", json={}, headers=install.as_user(owner)).json()
    old_token = link["token"]
    signer = install.app.state.signer
    segment = install.settings.blob_dir / "media" / vid / "720p" / "seg_00000.m4s"
    segment.parent.mkdir(parents=True, exist_ok=True)
    segment.write_bytes(b"segment bytes")
    expires = int(time.time()) + 600
    old_media = f"/media/{vid}/720p/seg_00000.m4s?{segment_query(signer.segment_key, uuid.UUID(vid), expires)}"
    assert install.client.get(f"/api/v1/videos/{vid}", params={"token": old_token}).status_code == 200
    assert install.client.get(old_media).status_code == 200

    # Only the owner may revoke; for anyone else the video does not exist.
    assert install.client.post(f"/api/v1/videos/{vid}/playback-token/revoke").status_code == 401
    r = install.client.post(f"/api/v1/videos/{vid}/playback-token/revoke", headers=install.as_user(other))
    assert r.status_code == 404
    r = install.client.post(f"/api/v1/videos/{vid}/playback-token/revoke", headers=install.as_user(owner))
    assert r.status_code == 204

    for path in (f"/api/v1/videos/{vid}", f"/api/v1/videos/{vid}/master.m3u8"):
        r = install.client.get(path, params={"token": old_token})
        assert r.status_code == 403 and "revoked" in r.json()["detail"], (path, r.text)
    r = install.client.get(old_media)
    assert r.status_code == 403 and "revoked" in r.json()["detail"]

    new = install.client.post(f"/api/v1/videos/{vid}/playback-token", json={}, headers=install.as_user(owner)).json()
    assert new["token"] != old_token
    assert install.client.get(f"/api/v1/videos/{vid}", params={"token": new["token"]}).status_code == 200
    new_media = f"/media/{vid}/720p/seg_00000.m4s?{segment_query(signer.segment_key, uuid.UUID(vid), expires, 1)}"
    assert install.client.get(new_media).content == b"segment bytes"
    # The owner's own playback goes on (a fresh token of the current generation every time).
    r = install.client.get(f"/api/v1/videos/{vid}/master.m3u8", headers=install.as_user(owner))
    assert "is not ready to play" in r.json()["detail"], r.text  # granted: only the encode is missing


def test_tokens_and_segment_signatures_cover_the_playback_generation():
    secret, vid, now = b"s" * 32, uuid.uuid4(), 1_800_000_000
    old, new = sign_token(secret, vid, now + 60), sign_token(secret, vid, now + 60, 2)
    assert old.count(".") == 1 and new.startswith(f"{now + 60}.2.")  # generation 0: the format from before
    assert verify_token(secret, vid, new, now, 2) == now + 60
    for token, current in ((old, 2), (new, 3), (new, 0)):
        with pytest.raises(Revoked):
            verify_token(secret, vid, token, now, current)
    forged = new.replace(".2.", ".3.")  # the generation is under the MAC
    with pytest.raises(TokenRefused, match="not valid"):
        verify_token(secret, vid, forged, now, 3)
    with pytest.raises(TokenRefused, match="malformed"):
        verify_token(secret, vid, new.replace(".2.", ".02."), now, 2)
    key = nginx_key(secret)
    # nginx: secure_link_md5 "$secure_link_expires:$streamify_vid$streamify_generation_part:<key>"
    expected = base64.urlsafe_b64encode(hashlib.md5(f"{now}:{vid}:2:{key}".encode()).digest()).rstrip(b"=").decode()
    assert segment_query(key, vid, now, 2) == f"e={now}&st={expected}&g=2"
    assert verify_segment(key, vid, expected, str(now), now - 1, "2", 2) == now
    with pytest.raises(Revoked):
        verify_segment(key, vid, expected, str(now), now - 1, "2", 3)
    with pytest.raises(TokenRefused, match="not valid"):
        verify_segment(key, vid, expected, str(now), now - 1, "3", 3)

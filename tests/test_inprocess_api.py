"""The API in the test process: each app uses the settings it was built with, and refuses bad requests with a
status and a message that names the problem (TestClient, real SQLite databases and blob folders, no server)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inprocess import LocalApp, local_app
from tests.media import make_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("tiny") / "tiny.mp4", size="160x90", rate=10, seconds=1, channels=1)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _upload(install: LocalApp, token: str, path: Path, title: str = "tiny", visibility: str = "public"):
    with path.open("rb") as f:
        data = {"title": title, "visibility": visibility}
        return install.client.post(
            "/api/v1/videos", files={"file": (path.name, f)}, data=data, headers=install.as_user(token)
        )


def test_two_apps_in_one_process_each_read_and_write_only_their_own(tmp_path, tiny_clip):
    with (
        local_app(tmp_path / "a", max_upload_bytes=3_000_000, queue="queue-a") as a,
        local_app(tmp_path / "b", max_upload_bytes=4_000_000, queue="queue-b") as b,
    ):
        token_a, token_b = a.user(), b.user()
        r = _upload(a, token_a, tiny_clip, "only in a")
        assert r.status_code == 202, r.text
        video_id = r.json()["id"]

        # The video is in A's database and blob folder, its doorbell in A's broker folder; B has none of it.
        assert a.client.get(f"/api/v1/videos/{video_id}", headers=a.as_user(token_a)).json()["title"] == "only in a"
        assert b.client.get(f"/api/v1/videos/{video_id}", headers=b.as_user(token_b)).status_code == 404
        assert [p.parent.name for p in _files(a.settings.blob_dir / "sources")] == [video_id]
        assert _files(b.settings.blob_dir) == []
        assert len(_files(a.settings.broker_dir / "queue")) == 1
        assert _files(b.settings.broker_dir / "queue") == []

        # Accounts are per install: A's token means nothing to B.
        assert b.client.get("/api/v1/auth/me", headers=b.as_user(token_a)).status_code == 401
        assert a.client.get("/api/v1/me/videos", headers=a.as_user(token_a)).json()["total"] == 1
        assert b.client.get("/api/v1/me/videos", headers=b.as_user(token_b)).json()["total"] == 0

        # Pages and limits come from the app's own settings too.
        assert 'data-max-bytes="3000000"' in a.client.get("/upload").text
        assert 'data-max-bytes="4000000"' in b.client.get("/upload").text
        assert a.client.options("/api/v1/uploads/").headers["Tus-Max-Size"] == "3000000"
        assert b.client.options("/api/v1/uploads/").headers["Tus-Max-Size"] == "4000000"
        for install in (a, b):
            assert install.client.get("/readyz").json()["checks"] == {
                "database": "ok",
                "broker": "ok",
                "storage": "ok",
            }


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Iterator[LocalApp]:
    with local_app(tmp_path_factory.mktemp("install"), max_upload_bytes=200_000) as app:
        yield app


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("refusals")
    files = {
        "empty": (d / "empty.mp4", b""),
        "notes": (d / "notes.mp4", b"just some notes, not a video\n" * 50),
        "playlist": (d / "evil.m3u8", b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"),
        "big": (d / "big.mp4", b"\x00\x00\x00\x18ftypisom" + b"\0" * 300_000),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: path for name, (path, _) in files.items()}


def _video_rows(install: LocalApp, token: str) -> int:
    return install.client.get("/api/v1/me/videos", headers=install.as_user(token)).json()["total"]


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("empty", 422, "empty file"),
        ("notes", 415, "not a media file"),
        ("playlist", 415, "not a media file"),
        ("big", 413, "file too large: the limit is 200000 bytes"),
    ],
)
def test_refused_uploads_name_the_problem_and_keep_nothing(install, bad_files, name, status, words):
    token = install.user()
    r = _upload(install, token, bad_files[name])
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert _video_rows(install, token) == 0
    assert _files(install.settings.blob_dir / "sources") == []
    assert _files(install.settings.tmp_dir / "uploads") == []


def test_anonymous_writes_are_401_and_say_how_to_sign_in(install, bad_files):
    with bad_files["notes"].open("rb") as f:
        r = install.client.post("/api/v1/videos", files={"file": ("notes.mp4", f)})
    assert r.status_code == 401
    assert r.json()["detail"] == "sign in or send an API token"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    r = install.client.get("/api/v1/me/videos", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    assert "Bearer <token>" in r.json()["detail"]
    assert install.client.get("/api/v1/me/videos", headers=install.as_user("sfy_forged")).status_code == 401


def test_operator_routes_are_403_for_creators_and_open_to_operators(install):
    creator, operator = install.user(), install.user(operator=True)
    r = install.client.get("/api/v1/ops/snapshot", headers=install.as_user(creator))
    assert r.status_code == 403
    assert "operators only" in r.json()["detail"]
    assert install.client.get("/ops", headers=install.as_user(creator)).status_code == 403
    assert install.client.get("/api/v1/ops/snapshot", headers=install.as_user(operator)).status_code == 200


def test_someone_elses_private_video_is_404_like_a_missing_one(install, tiny_clip):
    owner, other = install.user(), install.user()
    video_id = _upload(install, owner, tiny_clip, "mine", visibility="private").json()["id"]
    for method in ("get", "delete"):
        r = getattr(install.client, method)(f"/api/v1/videos/{video_id}", headers=install.as_user(other))
        assert r.status_code == 404
        assert r.json()["detail"] == f"video {video_id} not found"
    r = install.client.patch(f"/api/v1/videos/{video_id}", json={"title": "x"}, headers=install.as_user(other))
    assert r.status_code == 404
    missing = "00000000-0000-4000-8000-000000000000"
    assert install.client.get(f"/api/v1/videos/{missing}", headers=install.as_user(owner)).status_code == 404
    # The owner still has it, unchanged.
    assert install.client.get(f"/api/v1/videos/{video_id}", headers=install.as_user(owner)).json()["title"] == "mine"


def test_invalid_values_are_422_naming_the_field(install):
    token = install.user()
    r = install.client.get("/api/v1/videos/not-a-uuid", headers=install.as_user(token))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "video_id"]
    r = install.client.get("/api/v1/videos", params={"limit": 1000})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "limit"]
    r = install.client.post("/api/v1/auth/signup", json={"email": "not-an-email", "password": "correct horse battery"})
    assert r.status_code == 422
    assert "email" in r.json()["detail"][0]["loc"]


def test_tus_refusals_name_the_header(install):
    token = install.user()
    headers = {**install.as_user(token), "Tus-Resumable": "1.0.0"}
    r = install.client.post("/api/v1/uploads/", headers=headers)
    assert r.status_code == 400
    assert "Upload-Length is required" in r.json()["detail"]
    r = install.client.post("/api/v1/uploads/", headers={**headers, "Upload-Length": "300000"})
    assert r.status_code == 413
    assert "200000 bytes" in r.json()["detail"]
    r = install.client.post("/api/v1/uploads/", headers={**headers, "Upload-Length": "1000"})
    assert r.status_code == 201
    location = r.headers["Location"]
    r = install.client.patch(location, headers={**headers, "Upload-Offset": "0"}, content=b"x")
    assert r.status_code == 415
    assert "application/offset+octet-stream" in r.json()["detail"]
    # Text instead of media: refused at its first bytes, and the upload's status says so afterwards.
    patch = {**headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    r = install.client.patch(location, headers=patch, content=(b"just notes, no video\n" * 48)[:1000])
    assert r.status_code == 415, r.text
    outcome = install.client.get(location, headers=headers).json()
    assert (outcome["state"], outcome["error_status"]) == ("refused", 415)
    assert "not a media file" in outcome["error"]
    assert install.client.head(location, headers=headers).status_code == 410

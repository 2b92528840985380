"""Turning downloads on and off through the API, in the test process (TestClient, SQLite, local blobs): the rows
and the part it queues, refusals that change nothing, the owner's only, files removed with their rows, and how
the list reads for the owner, a viewer and a private video (signed like segments). The remux itself and nginx
serving the files are tested on the real stack (tests/test_downloads_stack.py)."""

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import Session, col, select

from core.media_keys import download_key, encode_prefix
from schemas.tables import (
    Download,
    DownloadState,
    JobPart,
    JobState,
    PartKind,
    PartState,
    Rendition,
    TranscodeJob,
    Video,
    VideoStatus,
)
from tests.inprocess import LocalApp, local_app


@dataclass
class Ready:
    """A video as a finished encode leaves it: renditions, the succeeded job whose lease names its folder."""

    id: uuid.UUID
    job_id: uuid.UUID
    root: str


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Iterator[LocalApp]:
    with local_app(tmp_path_factory.mktemp("downloads-api")) as app:
        yield app


@pytest.fixture(scope="module")
def owner(install) -> str:
    return install.user()


def _user_id(install: LocalApp, token: str) -> uuid.UUID:
    return uuid.UUID(install.client.get("/api/v1/auth/me", headers=install.as_user(token)).json()["id"])


def ready_video(install: LocalApp, token: str, *, visibility: str = "public", status: str = VideoStatus.ready) -> Ready:
    owner_id = _user_id(install, token)
    video_id, generation = uuid.uuid4(), uuid.uuid4()
    root = encode_prefix(video_id, generation)
    with Session(install.app.state.engine) as s:
        s.add(Video(id=video_id, owner_id=owner_id, title="clip", visibility=visibility, status=status,
                    source_key=f"{video_id}/source", source_size=1, source_format="mp4", duration=5.0, width=1280,
                    height=720, media_root=root if status == VideoStatus.ready else None))  # fmt: skip
        s.flush()  # the rows below refer to it (no ORM relationship orders the inserts)
        job = TranscodeJob(video_id=video_id, owner_id=owner_id, state=JobState.succeeded, lease=generation)
        s.add(job)
        for name, height, bandwidth, codecs in (("720p", 720, 3_000_000, "avc1.64001f"),
                                                ("360p", 360, 800_000, "avc1.64001e"),
                                                ("audio", None, 130_000, "mp4a.40.2")):  # fmt: skip
            key = f"{root}{name}/index.m3u8"
            s.add(Rendition(video_id=video_id, name=name, height=height, bandwidth=bandwidth,
                            average_bandwidth=bandwidth, codecs=codecs, playlist_key=key))  # fmt: skip
        s.commit()
        return Ready(video_id, job.id, root)


def patch(install: LocalApp, token: str | None, video_id: uuid.UUID, body: dict):
    headers = install.as_user(token) if token else {}
    return install.client.patch(f"/api/v1/videos/{video_id}", json=body, headers=headers)


def parts(install: LocalApp, video_id: uuid.UUID) -> list[JobPart]:
    with Session(install.app.state.engine) as s:
        return list(s.exec(select(JobPart).where(JobPart.video_id == video_id, JobPart.kind == PartKind.download)))


def made(install: LocalApp, video: Ready, rendition: str = "720p") -> dict[str, str]:
    """What the download part leaves: the files in the store and the rows ready (workers.download_part)."""
    keys = {"video": download_key(video.root, "a1b2c3d4e5f6", rendition, "mp4"),
            "audio": download_key(video.root, "a1b2c3d4e5f6", "audio", "m4a")}  # fmt: skip
    with Session(install.app.state.engine) as s:
        for kind, key in keys.items():
            install.app.state.stores.media.put_stream(key, io.BytesIO(b"x" * 1000))
            row = s.exec(select(Download).where(Download.video_id == video.id, Download.kind == kind)).one()
            row.state, row.blob_key, row.size = DownloadState.ready, key, 1000
            s.add(row)
        s.commit()
    return keys


def stored(install: LocalApp, video: Ready) -> list[str]:
    return install.app.state.stores.media.list(f"{video.root}downloads/")


def test_turning_downloads_on_lists_them_pending_and_queues_the_part_on_the_published_encode(install, owner):
    video = ready_video(install, owner)
    r = patch(install, owner, video.id, {"downloads": {"enabled": True}})
    assert r.status_code == 200, r.text
    assert [(d["kind"], d["rendition"], d["status"], d["url"]) for d in r.json()["downloads"]] == [
        ("video", "720p", "pending", None),  # the top H.264 rung by default
        ("audio", "audio", "pending", None),
    ]
    [part] = parts(install, video.id)
    assert (part.job_id, part.state) == (video.job_id, PartState.queued)
    assert encode_prefix(video.id, part.generation) == video.root
    # Asking again changes nothing: the same part, not a second remux.
    assert patch(install, owner, video.id, {"downloads": {"enabled": True}}).status_code == 200
    assert [p.id for p in parts(install, video.id)] == [part.id]


def test_bad_requests_are_refused_naming_the_problem_and_change_nothing(install, owner):
    video = ready_video(install, owner)
    r = patch(install, owner, video.id, {"title": "renamed", "downloads": {"enabled": True, "rendition": "1080p"}})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "this video has no H.264 rendition '1080p': choose one of 720p, 360p"
    r = patch(install, owner, video.id, {"downloads": {"enabled": True, "rendition": "audio"}})
    assert r.status_code == 422 and "choose one of 720p, 360p" in r.json()["detail"]
    assert patch(install, owner, video.id, {"downloads": {"rendition": "720p"}}).status_code == 422  # no `enabled`
    read = install.client.get(f"/api/v1/videos/{video.id}", headers=install.as_user(owner)).json()
    assert read["title"] == "clip" and read["downloads"] == [] and parts(install, video.id) == []

    stranger = install.user()
    assert patch(install, stranger, video.id, {"downloads": {"enabled": True}}).status_code == 404
    assert patch(install, None, video.id, {"downloads": {"enabled": True}}).status_code == 401
    assert patch(install, owner, uuid.uuid4(), {"downloads": {"enabled": True}}).status_code == 404

    failed = ready_video(install, owner, status=VideoStatus.failed)
    r = patch(install, owner, failed.id, {"downloads": {"enabled": True}})
    assert r.status_code == 409
    assert r.json()["detail"] == f"video {failed.id} is failed: it has no encode to download from"


def test_a_download_asked_for_while_encoding_waits_for_the_ready_video(install, owner):
    video = ready_video(install, owner, status=VideoStatus.processing)
    r = patch(install, owner, video.id, {"downloads": {"enabled": True}})
    assert r.status_code == 200, r.text
    assert [(d["rendition"], d["status"]) for d in r.json()["downloads"]] == [(None, "pending"), ("audio", "pending")]
    assert parts(install, video.id) == []  # queued by the part that makes the video ready (workers.parts)
    with Session(install.app.state.engine) as s:
        assert s.get(Video, video.id).downloads_enabled  # type: ignore[union-attr]


def test_the_list_is_signed_for_a_private_video_and_tells_the_reason_of_a_failure_to_the_owner_only(install, owner):
    public = ready_video(install, owner)
    patch(install, owner, public.id, {"downloads": {"enabled": True, "rendition": "360p"}})
    keys = made(install, public, "360p")
    viewer = install.client.get(f"/api/v1/videos/{public.id}").json()["downloads"]
    assert [(d["kind"], d["rendition"], d["status"], d["size"]) for d in viewer] == [
        ("video", "360p", "ready", 1000),
        ("audio", "audio", "ready", 1000),
    ]
    assert [d["url"] for d in viewer] == [f"/media/{keys['video']}", f"/media/{keys['audio']}"]
    assert install.client.get(viewer[0]["url"]).status_code == 200  # the embedded /media mount serves it

    private = ready_video(install, owner, visibility="private")
    patch(install, owner, private.id, {"downloads": {"enabled": True}})
    keys = made(install, private)
    assert install.client.get(f"/api/v1/videos/{private.id}").status_code == 404
    read = install.client.get(f"/api/v1/videos/{private.id}", headers=install.as_user(owner)).json()
    url = read["downloads"][0]["url"]
    path, query = urlsplit(url).path, parse_qs(urlsplit(url).query)
    assert path == f"/media/{keys['video']}" and set(query) == {"e", "st"}
    assert install.client.get(path).status_code == 403
    signed = install.client.get(url)
    assert signed.status_code == 200 and signed.headers["content-type"] == "video/mp4"
    assert "content-disposition" not in signed.headers  # plays inline
    assert install.client.get(url + "&download=1").headers["content-disposition"] == "attachment"

    with Session(install.app.state.engine) as s:
        for row in s.exec(select(Download).where(Download.video_id == public.id)):
            row.state, row.error, row.blob_key = DownloadState.failed, "the remux failed: boom", None
            s.add(row)
        s.commit()
    as_owner = install.client.get(f"/api/v1/videos/{public.id}", headers=install.as_user(owner)).json()["downloads"]
    assert [(d["status"], d["url"], d["error"]) for d in as_owner][0] == ("failed", None, "the remux failed: boom")
    anyone = install.client.get(f"/api/v1/videos/{public.id}").json()["downloads"]
    assert anyone[0]["status"] == "failed" and anyone[0]["error"] is None
    # Turning them on again is the retry: pending again, a new part.
    r = patch(install, owner, public.id, {"downloads": {"enabled": True, "rendition": "360p"}})
    assert [d["status"] for d in r.json()["downloads"]] == ["pending", "pending"]
    assert len(parts(install, public.id)) == 1


def test_turning_downloads_off_or_choosing_another_rung_removes_the_files_with_their_rows(install, owner):
    video = ready_video(install, owner)
    patch(install, owner, video.id, {"downloads": {"enabled": True}})
    keys = made(install, video)
    assert sorted(stored(install, video)) == sorted(keys.values())

    r = patch(install, owner, video.id, {"downloads": {"enabled": True, "rendition": "360p"}})
    assert [(d["rendition"], d["status"]) for d in r.json()["downloads"]] == [("360p", "pending"), ("audio", "pending")]
    assert stored(install, video) == []  # the 720p file went, and the M4A is made again with it
    [part] = parts(install, video.id)
    assert part.state == PartState.queued

    made(install, video, "360p")
    r = patch(install, owner, video.id, {"downloads": {"enabled": False}})
    assert r.status_code == 200 and r.json()["downloads"] == []
    assert stored(install, video) == [] and parts(install, video.id) == []
    with Session(install.app.state.engine) as s:
        assert s.exec(select(Download).where(col(Download.video_id) == video.id)).all() == []
        row = s.get(Video, video.id)
        assert row is not None and not row.downloads_enabled and row.download_rendition is None


def test_deleting_the_video_removes_its_downloads(install, owner):
    video = ready_video(install, owner)
    patch(install, owner, video.id, {"downloads": {"enabled": True}})
    made(install, video)
    assert install.client.delete(f"/api/v1/videos/{video.id}", headers=install.as_user(owner)).status_code == 204
    assert stored(install, video) == []
    with Session(install.app.state.engine) as s:
        assert s.exec(select(Download).where(col(Download.video_id) == video.id)).all() == []

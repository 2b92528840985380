"""Imports from a URL on an embedded install in this process: the API that records them, and the worker's import
run (workers.imports) against a real HTTP server on 127.0.0.1, allowed by the operator setting.

What a creator would notice: a URL that can never be fetched is refused at once with the reason; a download that
is too big, too slow, not media, a playlist of local files, or sent to a private address on a redirect leaves the
video `failed` with the reason and its kind, and nothing behind (no source blob, no download file); a worker that
dies or a doorbell that is lost never leaves an import stuck. The transcode that follows a good import is the
upload path's own (tests/test_imports_stack.py follows one to `ready` on the real stack).
"""

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, select

from core.blobs import make_stores
from core.db import get_engine
from core.imports import (
    ClaimedImport,
    claim_import,
    imports_waiting,
    live_import_attempts,
    reap_stale_imports,
)
from core.jobqueue import MAX_ATTEMPTS, STALE_AFTER
from core.media_keys import imported_source_key, media_prefix
from core.settings import Settings
from schemas.tables import JobState, TranscodeJob, VideoImport, utcnow
from tests.import_server import FileServer, file_server
from tests.inprocess import LocalApp, local_app
from workers.imports import download_path, run_import
from workers.supervision import RING_AFTER, sweep_scratch

LIMIT = 4 * 1024 * 1024
FLOOR = 20_000  # bytes/s: the slow answer sends about 1 KB/s
RINGS: list[str] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[FileServer]:
    d = tmp_path_factory.mktemp("served")
    text = d / "notes.txt"
    text.write_text("hello\n" * 100)
    with file_server({"notes.txt": text}, huge_bytes=LIMIT + 2 * 1024 * 1024) as served:
        yield served


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Iterator[LocalApp]:
    with local_app(
        tmp_path_factory.mktemp("imports"),
        egress_allowed_hosts="127.0.0.1",
        max_upload_bytes=LIMIT,
        import_min_bytes_per_second=FLOOR,
        import_rate_window_seconds=1.0,
        import_timeout_seconds=30,
    ) as app:
        yield app


@pytest.fixture(scope="module")
def creator(install: LocalApp) -> dict[str, str]:
    return install.as_user(install.user())


@pytest.fixture
def served_clip(server: FileServer, clips) -> tuple[str, Path]:
    server.files["clip.mkv"] = clips["silent"]
    return server.url("/files/clip.mkv"), clips["silent"]


def start(install: LocalApp, creator: dict[str, str], url: str, **fields: str) -> dict:
    answer = install.client.post("/api/v1/videos/import", json={"url": url, **fields}, headers=creator)
    assert answer.status_code == 202, answer.text
    video = answer.json()
    assert video["status"] == "importing"
    return video


def claim(settings: Settings) -> ClaimedImport:
    claimed = claim_import(get_engine(settings), "test-worker:1")
    assert claimed is not None
    return claimed


def run(settings: Settings, claimed: ClaimedImport) -> str:
    return run_import(claimed, "test-worker:1", settings, make_stores(settings), RINGS.append)


def video_and_import(install: LocalApp, creator: dict[str, str], video_id: str) -> tuple[dict, dict]:
    video = install.client.get(f"/api/v1/videos/{video_id}", headers=creator)
    record = install.client.get(f"/api/v1/videos/{video_id}/import", headers=creator)
    assert video.status_code == record.status_code == 200, (video.text, record.text)
    return video.json(), record.json()


def leftovers(settings: Settings, video_id: str) -> list[str]:
    """Source blobs of the video and download files of any import: what a failed import must not leave."""
    blobs = make_stores(settings).sources.list(media_prefix(uuid.UUID(video_id)))
    downloads = settings.tmp_dir / "imports"
    return blobs + [p.name for p in downloads.iterdir()] if downloads.is_dir() else blobs


def test_an_import_is_fetched_checked_stored_and_queued_like_an_upload(install, creator, served_clip):
    url, clip = served_clip
    video = start(install, creator, url)
    assert video["title"] == "clip"  # the URL's file name
    claimed = claim(install.settings)
    assert run(install.settings, claimed) == "imported"

    video, record = video_and_import(install, creator, video["id"])
    assert video["status"] == "queued" and video["error"] is None
    assert (video["width"], video["height"], video["has_audio"]) == (640, 360, False)
    assert video["duration"] == pytest.approx(4, abs=0.2)
    assert record["state"] == "succeeded" and record["bytes_received"] == clip.stat().st_size
    key = imported_source_key(claimed.video_id, claimed.lease)
    stores = make_stores(install.settings)
    assert stores.sources.list(media_prefix(claimed.video_id)) == [key]
    assert stores.sources.read_bytes(key) == clip.read_bytes()
    with Session(get_engine(install.settings)) as s:
        job = s.exec(select(TranscodeJob).where(TranscodeJob.video_id == claimed.video_id)).one()
    assert job.state == JobState.queued
    assert RINGS[-1] == str(job.id)  # a worker is woken for the transcode, as after an upload
    assert not list((install.settings.tmp_dir / "imports").iterdir())


FAILURES = {
    "no length, too big": ("/huge", "fetch_too_large", f"file too large: the limit is {LIMIT} bytes"),
    "declared too big": ("/huge-declared", "fetch_too_large", f"file too large: the limit is {LIMIT} bytes"),
    "too slow": ("/slow", "fetch_too_slow", f"too slow: under {FLOOR} bytes/s over 1 s"),
    "silent": ("/stall", "fetch_too_slow", f"too slow: under {FLOOR} bytes/s over 1 s"),
    "not media": ("/page.html", "refused_format", "not a media file"),
    "text file": ("/files/notes.txt", "refused_format", "not a media file"),
    "playlist of local files": ("/playlist.m3u8", "refused_format", "HLS playlist"),
    "missing": ("/missing", "fetch_failed", "the server answered 404"),
    "redirect to metadata": (
        "/redirect?to=http://169.254.169.254/latest/meta-data/",
        "fetch_blocked",
        "169.254.169.254",
    ),
    "redirect to private": ("/redirect?to=http://10.0.0.1/clip.mp4", "fetch_blocked", "10.0.0.1"),
    "redirect to IPv6 loopback": ("/redirect?to=http://[::1]:9/clip.mp4", "fetch_blocked", "private"),
    "redirect to a file": ("/redirect?to=file:///etc/passwd", "fetch_failed", "not http:// or https://"),
}


@pytest.mark.parametrize("case", FAILURES.keys())
def test_a_failed_import_says_why_on_the_video_and_leaves_nothing(install, creator, server, case):
    path, kind, words = FAILURES[case]
    video = start(install, creator, server.url(path))
    began = time.monotonic()
    assert run(install.settings, claim(install.settings)) == "failed"
    assert time.monotonic() - began < 15  # given up on, not waited out

    video, record = video_and_import(install, creator, video["id"])
    assert video["status"] == "failed"
    assert words in video["error"]
    assert (record["state"], record["failure_kind"], record["error"]) == ("failed", kind, video["error"])
    assert leftovers(install.settings, video["id"]) == []


def test_a_download_over_the_total_time_limit_fails(tmp_path, server):
    limits = {"import_timeout_seconds": 2, "import_min_bytes_per_second": 0, "import_rate_window_seconds": 10}
    with local_app(tmp_path, egress_allowed_hosts="127.0.0.1", **limits) as short:
        creator = short.as_user(short.user())
        video = start(short, creator, server.url("/slow"))
        began = time.monotonic()
        assert run(short.settings, claim(short.settings)) == "failed"
        assert 2 <= time.monotonic() - began < 6
        video, record = video_and_import(short, creator, video["id"])
    assert record["failure_kind"] == "fetch_timeout" and video["error"] == "the download took longer than 2 s"
    assert leftovers(short.settings, video["id"]) == []


BAD_URLS = {
    "loopback": ("http://127.0.0.1:9/clip.mp4", "private, loopback"),
    "private": ("http://10.0.0.1/clip.mp4", "private, loopback"),
    "metadata": ("http://169.254.169.254/latest/meta-data/", "private, loopback"),
    "IPv6 loopback": ("http://[::1]/clip.mp4", "private, loopback"),
    "file": ("file:///etc/passwd", "only http:// and https://"),
    "ftp": ("ftp://example.com/clip.mp4", "only http:// and https://"),
    "credentials": ("http://user:secret@example.com/clip.mp4", "user name or password"),
}


def test_a_url_that_can_never_be_fetched_is_refused_at_once_and_nothing_is_recorded(tmp_path):
    with local_app(tmp_path) as plain:  # no allow-list: the defaults of a real install
        creator = plain.as_user(plain.user())
        for case, (url, words) in BAD_URLS.items():
            answer = plain.client.post("/api/v1/videos/import", json={"url": url}, headers=creator)
            assert answer.status_code == 422, (case, answer.text)
            assert words in answer.json()["detail"], (case, answer.text)
        assert plain.client.get("/api/v1/me/videos", headers=creator).json()["total"] == 0
        with Session(plain.app.state.engine) as s:
            assert s.exec(select(VideoImport)).all() == []


def test_the_allow_list_lets_only_its_hosts_through(install, creator):
    for url in ("http://[::1]/clip.mp4", "http://10.0.0.1/clip.mp4"):
        answer = install.client.post("/api/v1/videos/import", json={"url": url}, headers=creator)
        assert answer.status_code == 422 and "private, loopback" in answer.json()["detail"]


def test_imports_need_an_account_and_only_the_owner_reads_one(install, creator, server):
    anonymous = install.client.post("/api/v1/videos/import", json={"url": server.url("/page.html")})
    assert anonymous.status_code == 401
    video = start(install, creator, server.url("/page.html"), title="Mine", visibility="private")
    assert (video["title"], video["visibility"]) == ("Mine", "private")
    other = install.as_user(install.user())
    assert install.client.get(f"/api/v1/videos/{video['id']}/import", headers=other).status_code == 404
    run(install.settings, claim(install.settings))  # leave the queue empty for the tests after


def test_open_imports_are_capped_per_creator(tmp_path, server):
    with local_app(tmp_path, egress_allowed_hosts="127.0.0.1", import_max_open=2) as capped:
        creator = capped.as_user(capped.user())
        for _ in range(2):
            answer = capped.client.post("/api/v1/videos/import", json={"url": server.url("/x.mp4")}, headers=creator)
            assert answer.status_code == 202
        third = capped.client.post("/api/v1/videos/import", json={"url": server.url("/x.mp4")}, headers=creator)
        assert third.status_code == 429 and "2 imports waiting or running" in third.json()["detail"]
        other = capped.as_user(capped.user())  # someone else's imports are not counted against you
        answer = capped.client.post("/api/v1/videos/import", json={"url": server.url("/x.mp4")}, headers=other)
        assert answer.status_code == 202


def test_an_import_whose_doorbell_was_lost_is_rung_for_again(install, creator, server):
    start(install, creator, server.url("/page.html"))
    engine = get_engine(install.settings)
    assert imports_waiting(engine, RING_AFTER) == 0  # just queued: its own doorbell may still come
    assert imports_waiting(engine, RING_AFTER, now=utcnow() + RING_AFTER + timedelta(seconds=1)) == 1
    run(install.settings, claim(install.settings))


def test_an_import_whose_worker_died_is_requeued_and_completes(install, creator, served_clip):
    url, clip = served_clip
    video = start(install, creator, url)
    engine = get_engine(install.settings)
    dead = claim(install.settings)  # a worker took it, wrote part of the file, and was killed
    partial = download_path(install.settings, dead)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"\0" * 1000)

    later = utcnow() + STALE_AFTER + timedelta(seconds=1)
    reaped = reap_stale_imports(engine, now=later)
    assert reaped.requeued == [dead.import_id] and reaped.failed == []
    assert sweep_scratch(partial.parent, live_import_attempts(engine), now=time.time() + 60) == [partial]

    again = claim(install.settings)
    assert (again.import_id, again.lease != dead.lease) == (dead.import_id, True)
    assert run(install.settings, again) == "imported"
    video, record = video_and_import(install, creator, video["id"])
    assert (video["status"], record["attempts"]) == ("queued", 2)


def test_an_attempt_that_lost_its_import_writes_nothing(install, creator, served_clip):
    """A worker frozen past the heartbeat margin wakes up after its import was done by another."""
    url, _ = served_clip
    video = start(install, creator, url)
    engine = get_engine(install.settings)
    frozen = claim(install.settings)
    reap_stale_imports(engine, now=utcnow() + STALE_AFTER + timedelta(seconds=1))
    winner = claim(install.settings)
    assert run(install.settings, winner) == "imported"
    assert run(install.settings, frozen) == "lost"

    stores = make_stores(install.settings)
    assert stores.sources.list(media_prefix(winner.video_id)) == [imported_source_key(winner.video_id, winner.lease)]
    video, record = video_and_import(install, creator, video["id"])
    assert (video["status"], record["state"]) == ("queued", "succeeded")


def test_an_import_lost_too_often_fails_the_video(install, creator, server):
    video = start(install, creator, server.url("/page.html"))
    engine = get_engine(install.settings)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claim(install.settings)
        reaped = reap_stale_imports(engine, now=utcnow() + STALE_AFTER + timedelta(seconds=1))
        assert bool(reaped.failed) == (attempt == MAX_ATTEMPTS)
    video, record = video_and_import(install, creator, video["id"])
    assert video["status"] == "failed" and "lost 3 times" in video["error"]
    assert record["failure_kind"] == "worker_lost"
    assert claim_import(engine, "test-worker:1") is None


def test_deleting_a_video_while_it_imports_stops_the_import(install, creator, served_clip):
    url, _ = served_clip
    video = start(install, creator, url)
    claimed = claim(install.settings)
    assert install.client.delete(f"/api/v1/videos/{video['id']}", headers=creator).status_code == 204
    assert run(install.settings, claimed) == "lost"
    assert leftovers(install.settings, video["id"]) == []


def test_failed_imports_are_counted_by_kind_in_the_metrics(install, creator, server):
    start(install, creator, server.url("/playlist.m3u8"))
    run(install.settings, claim(install.settings))
    operator = install.as_user(install.user(operator=True))
    body = install.client.get("/metrics", headers=operator).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert samples[("streamify_import_failures_total", (("reason", "refused_format"),))] >= 1
    assert samples[("streamify_imports", (("state", "failed"),))] >= 1

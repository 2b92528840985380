# ruff: noqa: F811 - fixtures imported from tests.test_delivery are parameters here
"""Downloads on the real front (`streamify up --nodes 2`: nginx, two nodes, PostgreSQL, Redis, a worker; media on
local disk): the owner turns them on while the video still encodes, the worker remuxes the published segments
into an MP4 and an M4A once it is ready, nginx serves them like segments (signed for a private video, immutable),
and the MP4 plays in headless Chromium as a plain <video> with the source's duration. Choosing another rung,
turning them off and deleting the video leave no file behind.

One private video serves every test of the module (its encode is the slow part).
"""

import json
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from infra.nginx import DELIVERY_HEADER
from tests.conftest import make_user, wait_for, wait_status
from tests.media import make_clip
from tests.test_delivery import UpStack, disk_stack  # noqa: F401 - fixture, reused: this module starts its own

PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
PASSWORD = "correct horse battery"  # conftest.make_user's


def probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type,codec_name", "-of", "json",
         str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def top_boxes(data: bytes) -> list[bytes]:
    """The names of the top-level MP4 boxes, in file order."""
    names, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        names.append(kind)
        if size < 8:
            break
        at += size
    return names


def downloads_of(client: httpx.Client, video_id: str) -> list[dict]:
    return client.get(f"/api/v1/videos/{video_id}").raise_for_status().json()["downloads"]


def wait_downloads(client: httpx.Client, video_id: str, timeout: float = 180) -> list[dict]:
    def check():
        items = downloads_of(client, video_id)
        assert not [d for d in items if d["status"] == "failed"], items
        return items if items and all(d["status"] == "ready" for d in items) else None

    return wait_for(check, f"the downloads of {video_id}", timeout)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("downloads") / "clip.mp4", size="960x540", seconds=6, channels=2)


@pytest.fixture(scope="module")
def creator(disk_stack) -> tuple[str, str]:
    return make_user(disk_stack.env["STREAMIFY_DATABASE_URL"])


@pytest.fixture(scope="module")
def owner(disk_stack, creator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=disk_stack.url, timeout=60, headers={"Authorization": f"Bearer {creator[1]}"}) as c:
        yield c


@pytest.fixture(scope="module")
def video(owner, source) -> dict:
    """Private; downloads turned on right after the upload, while it encodes: made once it is ready."""
    with source.open("rb") as f:
        r = owner.post(
            "/api/v1/videos", files={"file": (source.name, f)}, data={"title": "dl", "visibility": "private"}
        )
    assert r.status_code == 202, r.text
    video_id = r.json()["id"]
    r = owner.patch(f"/api/v1/videos/{video_id}", json={"downloads": {"enabled": True}})
    assert r.status_code == 200, r.text
    assert [d["status"] for d in r.json()["downloads"]] == ["pending", "pending"], r.json()
    ready = wait_status(owner, video_id)
    assert ready["status"] == "ready", ready["error"]
    wait_downloads(owner, video_id)
    return owner.get(f"/api/v1/videos/{video_id}").json()


def test_a_private_video_s_downloads_are_remuxed_and_served_by_nginx_only_with_its_signature(
    disk_stack: UpStack, owner, video, source, tmp_path
):
    media_dir = disk_stack.data / "blobs" / "media"
    rungs = [r["name"] for r in sorted(video["renditions"], key=lambda r: r["bandwidth"], reverse=True)]
    mp4, m4a = video["downloads"]
    assert (mp4["kind"], mp4["rendition"], m4a["kind"], m4a["rendition"]) == ("video", rungs[0], "audio", "audio")
    source_seconds = float(probe(source)["format"]["duration"])

    anonymous = httpx.Client(base_url=disk_stack.url, timeout=30)
    for item, ctype, name in ((mp4, "video/mp4", "dl.mp4"), (m4a, "audio/mp4", "dl.m4a")):
        url = item["url"]
        path = urlsplit(url).path
        assert path.startswith(f"/media/{video['id']}/enc-") and "/downloads/" in path, url
        assert set(parse_qs(urlsplit(url).query)) == {"e", "st"}  # signed like the video's segments
        denied = anonymous.get(path)
        assert denied.status_code == 403, denied.text
        assert denied.json()["detail"].startswith("this video is private")
        forged = anonymous.get(url.replace("st=", "st=A"))
        assert forged.status_code == 403

        got = anonymous.get(url)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == ctype and got.headers[DELIVERY_HEADER] == "nginx-static"
        assert got.headers["cache-control"] == PRIVATE_IMMUTABLE
        assert "content-disposition" not in got.headers  # plays inline
        assert got.content == (media_dir / path.removeprefix("/media/")).read_bytes()
        assert len(got.content) == item["size"]
        part = anonymous.get(url, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == got.content[:100]
        saved = anonymous.get(url + "&download=1")
        assert saved.status_code == 200 and saved.headers["content-disposition"] == "attachment"

        # faststart: the index (moov) comes before the media data, so it plays while it downloads.
        boxes = top_boxes(got.content)
        assert b"moov" in boxes and boxes.index(b"moov") < boxes.index(b"mdat"), boxes
        file = tmp_path / name
        file.write_bytes(got.content)
        facts = probe(file)
        assert abs(float(facts["format"]["duration"]) - source_seconds) < 0.15, (facts, source_seconds)
        codecs = sorted((s["codec_type"], s["codec_name"]) for s in facts["streams"])
        assert codecs == ([("audio", "aac"), ("video", "h264")] if item is mp4 else [("audio", "aac")]), codecs

    # Anyone with the owner's playback link gets the same signed downloads; without it, the video is not there.
    link = owner.post(f"/api/v1/videos/{video['id']}/playback-token", json={"ttl_seconds": 600}).json()["token"]
    shared = anonymous.get(f"/api/v1/videos/{video['id']}", params={"token": link}).json()["downloads"]
    assert anonymous.get(shared[0]["url"]).status_code == 200
    assert anonymous.get(f"/api/v1/videos/{video['id']}").status_code == 404
    anonymous.close()


PAGE = """<!doctype html><meta charset="utf-8"><title>download</title>
<video id="video" muted playsinline preload="auto"></video>
<script>
  window.result = {error: null};
  const video = document.getElementById("video");
  video.addEventListener("error", () => { window.result.error = video.error && video.error.code; });
  video.src = SOURCE;
  video.play().catch((e) => { window.result.error = String(e); });
</script>"""


def test_the_mp4_plays_in_chromium_as_a_plain_video_and_the_watch_page_links_both_files(
    disk_stack: UpStack, creator, video, source, browser
):
    source_seconds = float(probe(source)["format"]["duration"])
    mp4 = video["downloads"][0]
    failed: list[str] = []
    context = browser.new_context()
    page = context.new_page()
    page.route(f"{disk_stack.url}/download-test", lambda route: route.fulfill(
        body=PAGE.replace("SOURCE", json.dumps(mp4["url"])), content_type="text/html"))  # fmt: skip
    page.on("requestfailed", lambda req: failed.append(f"failed {req.url} {req.failure}"))
    page.on("response", lambda resp: resp.status >= 400 and failed.append(f"{resp.status} {resp.url}"))
    page.goto(f"{disk_stack.url}/download-test")
    page.wait_for_function("document.getElementById('video').currentTime >= 1.5", timeout=30_000)
    assert page.evaluate("window.result.error") is None
    played = page.evaluate("document.getElementById('video').duration")
    assert abs(played - source_seconds) < 0.15, (played, source_seconds)
    assert page.evaluate("document.getElementById('video').videoWidth") > 0
    context.close()
    assert not failed, failed

    # The owner's watch page lists both files as download links (same origin: saved under a readable name).
    context = browser.new_context()
    login = context.request.post(
        f"{disk_stack.url}/api/v1/auth/login", data={"email": creator[0], "password": PASSWORD}
    )
    assert login.ok, login.text()
    page = context.new_page()
    page.goto(f"{disk_stack.url}/watch/{video['id']}")
    links = page.locator("#download-list a[download]")
    links.first.wait_for(timeout=30_000)
    found = links.evaluate_all("(as) => as.map((a) => [a.getAttribute('download'), a.getAttribute('href')])")
    assert [name for name, _ in found] == [f"dl ({mp4['rendition']}).mp4", "dl (audio).m4a"], found
    href = found[0][1]
    assert urlsplit(href).path == urlsplit(mp4["url"]).path and "download=1" in href, href
    saved = context.request.get(f"{disk_stack.url}{href}")
    assert saved.status == 200 and saved.headers["content-disposition"] == "attachment"
    context.close()


def test_another_rung_then_off_then_deleting_the_video_leave_no_file(disk_stack: UpStack, owner, video):
    media_dir = disk_stack.data / "blobs" / "media"
    rungs = [r["name"] for r in sorted(video["renditions"], key=lambda r: r["bandwidth"], reverse=True)]
    first = {urlsplit(d["url"]).path.removeprefix("/media/") for d in video["downloads"]}
    folder = media_dir / next(iter(first)).rsplit("/", 1)[0]
    assert {f"{folder.relative_to(media_dir)}/{p.name}" for p in folder.iterdir()} == first

    r = owner.patch(f"/api/v1/videos/{video['id']}", json={"downloads": {"enabled": True, "rendition": "9000p"}})
    assert r.status_code == 422 and "choose one of" in r.json()["detail"]
    lowest = rungs[-1]
    r = owner.patch(f"/api/v1/videos/{video['id']}", json={"downloads": {"enabled": True, "rendition": lowest}})
    assert r.status_code == 200, r.text
    made = wait_downloads(owner, video["id"])
    assert made[0]["rendition"] == lowest
    now = {urlsplit(d["url"]).path.removeprefix("/media/") for d in made}
    assert {f"{folder.relative_to(media_dir)}/{p.name}" for p in folder.iterdir()} == now and not now & first

    r = owner.patch(f"/api/v1/videos/{video['id']}", json={"downloads": {"enabled": False}})
    assert r.status_code == 200 and r.json()["downloads"] == []
    assert not folder.exists() or list(folder.iterdir()) == []
    time.sleep(1)  # a part still running would have put its file back by now
    assert not folder.exists() or list(folder.iterdir()) == []

    assert owner.delete(f"/api/v1/videos/{video['id']}").status_code == 204
    assert not (media_dir / video["id"]).exists()


def test_on_azure_blob_storage_the_downloads_are_stored_beside_the_ladder_and_removed_when_turned_off(stack, tmp_path):
    """The single API process on Azurite hands out the blob's own (SAS) URLs; the worker stores the files there."""
    clip = make_clip(tmp_path / "short.mp4", size="320x180", seconds=3, channels=2)
    with stack.client() as owner, clip.open("rb") as f:
        r = owner.post("/api/v1/videos", files={"file": (clip.name, f)}, data={"title": "azure dl"})
        assert r.status_code == 202, r.text
        video_id = r.json()["id"]
        assert wait_status(owner, video_id)["status"] == "ready"
        assert owner.patch(f"/api/v1/videos/{video_id}", json={"downloads": {"enabled": True}}).status_code == 200
        mp4, m4a = wait_downloads(owner, video_id)
        for item, ctype in ((mp4, "video/mp4"), (m4a, "audio/mp4")):
            got = httpx.get(item["url"], timeout=30)
            assert got.status_code == 200 and got.headers["content-type"] == ctype, got.text
            assert len(got.content) == item["size"]
        (tmp_path / "dl.mp4").write_bytes(httpx.get(mp4["url"], timeout=30).content)
        assert (
            abs(float(probe(tmp_path / "dl.mp4")["format"]["duration"]) - float(probe(clip)["format"]["duration"]))
            < 0.15
        )

        assert owner.patch(f"/api/v1/videos/{video_id}", json={"downloads": {"enabled": False}}).status_code == 200
        assert httpx.get(mp4["url"], timeout=30).status_code == 404
        assert httpx.get(m4a["url"], timeout=30).status_code == 404
        assert owner.delete(f"/api/v1/videos/{video_id}").status_code == 204

"""Imports from a URL on the real stack (PostgreSQL, Redis, Azurite, the API and a worker as processes): a file on
a local HTTP server (127.0.0.1, allowed by STREAMIFY_EGRESS_ALLOWED_HOSTS in the stack's env) becomes a ready
video; a redirect into the network fails the import with its reason and leaves nothing in the store or on disk.
The limits and the other refusals are tested in-process (tests/test_imports.py)."""

from pathlib import Path

import pytest

from core.blobs import make_stores
from tests.conftest import UPLOAD_LIMIT, wait_status
from tests.import_server import file_server


def test_a_redirect_into_the_network_fails_the_import_and_leaves_nothing(stack):
    client = stack.client()
    refused = client.post("/api/v1/videos/import", json={"url": "http://169.254.169.254/latest/meta-data/"})
    assert refused.status_code == 422 and "169.254.169.254" in refused.json()["detail"]
    with file_server({}, huge_bytes=1) as server:
        url = server.url("/redirect?to=http://169.254.169.254/latest/meta-data/")
        answer = client.post("/api/v1/videos/import", json={"url": url})
        assert answer.status_code == 202, answer.text
        # The worker may still be finishing another video's parts (storyboard, VMAF): imports come after those.
        video = wait_status(client, answer.json()["id"], timeout=300)
    assert video["status"] == "failed" and "169.254.169.254" in video["error"]
    record = client.get(f"/api/v1/videos/{video['id']}/import").json()
    assert record["failure_kind"] == "fetch_blocked"
    assert make_stores(stack.settings()).sources.list(f"{video['id']}/") == []
    downloads = Path(stack.env["STREAMIFY_DATA_DIR"]) / "tmp" / "imports"
    assert not downloads.is_dir() or not list(downloads.iterdir())


def test_an_import_from_a_local_server_becomes_a_ready_video(stack, clips):
    clip = clips["720p_short"]
    with file_server({"clip.mp4": clip}, huge_bytes=UPLOAD_LIMIT + 1) as server:
        client = stack.client()
        answer = client.post("/api/v1/videos/import", json={"url": server.url("/files/clip.mp4"), "title": "Imported"})
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "importing"
        video = wait_status(client, answer.json()["id"], timeout=240)
        assert video["status"] == "ready", video["error"]
        assert server.requests == ["/files/clip.mp4"]  # downloaded once, by the worker
    assert video["title"] == "Imported" and video["duration"] == pytest.approx(5, abs=0.2)
    assert video["renditions"] and video["playback_url"]
    assert client.get(video["playback_url"]).status_code == 200
    record = client.get(f"/api/v1/videos/{video['id']}/import").json()
    assert (record["state"], record["bytes_received"]) == ("succeeded", clip.stat().st_size)

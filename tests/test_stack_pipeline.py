"""Upload to playable HLS on the real stack: PostgreSQL, Redis, Azurite and a Celery worker process."""

import psycopg
from azure.storage.blob import BlobServiceClient

from core.probe import probe
from tests.conftest import upload, wait_finished, wait_status
from tests.hls_checks import assert_playable_ladder, fetch_ladder


def _pg(stack):
    return psycopg.connect(stack.database_url.replace("+psycopg", ""))


def test_upload_becomes_a_playable_ladder_in_azurite(stack, clips, azurite):
    source = probe(clips["1080p"])
    with stack.client() as client:
        r = upload(client, clips["1080p"], title="Test pattern 1080p")
        assert r.status_code == 202, r.text
        created = r.json()
        assert created["status"] in ("uploaded", "queued", "processing")
        assert created["title"] == "Test pattern 1080p"

        # Ready and with its storyboard: deleting while a worker still writes is tests/test_delete_during_work.py.
        video = wait_finished(client, created["id"])
        assert video["progress"] == 1.0
        assert abs(video["duration"] - source.duration) < 0.05
        assert (video["width"], video["height"]) == (1920, 1080)
        names = [r["name"] for r in video["renditions"]]
        assert names[:4] == ["1080p", "720p", "480p", "360p"], names
        assert video["playback_url"].endswith("/master.m3u8")

        master, variants = fetch_ladder(client, stack.url, video["playback_url"])
        assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        assert_playable_ladder(variants, source.duration)
        assert "FRAME-RATE=30" in master.text

        # Segments come from Blob Storage directly (SAS URLs), with their headers set at upload.
        for v in variants:
            for seg in v.segments:
                assert seg.headers["content-type"] == "video/iso.segment"
                assert seg.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert v.init_headers["content-type"] == "video/mp4"
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        media = service.get_container_client("streamify-media")
        blobs = list(media.list_blobs(name_starts_with=f"{video['id']}/", include=["metadata"]))
        assert any(b.name.endswith("master.m3u8") for b in blobs)
        for b in blobs:
            cs = b.content_settings
            assert cs.content_type and cs.cache_control, b.name
            if b.name.endswith(".m4s"):
                assert cs.cache_control == "public, max-age=31536000, immutable"
            if b.name.endswith(".m3u8"):
                assert cs.content_type == "application/vnd.apple.mpegurl"
        sources = service.get_container_client("streamify-sources")
        assert [b.name for b in sources.list_blobs(name_starts_with=video["id"])] == [f"{video['id']}/source"]

        # The job row tells what happened.
        with _pg(stack) as conn:
            state, attempts, progress, worker = conn.execute(
                "SELECT state, attempts, progress, worker FROM transcode_jobs WHERE video_id = %s", (video["id"],)
            ).fetchone()
        assert (state, attempts, progress) == ("succeeded", 1, 1.0) and worker

        # Deleting removes rows and every blob.
        assert client.delete(f"/api/v1/videos/{video['id']}").status_code == 204
        assert client.get(f"/api/v1/videos/{video['id']}").status_code == 404
        assert not list(media.list_blobs(name_starts_with=f"{video['id']}/"))
        assert not list(sources.list_blobs(name_starts_with=f"{video['id']}/"))
        with _pg(stack) as conn:
            counts = [
                conn.execute(f"SELECT count(*) FROM {t} WHERE video_id = %s", (video["id"],)).fetchone()[0]
                for t in ("renditions", "transcode_jobs")
            ]
        assert counts == [0, 0]


def test_video_without_audio_and_audio_only_sources(stack, clips):
    with stack.client() as client:
        silent = upload(client, clips["silent"]).json()
        music = upload(client, clips["audio"]).json()
        silent = wait_status(client, silent["id"])
        music = wait_status(client, music["id"])
    assert silent["status"] == "ready", silent["error"]
    assert silent["has_audio"] is False
    assert all(r["codecs"].startswith("avc1") and "mp4a" not in r["codecs"] for r in silent["renditions"])
    assert [r["name"] for r in silent["renditions"]] == ["360p", "240p"]
    assert music["status"] == "ready", music["error"]
    assert music["has_video"] is False
    assert [(r["name"], r["codecs"], r["width"]) for r in music["renditions"]] == [("audio", "mp4a.40.2", None)]


def test_listing_is_paginated_and_newest_first(stack, clips):
    with stack.client() as client:
        ids = [upload(client, clips["720p_short"], title=f"page {i}").json()["id"] for i in range(3)]
        first = client.get("/api/v1/me/videos", params={"limit": 2}).json()
        second = client.get("/api/v1/me/videos", params={"limit": 2, "offset": 2}).json()
        assert first["total"] >= 3 and first["limit"] == 2 and len(first["items"]) == 2
        assert [v["id"] for v in first["items"]] == ids[::-1][:2]
        assert second["items"][0]["id"] == ids[0]
        assert client.get("/api/v1/me/videos", params={"limit": 1000}).status_code == 422
        for video_id in ids:
            wait_status(client, video_id)


def test_phone_video_comes_out_upright(stack, clips):
    """Coded 1280x720 with a 90 degree display matrix: every rendition is portrait, in the master and in the
    decoded frames, and the mono audio comes out stereo."""
    source = probe(clips["phone"])
    assert (source.width, source.height, source.rotation) == (1280, 720, 90)
    with stack.client() as client:
        video = wait_status(client, upload(client, clips["phone"]).json()["id"])
        assert video["status"] == "ready", video["error"]
        assert (video["width"], video["height"]) == (720, 1280)
        _, variants = fetch_ladder(client, stack.url, video["playback_url"])
    assert_playable_ladder(variants, source.duration, min_variants=3)
    for v in variants:
        width, height = v.stream_info.resolution
        assert height > width, (v.uri, v.stream_info.resolution)
    assert tuple(variants[0].stream_info.resolution) == (720, 1280)

"""The Python client (cli/client.py) against the real stack: a clip uploaded through it becomes a ready video that
lists, edits and deletes; a cut connection resumes without re-sending a byte; every refusal is one StreamifyError
carrying the API's own detail; and `streamify upload` reports it. The pure parts (tus metadata, error details)
are checked without a service."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from cli.client import StreamifyClient, StreamifyError, tus_metadata
from ingest.tus import parse_metadata
from schemas.tables import VideoStatus
from tests.conftest import ROOT


def test_uploads_waits_lists_updates_and_deletes(stack, clips):
    clip = clips["720p_short"]
    _, token = stack.new_user()
    seen: list[tuple[int, int]] = []
    with StreamifyClient(stack.url, token) as client:
        video = client.upload(
            clip,
            title="Through the client",
            visibility="unlisted",
            on_progress=lambda sent, total: seen.append((sent, total)),
        )
        assert video.title == "Through the client" and video.visibility == "unlisted" and video.is_owner
        size = clip.stat().st_size
        assert seen[-1] == (size, size) and [s for s, _ in seen] == sorted(s for s, _ in seen), seen[:3]

        with pytest.raises(TimeoutError, match=str(video.id)):
            client.wait_until(video.id, lambda v: False, timeout=0.5, interval=0.1)
        ready = client.wait_until(video.id, "ready", timeout=300, interval=0.2)
        assert ready.status == VideoStatus.ready, ready.error
        assert ready.playable and len(ready.renditions) >= 2 and ready.duration == pytest.approx(5, abs=0.2)
        assert client.link(ready.watch_url) == f"{stack.url}/watch/{video.id}"

        mine = client.my_videos()
        assert [v.id for v in mine.items] == [video.id] and mine.total == 1
        assert client.my_videos(status=VideoStatus.failed).total == 0
        assert video.id not in {v.id for v in client.list_videos(limit=100).items}  # unlisted: never in the index

        renamed = client.update_video(video.id, title="Renamed", visibility="public")
        assert (renamed.title, renamed.visibility) == ("Renamed", "public")
        assert client.get_video(video.id).title == "Renamed"
        assert video.id in {v.id for v in client.list_videos(q="Renamed", limit=100).items}

        # A refusal is one exception carrying the API's own status and detail.
        missing = uuid.uuid4()
        with stack.client(token) as raw:
            expected = raw.get(f"/api/v1/videos/{missing}").json()["detail"]
        with pytest.raises(StreamifyError) as refused:
            client.get_video(missing)
        assert (refused.value.status, refused.value.detail) == (404, expected)
        with pytest.raises(StreamifyError) as blank:
            client.update_video(video.id, title="   ")
        assert blank.value.status == 422 and "title" in blank.value.detail
        with StreamifyClient(stack.url, stack.token) as intruder, pytest.raises(StreamifyError) as other:
            intruder.delete_video(video.id)  # another creator's video reads like a missing one
        assert (other.value.status, other.value.detail) == (404, expected.replace(str(missing), str(video.id)))

        # Downloads of a rung the video does not have, and an import from an internal address: refused by name.
        with pytest.raises(StreamifyError) as no_rung:
            client.set_downloads(video.id, True, rendition="4320p")
        assert no_rung.value.status == 422 and "4320p" in no_rung.value.detail
        with pytest.raises(StreamifyError) as internal:
            client.import_video("http://169.254.169.254/latest/meta-data/")
        assert internal.value.status == 422 and "169.254.169.254" in internal.value.detail
        assert client.my_videos().total == 1  # nothing recorded for the refused import

        client.delete_video(video.id)
        with pytest.raises(StreamifyError) as gone:
            client.wait_until(video.id, "ready", timeout=30)
        assert gone.value.status == 404
        assert client.my_videos().total == 0


def test_a_cut_connection_resumes_from_the_servers_offset(stack, proxy, clips):
    clip = clips["720p_short"]
    size = clip.stat().st_size
    _, token = stack.new_user()
    seen: list[int] = []
    with StreamifyClient(proxy.url, token) as client:
        owner = client.me().id.hex
        proxy.cut_after = size // 2  # the first PATCH dies half way, as when Wi-Fi drops
        video = client.upload(clip, title="Resumed", on_progress=lambda sent, _: seen.append(sent))
        assert proxy.cuts == 1
        assert video.title == "Resumed" and video.status not in (VideoStatus.failed, VideoStatus.cancelled)
        # The server's own account: every byte written once, in two PATCHes, the second from where the first died.
        records = list((Path(stack.env["STREAMIFY_DATA_DIR"]) / "tmp" / "tus" / owner).glob("*.json"))
        record = json.loads(records[0].read_text())
        assert record["received_bytes"] == size and record["video_id"] == str(video.id), record
        first, resumed = record["patch_offsets"]
        assert first == 0 and 0 < resumed < size
        assert resumed in seen and seen[-1] == size  # the progress went back to the server's offset, then on
        client.delete_video(video.id)


def test_multipart_refusals_and_the_cli(stack, clips, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 1000)
    with StreamifyClient(stack.url, stack.token) as client:
        for resumable in (True, False):
            with pytest.raises(StreamifyError) as refused:
                client.upload(text, resumable=resumable)
            assert refused.value.status == 415 and "not a media file" in refused.value.detail

        seen: list[int] = []
        video = client.upload(
            clips["silent"], title="multipart", resumable=False, on_progress=lambda sent, _: seen.append(sent)
        )
        assert video.title == "multipart" and not video.playable
        assert seen[-1] == clips["silent"].stat().st_size
        client.delete_video(video.id)

    # `streamify upload` shows the same refusal, in words, and fails.
    cli = subprocess.run(
        [sys.executable, "-m", "cli.main", "upload", str(text), "--server", stack.url, "--token", stack.token],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and "refused (415)" in cli.stdout and "not a media file" in cli.stdout, cli.stdout


def test_tus_metadata_reads_back_exactly_on_the_server():
    fields = {"filename": "été, à Paris.mp4", "title": "Ünïcode, commas and spaces", "visibility": "private"}
    assert parse_metadata(tus_metadata(fields)) == fields


def test_error_detail_from_every_kind_of_answer():
    def error(status: int, **body) -> StreamifyError:
        return StreamifyError.from_response(httpx.Response(status, **body))

    assert error(404, json={"detail": "video not found"}).detail == "video not found"
    validation = {"detail": [{"loc": ["body", "title"], "msg": "String should have at most 200 characters"}]}
    assert error(422, json=validation).detail == "title: String should have at most 200 characters"
    assert error(502, text="<html>Bad Gateway</html>").detail == "<html>Bad Gateway</html>"  # a proxy's page
    assert error(503, content=b"").detail == "Service Unavailable"
    refused = error(413, json={"detail": "file too large: at most 10 bytes"})
    assert refused.status == 413 and str(refused) == "413: file too large: at most 10 bytes"

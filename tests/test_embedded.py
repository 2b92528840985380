"""The embedded defaults: `streamify up` on a fresh data directory (SQLite, local blobs, filesystem
broker) takes an upload from `streamify upload` to a playable ladder, and `streamify transcode` works
with no service at all."""

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import httpx
import m3u8
import pytest

from core.probe import probe
from tests.conftest import ROOT, free_port, stop, wait_finished, wait_for
from tests.hls_checks import assert_playable_ladder, fetch_ladder

STREAMIFY = str(Path(sys.executable).parent / "streamify")


def _clean_env() -> dict[str, str]:
    """No STREAMIFY_* from the caller: exactly what a fresh machine runs."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMIFY_")}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("embedded")
    data = cwd / "data"
    port = free_port()
    logs = ROOT / "test-artifacts" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / "streamify-up.log").open("w")
    proc = subprocess.Popen(
        [STREAMIFY, "up", "--port", str(port), "--data-dir", str(data)],
        env=_clean_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=cwd,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, "streamify up", timeout=60, proc=proc)
    # A fresh install prints its first account and a CLI token.
    printed = (logs / "streamify-up.log").read_text()
    token = re.search(r"export STREAMIFY_TOKEN=(\S+)", printed)
    assert token and "admin@localhost" in printed, printed
    yield url, data, proc, token.group(1)
    stop(proc)


def test_streamify_up_plays_an_upload_from_the_cli(embedded, clips):
    url, data, proc, token = embedded
    source = probe(clips["1080p"])
    refused = subprocess.run([STREAMIFY, "upload", str(clips["1080p"]), "--server", url], env=_clean_env(),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2 and "token" in refused.stdout
    done = subprocess.run(
        [STREAMIFY, "upload", str(clips["1080p"]), "--server", url, "--title", "embedded"],
        env={**_clean_env(), "STREAMIFY_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    watch = re.search(r"watch: (\S+)", done.stdout)
    assert watch, done.stdout
    video_id = watch.group(1).rsplit("/", 1)[1]
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        video = wait_finished(client, video_id)  # its storyboard too, before the deletion below
        assert video["title"] == "embedded"
        assert client.get(f"/watch/{video_id}").status_code == 200
        master, variants = fetch_ladder(client, url, video["playback_url"])
        assert_playable_ladder(variants, source.duration)
        media = m3u8.loads(client.get(urljoin(url + video["playback_url"], variants[0].uri)).text)
        seg_url = media.segments[0].uri  # under the published encode's folder
        assert seg_url.startswith(f"/media/{video_id}/"), seg_url
        whole = client.get(seg_url)
        assert whole.status_code == 200
        assert whole.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert whole.headers["etag"] and whole.headers["last-modified"]
        part = client.get(seg_url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == whole.content[100:200]
        # Everything lives under the one data directory the user chose.
        assert (data / "streamify.db").exists()
        assert [p.name for p in data.parent.iterdir()] == ["data"]
        assert list((data / "blobs").rglob("master.m3u8"))
        assert client.delete(f"/api/v1/videos/{video_id}").status_code == 204
        assert not list((data / "blobs").rglob(f"*{video_id}*"))
    assert proc.poll() is None


def test_path_traversal_is_refused(embedded):
    url, data, _, _ = embedded
    with httpx.Client(base_url=url, timeout=10) as client:
        for path in [
            "/media/../streamify.db",
            "/media/%2e%2e/streamify.db",
            "/media/..%2fstreamify.db",
            "/api/v1/videos/..%2f..%2fetc/master.m3u8",
            "/static/../../core/settings.py",
        ]:
            r = client.get(path)
            assert r.status_code in (400, 404, 422), (path, r.status_code)
            assert b"sqlite" not in r.content.lower() and b"STREAMIFY_" not in r.content


def test_streamify_transcode_writes_a_local_ladder(clips, tmp_path):
    out = tmp_path / "hls"
    done = subprocess.run(
        [STREAMIFY, "transcode", str(clips["720p_short"]), str(out)],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    master = m3u8.load(str(out / "master.m3u8"))
    sizes = [tuple(p.stream_info.resolution) for p in master.playlists]
    assert sizes[0] == (1280, 720) and len(sizes) >= 3
    for p in master.playlists:
        media = m3u8.load(str(out / p.uri))
        assert media.is_endlist and all((out / Path(p.uri).parent / s.uri).exists() for s in media.segments)
    refused = subprocess.run(
        [STREAMIFY, "transcode", str(ROOT / "pyproject.toml"), str(tmp_path / "x")],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert refused.returncode == 1 and "not a media file" in refused.stdout


def test_stopping_up_stops_its_worker(embedded):
    """Last in this module: it stops the `up` the others used. SIGTERM (a service manager's stop) must take
    the worker down too, not leave it consuming the broker with nobody to restart it."""
    import psutil

    _, _, proc, _ = embedded
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any("celery" in " ".join(c.cmdline()) for c in children), [c.cmdline() for c in children]
    proc.terminate()
    proc.wait(timeout=60)
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"still running after `up` stopped: {[c.cmdline() for c in alive]}"

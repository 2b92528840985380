"""Both blob backends behave the same: streamed round trips, headers per key, prefix-scoped deletes,
keys that cannot escape, URLs a player can fetch (Azurite for Azure)."""

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import httpx
import pytest

from core.blobs import CHUNK, AzureBlobStore, BlobNotFound, LocalBlobStore, MirroredStore
from core.settings import Settings

BIG = 32 * CHUNK + 12345  # a real video's size in chunks, not a multiple of the chunk size
PATTERN = os.urandom(1_000_003)  # a prime length: no two chunks of the stream are alike


class PatternStream(io.RawIOBase):
    """A large upload generated on the fly, so the test itself holds no copy of it in memory."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left, len(PATTERN))
        view = memoryview(PATTERN)[:n]
        buf[:n] = view
        self.digest.update(view)
        self.left -= n
        return n


@pytest.fixture(params=["local", "azure", "mirrored"])
def store(request, tmp_path):
    if request.param == "local":
        s = LocalBlobStore(tmp_path / "blobs", "/media")
    elif request.param == "mirrored":  # what every caller does through it, it does to both
        s = MirroredStore(LocalBlobStore(tmp_path / "blobs", "/media"), LocalBlobStore(tmp_path / "mirror", "/m"))
    else:
        azurite = request.getfixturevalue("azurite")
        settings = Settings(azure_connection_string=azurite.connection_string, data_dir=tmp_path)
        s = AzureBlobStore(azurite.connection_string, f"test-{os.urandom(4).hex()}", settings)
    s.ensure()
    return s


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def test_large_blob_streams_in_and_out_without_being_held_in_memory(store, tmp_path):
    source = PatternStream(BIG)
    tracemalloc.start()
    store.put_stream("v1/source", io.BufferedReader(source, CHUNK))
    _, peak_in = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    out = tmp_path / "copy"
    store.download_to("v1/source", out)
    _, peak_out = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.stat().st_size == BIG
    assert _sha(out) == source.digest.hexdigest()
    assert peak_in < BIG / 2 and peak_out < BIG / 2, (peak_in, peak_out)


def test_prefix_operations_stay_inside_their_prefix(store):
    for key in ["a/master.m3u8", "a/720p/seg_00000.m4s", "ab/master.m3u8"]:
        store.put_stream(key, io.BytesIO(key.encode()))
    assert store.list("a/") == ["a/720p/seg_00000.m4s", "a/master.m3u8"]
    assert store.delete_prefix("a/") == 2
    assert store.list("a/") == []
    assert store.read_bytes("ab/master.m3u8") == b"ab/master.m3u8"
    assert store.delete_prefix("nothing-here/") == 0
    with pytest.raises(BlobNotFound):
        store.read_bytes("a/master.m3u8")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs", "a//b", "a\\..\\b", "", "./a"])
def test_keys_that_could_escape_are_refused(store, key):
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put_stream(key, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="invalid blob key"):
        store.url_for(key)


def test_player_urls_serve_the_bytes_with_their_headers(azurite, tmp_path):
    settings = Settings(azure_connection_string=azurite.connection_string, data_dir=tmp_path)
    store = AzureBlobStore(azurite.connection_string, f"test-{os.urandom(4).hex()}", settings)
    store.ensure()
    segment = os.urandom(300_000)
    store.put_stream("v/720p/seg_00001.m4s", io.BytesIO(segment))
    store.put_stream("v/720p/index.m3u8", io.BytesIO(b"#EXTM3U\n"))
    url = store.url_for("v/720p/seg_00001.m4s")
    assert "sig=" in url and "sp=r" in url  # read-only SAS, not the account key
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == segment
    assert r.headers["content-type"] == "video/iso.segment"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["etag"]
    part = httpx.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == segment[1000:2000]
    playlist = httpx.get(store.url_for("v/720p/index.m3u8"))
    assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    # The SAS only reads: writing with it is refused.
    assert httpx.put(url, content=b"x", headers={"x-ms-blob-type": "BlockBlob"}).status_code == 403
    # Browsers on other origins may fetch segments (CORS preflight answered).
    pre = httpx.options(url, headers={"Origin": "http://example.test", "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 200 and pre.headers.get("access-control-allow-origin") in ("*", "http://example.test")


def test_a_mirrored_store_writes_and_deletes_in_both(tmp_path):
    primary, mirror = LocalBlobStore(tmp_path / "a", "/media"), LocalBlobStore(tmp_path / "b", "/m")
    both = MirroredStore(primary, mirror)
    both.ensure()
    (tmp_path / "seg.m4s").write_bytes(b"segment")
    both.put_file("v1/720p/seg_00001.m4s", tmp_path / "seg.m4s")
    both.put_stream("v1/captions/en.vtt", io.BytesIO(b"WEBVTT\n"))
    for one in (primary, mirror):
        assert one.list("v1/") == ["v1/720p/seg_00001.m4s", "v1/captions/en.vtt"]
        assert one.read_bytes("v1/captions/en.vtt") == b"WEBVTT\n"
    assert both.url_for("v1/720p/seg_00001.m4s") == "/media/v1/720p/seg_00001.m4s"  # players get the primary's
    assert both.delete_prefix("v1/") == 2
    assert primary.list("v1/") == mirror.list("v1/") == []

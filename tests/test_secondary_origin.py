"""nginx's second origin: while the primary blob store is down, media nginx has not cached yet comes from a
fallback origin, so viewers see no error. Two kinds: the account's read-only secondary (RA-GRS,
STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT), which lacks what geo-replication had not copied yet, and a mirror account
every media write also goes to (STREAMIFY_AZURE_MIRROR_CONNECTION_STRING), which lacks nothing a playlist names.

Two Azurites stand for the two regions. Azure copies blobs to an RA-GRS secondary by itself (geo-replication), which
no emulator does: for that kind the test copies them (bench.services.Azurite.replicate_to) before taking the
primary down. A mirror needs no copy: the workers write it.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from pydantic import ValidationError

from bench.services import Azurite
from core.media_keys import STORYBOARD_VTT, TILES_DIR
from core.settings import Settings
from infra.nginx import DELIVERY_HEADER, blob_origin, nginx_plan, render_nginx
from tests.conftest import free_port, upload, wait_for, wait_status
from tests.media import make_clip
from tests.test_delivery import UpStack, _current_time, _watch, media_urls, start_on_own_database

MEDIA = "streamify-media"
AZURE_KEY = "a2V5LWZvci10ZXN0cy1vbmx5LW5vdC1hLXJlYWwtYWNjb3VudC1rZXk="  # any base64 signs a SAS


def test_the_secondary_endpoint_becomes_a_fallback_origin_with_the_same_sas(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        azure_connection_string=f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};"
        "EndpointSuffix=core.windows.net",
        azure_secondary_blob_endpoint="https://acct-secondary.blob.core.windows.net/",
    )
    origin = blob_origin(settings)
    assert (origin.host, origin.path) == ("acct.blob.core.windows.net", "/streamify-media")
    secondary = origin.secondary
    assert secondary is not None
    assert (secondary.scheme, secondary.host, secondary.port) == ("https", "acct-secondary.blob.core.windows.net", 443)
    assert secondary.path == "/streamify-media" and secondary.sas == origin.sas
    plan = nginx_plan(settings, ["127.0.0.1:9000"], listen="127.0.0.1:8080", state_dir=tmp_path / "nginx")
    text = render_nginx(plan)
    assert "error_page 502 503 504 = @blob_secondary_1;" in text
    assert "proxy_ssl_name acct-secondary.blob.core.windows.net;" in text
    assert "server acct-secondary.blob.core.windows.net:443;" in text
    assert text.count("proxy_read_timeout 5s;") == text.count("= @blob_secondary_")  # a hung primary hands over
    # Without the setting there is no fallback: a failing primary is a 502 for what nginx has not cached.
    without = settings.model_copy(update={"azure_secondary_blob_endpoint": None})
    plain = render_nginx(nginx_plan(without, ["127.0.0.1:9000"], listen="127.0.0.1:8080", state_dir=tmp_path / "n2"))
    assert "@blob_secondary" not in plain and "streamify_blob_secondary" not in plain
    assert "proxy_read_timeout 5s;" not in plain  # no fallback: a slow primary is still worth waiting for


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://acct-secondary.blob.core.windows.net",
        "https://acct-secondary.blob.core.windows.net/?sig=x",
        "https://user@acct-secondary.blob.core.windows.net",
        "https://host/$var",
        "not a url",
    ],  # fmt: skip
)
def test_a_secondary_endpoint_nginx_cannot_take_is_refused(tmp_path, endpoint):
    with pytest.raises(ValidationError, match="azure_secondary_blob_endpoint"):
        Settings(data_dir=tmp_path, azure_secondary_blob_endpoint=endpoint)


MIRROR_KEY = "bWlycm9yLWtleS1mb3ItdGVzdHMtb25seS1ub3QtcmVhbC1hdC1hbGwtMTIzNA=="


def test_a_mirror_account_becomes_the_fallback_origin_with_its_own_sas(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        azure_connection_string=f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};"
        "EndpointSuffix=core.windows.net",
        azure_mirror_connection_string=f"DefaultEndpointsProtocol=https;AccountName=other;AccountKey={MIRROR_KEY};"
        "EndpointSuffix=core.windows.net",
    )
    origin = blob_origin(settings)
    mirror = origin.secondary
    assert mirror is not None
    assert (mirror.host, mirror.port, mirror.path) == ("other.blob.core.windows.net", 443, "/streamify-media")
    assert mirror.sas != origin.sas  # signed by the mirror's own key: the primary's SAS means nothing there
    text = render_nginx(nginx_plan(settings, ["127.0.0.1:9000"], listen="127.0.0.1:8080", state_dir=tmp_path / "n"))
    assert "error_page 502 503 504 = @blob_secondary_1;" in text
    assert "server other.blob.core.windows.net:443;" in text


def test_a_mirror_needs_the_primary_account_and_excludes_the_secondary_endpoint(tmp_path):
    primary = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net"
    with pytest.raises(ValidationError, match="a mirror needs STREAMIFY_AZURE_CONNECTION_STRING"):
        Settings(data_dir=tmp_path, azure_mirror_connection_string=primary)
    with pytest.raises(ValidationError, match="not both: nginx has one fallback origin"):
        Settings(
            data_dir=tmp_path,
            azure_connection_string=primary,
            azure_secondary_blob_endpoint="https://acct-secondary.blob.core.windows.net",
            azure_mirror_connection_string=primary,
        )


@dataclass
class Regions:
    """Two stores as two regions, and the stack using the second as its fallback `kind` (ragrs or mirror)."""

    kind: str
    primary: Azurite
    secondary: Azurite
    stack: UpStack

    def blobs(self, store: Azurite, prefix: str) -> set[str]:
        container = BlobServiceClient.from_connection_string(store.connection_string).get_container_client(MEDIA)
        return {b.name for b in container.list_blobs(name_starts_with=prefix)} if container.exists() else set()


@pytest.fixture(scope="module", params=["ragrs", "mirror"])
def regions(request, tmp_path_factory, redis_url) -> Iterator[Regions]:
    """A primary and a second store of their own (the tests take either down), a stack in front of them."""
    root = tmp_path_factory.mktemp(f"regions-{request.param}")
    primary, secondary = Azurite(free_port(), root / "primary"), Azurite(free_port(), root / "secondary")
    primary.start()
    secondary.start()
    env = {"STREAMIFY_AZURE_CONNECTION_STRING": primary.connection_string, **secondary.fallback_env(request.param)}
    try:
        (root / "up").mkdir()
        for stack in start_on_own_database(root / "up", request.param, redis_url, env):
            yield Regions(request.param, primary, secondary, stack)
    finally:
        primary.stop()
        secondary.stop()


@pytest.fixture(scope="module")
def geo_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("geo-clip") / "geo.mp4", size="1280x720", seconds=12, channels=2)


def _ready_with_storyboard(regions: Regions, client, clip: Path, title: str) -> dict:
    r = upload(client, clip, title=title)
    assert r.status_code == 202, r.text
    video = wait_status(client, r.json()["id"])
    assert video["status"] == "ready", video

    # The storyboard comes after ready, and the watch page asks for it: wait until its part is over (the track is
    # stored and the ranges' tiles it was made from are deleted), so the store holds what it will keep.
    def storyboard_done() -> bool:
        names = regions.blobs(regions.primary, f"{video['id']}/")
        return any(n.endswith(STORYBOARD_VTT) for n in names) and not any(f"/{TILES_DIR}/" in n for n in names)

    wait_for(storyboard_done, "the storyboard", 120)
    return video


@pytest.mark.stack
def test_media_plays_from_the_fallback_while_the_primary_store_is_down(regions, geo_clip, browser):
    primary, secondary = regions.primary, regions.secondary
    with regions.stack.client() as client:
        video = _ready_with_storyboard(regions, client, geo_clip, "two regions")
        _, urls = media_urls(client, video)
        init, first, second, *_ = urls
        prefix = f"{video['id']}/"
        if regions.kind == "mirror":  # written there before each part was recorded: nothing to copy
            assert regions.blobs(secondary, prefix) == regions.blobs(primary, prefix) != set()
        else:
            assert regions.blobs(secondary, prefix) == set()
            assert primary.replicate_to(secondary, MEDIA) > 0
        warm = client.get(first)  # cached while the primary answers
        assert warm.status_code == 200 and "x-streamify-origin" not in warm.headers
        media = BlobServiceClient.from_connection_string(primary.connection_string).get_container_client(MEDIA)
        stored = media.download_blob(init.removeprefix("/media/")).readall()
        # What is in neither store (never written, or not replicated yet) is missing there too.
        unreplicated = f"{second.rsplit('/', 1)[0]}/unreplicated.m4s"

        primary.freeze()  # a hung endpoint: connections open, nothing answers
        try:
            late = client.get(urls[-1], timeout=15)  # a player gives up on a segment after about 20 s
        finally:
            primary.thaw()
        assert late.status_code == 200 and late.headers["x-streamify-origin"] == "secondary"

        primary.shut_down()
        try:
            cached = client.get(first)
            assert (cached.status_code, cached.headers["x-cache-status"]) == (200, "HIT")
            assert cached.content == warm.content
            fresh = client.get(init)
            assert fresh.status_code == 200, fresh.text
            assert fresh.headers["x-streamify-origin"] == "secondary"
            assert fresh.headers[DELIVERY_HEADER] == "nginx-cache"
            assert fresh.headers["content-type"] == "video/mp4"
            assert fresh.content == stored
            assert client.get(init).headers["x-cache-status"] == "HIT"  # kept like the primary's answers
            part = client.get(second, headers={"Range": "bytes=0-99"})
            assert part.status_code == 206 and len(part.content) == 100
            assert client.get(unreplicated).status_code == 404

            failed: list[str] = []
            page = _watch(browser, f"{regions.stack.url}/watch/{video['id']}", failed)
            page.wait_for_function("window.streamify && window.streamify.levels > 0", timeout=30_000)
            page.wait_for_function("document.getElementById('video').currentTime >= 6", timeout=60_000)
            assert page.evaluate("window.streamify.fatal") is None
            assert _current_time(page) >= 6
            page.close()
            assert not failed, failed
        finally:
            primary.start()


@pytest.mark.stack
def test_a_delete_with_the_second_store_down(regions, geo_clip):
    """A mirror is deleted from first: with it down the delete is refused (503, try again) and the primary still
    holds every blob, so the mirror never keeps a blob the primary's sweeps cannot see. An RA-GRS secondary is
    Azure's to update: its outage does not concern a delete."""
    with regions.stack.client() as client:
        video = _ready_with_storyboard(regions, client, geo_clip, "delete, second store down")
        prefix = f"{video['id']}/"
        kept = regions.blobs(regions.primary, prefix)
        regions.secondary.shut_down()
        try:
            r = client.delete(f"/api/v1/videos/{video['id']}")
            if regions.kind == "mirror":
                assert r.status_code == 503 and "try again" in r.json()["detail"]
                assert regions.blobs(regions.primary, prefix) == kept
                assert client.get(f"/api/v1/videos/{video['id']}").json()["status"] == "ready"
            else:
                assert r.status_code == 204
                assert regions.blobs(regions.primary, prefix) == set()
        finally:
            regions.secondary.start()
        if regions.kind == "mirror":
            assert client.delete(f"/api/v1/videos/{video['id']}").status_code == 204
        assert regions.blobs(regions.primary, prefix) == set()
        if regions.kind == "mirror":
            assert regions.blobs(regions.secondary, prefix) == set()

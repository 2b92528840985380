"""nginx's second origin: while the primary blob store is down, media nginx has not cached yet comes from the
account's read-only secondary (RA-GRS, STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT), so viewers see no error.

Two Azurites stand for the two regions. Azure copies blobs to the secondary by itself (geo-replication), which no
emulator does: the test copies them (bench.services.Azurite.replicate_to) before taking the primary down.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from pydantic import ValidationError

from bench.services import Azurite
from core.media_keys import STORYBOARD_VTT
from core.settings import Settings
from infra.nginx import DELIVERY_HEADER, blob_origin, nginx_plan, render_nginx
from tests.conftest import free_port, upload, wait_for, wait_status
from tests.media import make_clip
from tests.test_delivery import UpStack, _current_time, _watch, media_urls, start_on_own_database

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
    # Without the setting there is no fallback: a failing primary is a 502 for what nginx has not cached.
    without = settings.model_copy(update={"azure_secondary_blob_endpoint": None})
    plain = render_nginx(nginx_plan(without, ["127.0.0.1:9000"], listen="127.0.0.1:8080", state_dir=tmp_path / "n2"))
    assert "@blob_secondary" not in plain and "streamify_blob_secondary" not in plain


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


@pytest.fixture(scope="module")
def regions(tmp_path_factory) -> Iterator[tuple[Azurite, Azurite]]:
    """A primary and a secondary store of their own: the test takes the primary down."""
    root = tmp_path_factory.mktemp("regions")
    primary, secondary = Azurite(free_port(), root / "primary"), Azurite(free_port(), root / "secondary")
    primary.start()
    secondary.start()
    yield primary, secondary
    primary.stop()
    secondary.stop()


@pytest.fixture(scope="module")
def geo_stack(tmp_path_factory, redis_url, regions) -> Iterator[UpStack]:
    primary, secondary = regions
    env = {
        "STREAMIFY_AZURE_CONNECTION_STRING": primary.connection_string,
        "STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT": secondary.blob_endpoint,
    }
    yield from start_on_own_database(tmp_path_factory.mktemp("up-geo"), "geo", redis_url, env)


@pytest.fixture(scope="module")
def geo_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("geo-clip") / "geo.mp4", size="1280x720", seconds=12, channels=2)


@pytest.mark.stack
def test_media_plays_from_the_secondary_while_the_primary_store_is_down(geo_stack, regions, geo_clip, browser):
    primary, secondary = regions
    with geo_stack.client() as client:
        r = upload(client, geo_clip, title="two regions")
        assert r.status_code == 202, r.text
        video = wait_status(client, r.json()["id"])
        assert video["status"] == "ready", video
        _, urls = media_urls(client, video)
        init, first, second, *_ = urls
        # The storyboard comes after ready; the page asks for it: replicate once it is in the store too.
        media = BlobServiceClient.from_connection_string(primary.connection_string).get_container_client(
            "streamify-media"
        )
        wait_for(
            lambda: any(b.name.endswith(STORYBOARD_VTT) for b in media.list_blobs(name_starts_with=f"{video['id']}/")),
            "the storyboard",
            120,
        )
        assert primary.replicate_to(secondary, "streamify-media") > 0
        warm = client.get(first)  # cached while the primary answers
        assert warm.status_code == 200 and "x-streamify-origin" not in warm.headers
        stored = media.download_blob(init.removeprefix("/media/")).readall()
        # What the replication had not reached when the region failed is missing there too.
        unreplicated = f"{second.rsplit('/', 1)[0]}/unreplicated.m4s"

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
            page = _watch(browser, f"{geo_stack.url}/watch/{video['id']}", failed)
            page.wait_for_function("window.streamify && window.streamify.levels > 0", timeout=30_000)
            page.wait_for_function("document.getElementById('video').currentTime >= 6", timeout=60_000)
            assert page.evaluate("window.streamify.fatal") is None
            assert _current_time(page) >= 6
            page.close()
            assert not failed, failed
        finally:
            primary.start()

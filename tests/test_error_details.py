"""A failing dependency (Blob Storage, the database) answers the caller in plain words: its own messages (host
names, request ids, SQL) go to the API's log only. The ingest cases are in tests/test_tus.py."""

import secrets
from urllib.parse import urlparse

import httpx
from azure.storage.blob import BlobServiceClient

from tests.conftest import upload, wait_for
from tests.test_tus import own_api


def test_delete_with_storage_failing_keeps_the_video_and_its_internals(stack, azurite, clips):
    container = f"leak-media-{secrets.token_hex(4)}"
    with own_api(stack, azure_media_container=container) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=60) as client:
            r = upload(client, clips["silent"], title="kept on failure")
            assert r.status_code == 202, r.text
            video_id = r.json()["id"]
            BlobServiceClient.from_connection_string(azurite.connection_string).delete_container(container)
            r = client.delete(f"/api/v1/videos/{video_id}")
            assert r.status_code == 503, r.text
            assert r.json() == {"detail": "storage unavailable, video not deleted: try again later"}
            assert client.get(f"/api/v1/videos/{video_id}").status_code == 200  # the row stays: retry works
            # Anyone may ask /readyz: it says which service is down, not the store's own message.
            ready = httpx.get(f"{url}/readyz", timeout=30)
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "unavailable"}, ready.text
        log = stack.logs / f"api-{urlparse(url).port}.log"
        wait_for(lambda: "ContainerNotFound" in log.read_text(), "the storage error in the API log", timeout=20)
    with stack.client() as client:  # on a node whose storage works, the same delete goes through
        assert client.delete(f"/api/v1/videos/{video_id}").status_code == 204

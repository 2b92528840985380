"""Webhooks through the API in the test process (TestClient, SQLite) and the delivery code run here against a
receiver on 127.0.0.1: registration refusals, ownership, the secret shown once, retries recorded, addresses
blocked at delivery (also behind a redirect), a failing endpoint disabled with a notice, leases."""

import base64
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from core.webhook_outbox import Outcome, claim, record
from schemas.tables import DeliveryError, WebhookDelivery, utcnow
from tests.inprocess import LocalApp, local_app
from tests.media import make_clip
from tests.webhook_receiver import Answer, Receiver
from workers.webhook_delivery import deliver_due

INTERNAL = ["http://127.0.0.1/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/hook", "http://localhost/hook"]  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("tiny") / "tiny.mp4", size="160x90", rate=10, seconds=1, channels=1)


def _refuse_an_upload(install: LocalApp, token: str, name: str = "notes.txt") -> None:
    files = {"file": (name, b"these are my notes, not a video\n" * 40)}
    answer = install.client.post("/api/v1/videos", files=files, headers=install.as_user(token))
    assert answer.status_code == 415, answer.text


def _register(install: LocalApp, token: str, url: str, **fields) -> dict:
    answer = install.client.post("/api/v1/webhooks", json={"url": url, **fields}, headers=install.as_user(token))
    assert answer.status_code == 201, answer.text
    return answer.json()


def _deliveries(install: LocalApp, token: str, endpoint_id: str) -> list[dict]:
    answer = install.client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=install.as_user(token))
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_registration_refuses_internal_addresses_without_the_operator_setting(tmp_path):
    with local_app(tmp_path) as install:
        token = install.user()
        for url in [*INTERNAL, "ftp://example.com/x", "http://user:pw@example.com/", "javascript:alert(1)"]:
            answer = install.client.post("/api/v1/webhooks", json={"url": url}, headers=install.as_user(token))
            assert answer.status_code == 422, (url, answer.text)
            assert answer.json()["detail"].startswith("url refused: "), answer.text
        for url in INTERNAL[:4]:
            detail = install.client.post("/api/v1/webhooks", json={"url": url}, headers=install.as_user(token))
            assert "private, loopback, link-local or reserved" in detail.json()["detail"]
        assert install.client.get("/api/v1/webhooks", headers=install.as_user(token)).json() == []


def test_the_secret_is_shown_once_and_other_creators_endpoints_answer_404(tmp_path, receiver):
    with local_app(tmp_path, egress_allowed_hosts="127.0.0.1") as install:
        alice, bob, operator = install.user(), install.user(), install.user(operator=True)
        created = _register(install, alice, receiver.url(), event_types=["video.ready", "video.ready"])
        assert created["secret"].startswith("whsec_") and created["event_types"] == ["video.ready"]
        assert created["enabled"] is True and created["notice"] is None
        listed = install.client.get("/api/v1/webhooks", headers=install.as_user(alice)).json()
        assert [e["id"] for e in listed] == [created["id"]]
        assert "secret" not in listed[0]
        one = install.client.get(f"/api/v1/webhooks/{created['id']}", headers=install.as_user(alice)).json()
        assert "secret" not in one and one["url"] == receiver.url()

        path = f"/api/v1/webhooks/{created['id']}"
        for who in (bob, operator):
            headers = install.as_user(who)
            assert install.client.get(path, headers=headers).status_code == 404
            assert install.client.get(f"{path}/deliveries", headers=headers).status_code == 404
            assert install.client.patch(path, json={"enabled": False}, headers=headers).status_code == 404
            assert install.client.delete(path, headers=headers).status_code == 404
        assert install.client.get(f"/api/v1/webhooks/{uuid.uuid4()}", headers=install.as_user(alice)).status_code == 404
        assert install.client.get("/api/v1/webhooks").status_code == 401

        wide = {"url": receiver.url(), "install_wide": True}
        refused = install.client.post("/api/v1/webhooks", json=wide, headers=install.as_user(alice))
        assert refused.status_code == 403 and "operators" in refused.json()["detail"]
        assert install.client.post("/api/v1/webhooks", json=wide, headers=install.as_user(operator)).status_code == 201
        # A URL change is checked like a new one.
        moved = install.client.patch(path, json={"url": "http://10.0.0.1/"}, headers=install.as_user(alice))
        assert moved.status_code == 422 and "url refused" in moved.json()["detail"]


def test_an_event_is_signed_retried_with_every_attempt_recorded_and_delivered_once_more(tmp_path, receiver):
    settings = {"egress_allowed_hosts": "127.0.0.1", "webhook_retry_schedule": "0s,0s,0s,0s"}
    with local_app(tmp_path, **settings) as install:
        alice, bob, operator = install.user(), install.user(), install.user(operator=True)
        endpoint = _register(install, alice, receiver.url(), event_types=["upload.refused"])
        wide = _register(install, operator, receiver.url("/all"), install_wide=True)
        _register(install, bob, receiver.url("/bob"))  # bob's receiver never hears of alice's uploads
        receiver.scripts["/hook"] = [Answer(500), Answer(500), Answer(500)]  # alice's receiver fails three times

        _refuse_an_upload(install, alice, "notes.txt")
        assert deliver_due(install.settings).attempted == 5  # alice's: 3 failures + 1 success; the operator's: 1

        mine = [r for r in receiver.received if r.path == "/hook"]
        assert [r.path for r in receiver.received].count("/bob") == 0
        assert len(mine) == 4 and len({r.headers["webhook-id"] for r in mine}) == 1
        for request in mine:
            event = request.verified(endpoint["secret"])
            assert event["type"] == "upload.refused"
            assert event["data"]["filename"] == "notes.txt" and event["data"]["reason"] == "unsupported_media"
        assert [r.verified(wide["secret"])["type"] for r in receiver.received if r.path == "/all"] == ["upload.refused"]

        [delivery] = _deliveries(install, alice, endpoint["id"])
        assert delivery["state"] == "delivered" and delivery["attempts"] == 4
        assert delivery["response_status"] == 200 and delivery["last_error"] is None
        assert delivery["event_type"] == "upload.refused" and delivery["next_attempt_at"] is None
        assert deliver_due(install.settings).attempted == 0  # nothing is sent twice once delivered

        # Resend: the same event (same webhook-id) once more, as a new delivery.
        again = install.client.post(
            f"/api/v1/webhooks/deliveries/{delivery['id']}/resend", headers=install.as_user(alice)
        )
        assert again.status_code == 202 and again.json()["state"] == "pending"
        stranger = install.client.post(
            f"/api/v1/webhooks/deliveries/{delivery['id']}/resend", headers=install.as_user(bob)
        )
        assert stranger.status_code == 404
        assert deliver_due(install.settings).attempted == 1
        assert receiver.received[-1].headers["webhook-id"] == mine[0].headers["webhook-id"]
        assert [d["state"] for d in _deliveries(install, alice, endpoint["id"])] == ["delivered", "delivered"]


def test_failed_attempts_wait_for_the_schedule_and_say_why(tmp_path, receiver):
    with local_app(tmp_path, egress_allowed_hosts="127.0.0.1", webhook_retry_schedule="1h") as install:
        alice = install.user()
        endpoint = _register(install, alice, receiver.url())
        receiver.script = [Answer(503)]
        _refuse_an_upload(install, alice)
        before = utcnow()
        assert deliver_due(install.settings).attempted == 1
        assert deliver_due(install.settings).attempted == 0  # the next try is an hour away
        [delivery] = _deliveries(install, alice, endpoint["id"])
        assert delivery["state"] == "pending" and delivery["attempts"] == 1
        assert delivery["response_status"] == 503 and delivery["last_error"] == "http_status"
        assert "503" in delivery["last_error_detail"]
        next_try = delivery["next_attempt_at"]
        assert next_try is not None
        wait = (_parse(next_try) - before).total_seconds()
        assert 3590 < wait < 3700


def _parse(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_internal_address_is_blocked_at_delivery_and_behind_a_redirect(tmp_path, receiver):
    # The API allows localhost (the operator's setting when it was registered); the worker's settings do not.
    with local_app(tmp_path, egress_allowed_hosts="127.0.0.1,localhost") as install:
        worker = install.settings.model_copy(update={"egress_allowed_hosts": "127.0.0.1"})
        alice = install.user()
        direct = _register(install, alice, receiver.url("/direct", host="localhost"))
        hop = _register(install, alice, receiver.url("/hop"))
        receiver.script = [Answer(307, location=receiver.url("/landed", host="localhost"))]
        _refuse_an_upload(install, alice)
        assert deliver_due(worker).attempted == 2
        assert [r.path for r in receiver.received] == ["/hop"]  # the first hop only; localhost is never reached
        for endpoint in (direct, hop):
            [delivery] = _deliveries(install, alice, endpoint["id"])
            assert delivery["state"] == "failed" and delivery["last_error"] == "blocked", delivery
            assert "localhost" in delivery["last_error_detail"]
            assert delivery["attempts"] == 1  # the same policy would refuse it again: no retries
        assert deliver_due(worker).attempted == 0


def test_too_many_redirects_fail_the_attempt(tmp_path, receiver):
    with local_app(tmp_path, egress_allowed_hosts="127.0.0.1", webhook_retry_schedule="1h") as install:
        alice = install.user()
        endpoint = _register(install, alice, receiver.url())
        receiver.script = [Answer(307, location=receiver.url(f"/r{i}")) for i in range(10)]
        _refuse_an_upload(install, alice)
        deliver_due(install.settings)
        [delivery] = _deliveries(install, alice, endpoint["id"])
        assert delivery["last_error"] == "too_many_redirects" and delivery["state"] == "pending"
        assert len(receiver.received) == 4  # the request and three redirects


def test_an_endpoint_that_keeps_failing_is_disabled_with_a_notice_and_can_be_enabled_again(tmp_path, receiver):
    settings = {
        "egress_allowed_hosts": "127.0.0.1",
        "webhook_retry_schedule": "0s",
        "webhook_disable_after_failures": 2,
    }
    with local_app(tmp_path, **settings) as install:
        alice = install.user()
        endpoint = _register(install, alice, receiver.url())
        path = f"/api/v1/webhooks/{endpoint['id']}"
        receiver.script = [Answer(500)] * 4
        _refuse_an_upload(install, alice)
        deliver_due(install.settings)
        assert install.client.get(path, headers=install.as_user(alice)).json()["enabled"] is True  # one failure
        _refuse_an_upload(install, alice)
        deliver_due(install.settings)
        disabled = install.client.get(path, headers=install.as_user(alice)).json()
        assert disabled["enabled"] is False and disabled["disabled_reason"] == "failing"
        assert disabled["disabled_at"] is not None and "2 deliveries in a row failed" in disabled["notice"]
        assert len(receiver.received) == 4

        # Disabled: new events queue nothing for it, and a resend says why it cannot.
        _refuse_an_upload(install, alice)
        assert len(_deliveries(install, alice, endpoint["id"])) == 2
        failed = _deliveries(install, alice, endpoint["id"])[0]
        resend = f"/api/v1/webhooks/deliveries/{failed['id']}/resend"
        refused = install.client.post(resend, headers=install.as_user(alice))
        assert refused.status_code == 409 and "disabled" in refused.json()["detail"]

        enabled = install.client.patch(path, json={"enabled": True}, headers=install.as_user(alice)).json()
        assert enabled["enabled"] is True and enabled["notice"] is None and enabled["consecutive_failures"] == 0
        assert install.client.post(resend, headers=install.as_user(alice)).status_code == 202
        assert deliver_due(install.settings).attempted == 1
        assert _deliveries(install, alice, endpoint["id"])[0]["state"] == "delivered"


def test_a_lease_that_runs_out_is_taken_again_and_the_lost_attempt_cannot_record(tmp_path, receiver):
    with local_app(tmp_path, egress_allowed_hosts="127.0.0.1") as install:
        alice = install.user()
        endpoint = _register(install, alice, receiver.url())
        _refuse_an_upload(install, alice)
        engine = install.app.state.engine
        first = claim(engine, attempt_seconds=1)
        assert first is not None and first.attempt == 1
        assert claim(engine, attempt_seconds=1) is None  # leased: nobody else takes it meanwhile
        later = utcnow() + timedelta(seconds=30)  # its worker was killed: the lease runs out
        second = claim(engine, attempt_seconds=1, now=later)
        assert second is not None and second.delivery_id == first.delivery_id and second.attempt == 2
        assert record(engine, first, Outcome(status=200), [5.0], 5) is None  # the lost attempt is fenced out
        with Session(engine) as s:
            row = s.get(WebhookDelivery, first.delivery_id)
            assert row is not None and row.last_error == DeliveryError.worker_lost and row.state == "pending"
        assert record(engine, second, Outcome(status=204), [5.0], 5) == "delivered"
        [delivery] = _deliveries(install, alice, endpoint["id"])
        assert delivery["state"] == "delivered" and delivery["attempts"] == 2 and delivery["response_status"] == 204


def test_deleting_a_video_emits_video_deleted_with_the_video(tmp_path, receiver, tiny_clip):
    with local_app(tmp_path, egress_allowed_hosts="127.0.0.1") as install:
        alice = install.user()
        endpoint = _register(install, alice, receiver.url(), event_types=["video.deleted"])
        with tiny_clip.open("rb") as f:
            files = {"file": (tiny_clip.name, f)}
            video = install.client.post("/api/v1/videos", files=files, data={"title": "gone soon"},
                                        headers=install.as_user(alice)).json()  # fmt: skip
        assert install.client.delete(f"/api/v1/videos/{video['id']}", headers=install.as_user(alice)).status_code == 204
        assert deliver_due(install.settings).attempted == 1
        [request] = receiver.received
        event = request.verified(endpoint["secret"])
        assert event["type"] == "video.deleted"
        assert event["data"]["id"] == video["id"] and event["data"]["title"] == "gone soon"
        assert event["data"]["status"] == "deleted"


def test_a_resumable_upload_refused_at_its_first_bytes_emits_upload_refused_once(tmp_path, receiver):
    with local_app(tmp_path, egress_allowed_hosts="127.0.0.1") as install:
        alice = install.user()
        endpoint = _register(install, alice, receiver.url(), event_types=["upload.refused"])
        tus = {**install.as_user(alice), "Tus-Resumable": "1.0.0"}
        body = b"plain text, not a video\n" * 400  # past the 8 KiB sniff window
        metadata = "filename " + base64.b64encode(b"resumable.txt").decode()
        created = install.client.post(
            "/api/v1/uploads/", headers={**tus, "Upload-Length": str(len(body)), "Upload-Metadata": metadata}
        )
        assert created.status_code == 201, created.text
        patch = {**tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        refused = install.client.patch(created.headers["location"], headers=patch, content=body)
        assert refused.status_code == 415, refused.text
        again = install.client.patch(created.headers["location"], headers=patch, content=body)
        assert again.status_code == 410  # already refused: no second event
        assert deliver_due(install.settings).attempted == 1
        [request] = receiver.received
        data = request.verified(endpoint["secret"])["data"]
        assert data["filename"] == "resumable.txt" and data["reason"] == "unsupported_media"
        assert data["upload_id"] == created.headers["location"].rsplit("/", 1)[1]

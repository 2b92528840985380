"""Webhooks on the real stack (PostgreSQL, Redis, Azurite, an API and a Celery worker process of their own): a
receiver on 127.0.0.1 gets `video.ready` signed so that `standardwebhooks` verifies it; a failing receiver gets the
event once more after the retries; a worker SIGKILLed mid-delivery and a Redis restart lose no event; internal
addresses are refused at registration and blocked at delivery, also behind a redirect.

The API's operator setting allows 127.0.0.1 and localhost (so both can be registered); the worker's allows
127.0.0.1 only, so a delivery to localhost, or redirected there, is what the worker blocks."""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import upload, wait_for
from tests.faults import FaultStack, empty_redis, fault_stack, signal_tree, worker_tree
from tests.media import make_clip
from tests.webhook_receiver import Answer, Receiver
from workers.supervision import REAP_INTERVAL

pytestmark = pytest.mark.stack
TIMEOUT = 3  # webhook_timeout_seconds: a held request is given up (or its worker's lease runs out) quickly
SWEEP = REAP_INTERVAL + 5  # the supervisor rings for due deliveries every REAP_INTERVAL


@pytest.fixture(scope="module")
def hooks(tmp_path_factory) -> Iterator[FaultStack]:
    tmp = tmp_path_factory.mktemp("hooks")
    logs = Path(__file__).resolve().parent.parent / "test-artifacts" / "logs" / tmp.name
    logs.mkdir(parents=True, exist_ok=True)
    settings = {
        "egress_allowed_hosts": "127.0.0.1,localhost",
        "webhook_retry_schedule": "1s,1s,1s,1s",
        "webhook_timeout_seconds": str(TIMEOUT),
        "measure_vmaf": "false",
    }
    with fault_stack(tmp, logs, workers=0, **settings) as stack:
        stack.env = {**stack.env, "STREAMIFY_EGRESS_ALLOWED_HOSTS": "127.0.0.1"}  # the worker's own setting
        stack.add_worker("hooks")
        yield stack


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _creator(stack: FaultStack) -> str:
    """A creator of its own per test: only its endpoints hear of its uploads (older tests' receivers are gone)."""
    return stack.new_user()[1]


def _register(stack: FaultStack, token: str, url: str, **fields) -> dict:
    with stack.client(token) as creator:
        answer = creator.post("/api/v1/webhooks", json={"url": url, **fields})
    assert answer.status_code == 201, answer.text
    return {**answer.json(), "token": token}


def _refuse_an_upload(stack: FaultStack, token: str, name: str) -> None:
    with stack.client(token) as creator:
        answer = creator.post("/api/v1/videos", files={"file": (name, b"not a video at all\n" * 50)})
    assert answer.status_code == 415, answer.text


def _deliveries(stack: FaultStack, endpoint: dict) -> list[dict]:
    with stack.client(endpoint["token"]) as creator:
        return creator.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").json()["items"]


def _settled(stack: FaultStack, endpoint: dict, count: int = 1, timeout: float = 60) -> list[dict]:
    """The endpoint's deliveries once `count` of them are no longer pending."""

    def check():
        items = _deliveries(stack, endpoint)
        return items if sum(d["state"] != "pending" for d in items) >= count else None

    return wait_for(check, "deliveries to settle", timeout=timeout)


def test_registration_refuses_internal_addresses_the_operator_did_not_allow(hooks):
    with hooks.client(_creator(hooks)) as creator:
        for url in ["http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/hook"]:
            answer = creator.post("/api/v1/webhooks", json={"url": url})
            assert answer.status_code == 422, answer.text
            assert "private, loopback, link-local or reserved" in answer.json()["detail"]


def test_a_receiver_gets_video_ready_signed_so_that_standardwebhooks_verifies_it(hooks, receiver, tmp_path):
    token = _creator(hooks)
    endpoint = _register(hooks, token, receiver.url("/ready"), event_types=["video.ready", "video.playable"])
    clip = make_clip(tmp_path / "short.mp4", size="640x360", seconds=3, channels=2)
    with hooks.client(token) as creator:
        video_id = upload(creator, clip, title="tell me when it is ready").json()["id"]
    # Both events come; their order is not promised (a batch of deliveries goes out at once).
    wait_for(lambda: receiver.of_type("video.ready") and receiver.of_type("video.playable"), "the events", timeout=180)
    [ready] = receiver.of_type("video.ready")
    event = ready.verified(endpoint["secret"])  # raises unless the signature verifies
    assert event["data"]["id"] == video_id and event["data"]["status"] == "ready"
    assert event["data"]["title"] == "tell me when it is ready" and event["data"]["renditions"]
    assert event["data"]["playable"] is True and event["data"]["watch_url"] == f"/watch/{video_id}"
    playable = receiver.of_type("video.playable")
    assert len(playable) == 1
    assert playable[0].verified(endpoint["secret"])["data"]["id"] == video_id
    deliveries = _settled(hooks, endpoint, count=2)
    assert {(d["event_type"], d["state"], d["attempts"], d["response_status"]) for d in deliveries} == {
        ("video.ready", "delivered", 1, 200),
        ("video.playable", "delivered", 1, 200),
    }


def test_a_receiver_failing_three_times_gets_the_event_once_more_with_every_attempt_recorded(hooks, receiver):
    token = _creator(hooks)
    endpoint = _register(hooks, token, receiver.url("/flaky"), event_types=["upload.refused"])
    receiver.scripts["/flaky"] = [Answer(500), Answer(500), Answer(500)]
    _refuse_an_upload(hooks, token, "flaky.txt")
    [delivery] = _settled(hooks, endpoint, timeout=SWEEP * 2)
    assert delivery["state"] == "delivered" and delivery["attempts"] == 4 and delivery["response_status"] == 200
    time.sleep(3)  # nothing more arrives after the success
    assert receiver.answered == [500, 500, 500, 200]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    for request in receiver.received:
        assert request.verified(endpoint["secret"])["data"]["filename"] == "flaky.txt"


def test_internal_addresses_are_blocked_at_delivery_and_behind_a_redirect(hooks, receiver):
    token = _creator(hooks)
    direct = _register(hooks, token, receiver.url("/direct", host="localhost"), event_types=["upload.refused"])
    hop = _register(hooks, token, receiver.url("/hop"), event_types=["upload.refused"])
    receiver.scripts["/hop"] = [Answer(302, location=receiver.url("/landed", host="localhost"))]
    _refuse_an_upload(hooks, token, "blocked.txt")
    for endpoint in (direct, hop):
        [delivery] = _settled(hooks, endpoint)
        assert delivery["state"] == "failed" and delivery["last_error"] == "blocked", delivery
        assert "localhost" in delivery["last_error_detail"]
    assert [r.path for r in receiver.received] == ["/hop"]


def test_a_worker_killed_mid_delivery_and_a_redis_restart_lose_no_event(hooks, receiver):
    token = _creator(hooks)
    endpoint = _register(hooks, token, receiver.url("/held"), event_types=["upload.refused"])
    receiver.scripts["/held"] = [Answer(hold_seconds=60)]
    _refuse_an_upload(hooks, token, "killed.txt")
    assert receiver.holding.wait(30), "the delivery never reached the receiver"
    signal_tree(worker_tree(hooks.workers[-1]), signal.SIGKILL)  # mid-request: nothing was recorded
    receiver.release.set()
    hooks.add_worker("hooks-after-kill")
    # Its lease runs out (2 x the attempt's bound + 5 s); the new worker's supervisor rings for it.
    [delivery] = _settled(hooks, endpoint, timeout=2 * TIMEOUT + 5 + SWEEP + 30)
    assert delivery["state"] == "delivered" and delivery["attempts"] == 2, delivery
    held = [r for r in receiver.received if r.path == "/held"]
    assert len(held) == 2 and held[0].headers["webhook-id"] == held[1].headers["webhook-id"]  # at least once

    # Redis restarts empty while a doorbell waits in it (the worker is frozen): the sweep rings again.
    worker = worker_tree(hooks.workers[-1])
    signal_tree(worker, signal.SIGSTOP)
    try:
        _refuse_an_upload(hooks, token, "lost-doorbell.txt")
        empty_redis(hooks)
    finally:
        signal_tree(worker, signal.SIGCONT)
    # And Redis down when the event happens: the upload is refused as usual; the event waits in the database.
    assert hooks.redis is not None
    hooks.redis.kill()
    try:
        _refuse_an_upload(hooks, token, "broker-down.txt")
    finally:
        hooks.redis.start()
    deliveries = _settled(hooks, endpoint, count=3, timeout=SWEEP * 3 + 30)
    assert [d["state"] for d in deliveries] == ["delivered"] * 3
    names = sorted(r.event["data"]["filename"] for r in receiver.received)
    assert names == ["broker-down.txt", "killed.txt", "killed.txt", "lost-doorbell.txt"]


def test_the_library_page_lists_endpoints_deliveries_resend_and_the_disabled_notice(hooks, receiver, browser, contexts):
    email, token = hooks.new_user()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    contexts.append(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{hooks.url}/login?next=/library")
    page.fill("#email", email)
    page.fill("#password", "correct horse battery")
    page.click("#submit")
    page.wait_for_selector("#webhooks", state="visible")
    assert page.locator("#install-wide-field").is_hidden()  # a creator, not an operator

    # A refused URL: the form says why; an accepted one shows its secret once and appears in the list.
    page.fill("#webhook-form input[name=url]", "http://10.0.0.1/hook")
    page.click("#webhook-form .add-webhook")
    page.wait_for_selector("#webhook-form .form-error", state="visible")
    assert "private, loopback" in page.inner_text("#webhook-form .form-error")
    page.fill("#webhook-form input[name=url]", receiver.url("/page"))
    page.click("#webhook-form .add-webhook")
    page.wait_for_selector("#webhook-secret", state="visible")
    secret = page.inner_text("#webhook-secret .secret")
    assert secret.startswith("whsec_")
    item = page.locator(".webhook-item").first
    item.wait_for()
    assert item.locator(".webhook-url").inner_text() == receiver.url("/page")

    # A delivery that fails every attempt shows as failed with its code and attempts; Resend sends it again.
    receiver.scripts["/page"] = [Answer(500)] * 5
    with hooks.client(token) as creator:
        refused = creator.post("/api/v1/videos", files={"file": ("page.txt", b"not a video\n" * 99)})
        assert refused.status_code == 415
    failed = item.locator("tr.delivery[data-state=failed]")
    failed.wait_for(timeout=60_000)
    assert failed.locator(".d-code").inner_text() == "500" and failed.locator(".d-attempts").inner_text() == "5"
    failed.locator(".d-resend").click()
    page.locator(".webhook-item tr.delivery[data-state=delivered]").wait_for(timeout=60_000)
    assert receiver.received[-1].verified(secret)["data"]["filename"] == "page.txt"

    # Disabled for failing: the notice is on the page, and "Enable again" turns it back on.
    hooks.sql(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'failing', disabled_at = now(), "
        "consecutive_failures = 5 WHERE url = %s RETURNING id",
        receiver.url("/page"),
    )
    notice = page.locator(".webhook-item .webhook-notice")
    notice.wait_for(state="visible", timeout=15_000)
    assert "5 deliveries in a row failed" in notice.inner_text()
    page.click(".webhook-item .webhook-enable")
    notice.wait_for(state="hidden", timeout=15_000)
    assert page.locator(".webhook-item").first.get_attribute("data-enabled") == "true"
    assert errors == []

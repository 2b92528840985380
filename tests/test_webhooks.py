"""Webhooks, the pure part: the retry schedule, the payload, the secret and the Standard Webhooks signature that a
receiver verifies with the `standardwebhooks` package."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.settings import Settings
from core.webhooks import (
    SECRET_PREFIX,
    max_attempts,
    new_secret,
    next_wait,
    parse_schedule,
    payload,
    sign,
)


def test_the_default_schedule_retries_for_more_than_a_day_in_growing_steps():
    schedule = parse_schedule(Settings().webhook_retry_schedule)
    assert schedule == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert sum(schedule) >= 24 * 3600
    assert schedule == sorted(schedule)
    assert max_attempts(schedule) == 8
    assert [next_wait(schedule, n) for n in range(1, 9)] == [*schedule, None]
    assert next_wait(schedule, 0) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5", [5]), ("1s, 2m ,3h,1d", [1, 120, 10800, 86400]), ("0.5s,0", [0.5, 0]), ("10H", [36000])],
)
def test_schedule_units(text, seconds):
    assert parse_schedule(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "5s,,5s", "-1s", "five", "5s;5m"])
def test_a_schedule_that_is_not_durations_stops_the_process_naming_it(text):
    with pytest.raises(ValidationError) as refused:
        Settings(webhook_retry_schedule=text)
    assert "webhook_retry_schedule" in str(refused.value)


def test_secrets_are_standard_webhooks_secrets_and_never_repeat():
    secret = new_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX))) == 24
    assert len({new_secret() for _ in range(50)}) == 50


def test_payload_has_type_timestamp_and_data():
    at = datetime(2026, 12, 3, 17, 0, 1, 250000, tzinfo=UTC)
    body = payload("video.ready", at, {"id": "v1", "status": "ready"})
    assert body == {
        "type": "video.ready",
        "timestamp": "2026-12-03T17:00:01.250000Z",
        "data": {"id": "v1", "status": "ready"},
    }


def test_a_signed_request_verifies_with_the_standardwebhooks_package_and_a_changed_one_does_not():
    secret = new_secret()
    body = payload("video.ready", datetime.now(UTC), {"id": "v1", "title": "Ünïcode ✓"})
    now = datetime.now(UTC)
    signed = sign(secret, "2b1f", body, now)
    assert signed.headers["webhook-id"] == "msg_2b1f"
    assert signed.headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert signed.headers["webhook-signature"].startswith("v1,")
    assert signed.headers["content-type"] == "application/json"
    assert Webhook(secret).verify(signed.body, signed.headers) == body
    assert json.loads(signed.body) == body

    tampered = signed.body.replace(b"v1", b"v2")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, signed.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(signed.body, signed.headers)
    # An old attempt's request replayed later is refused by the receiver's timestamp window: each retry is signed
    # at its own time (the id stays the same, so the receiver can drop duplicates).
    stale = sign(secret, "2b1f", body, now - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(stale.body, stale.headers)
    assert sign(secret, "2b1f", body, now).headers == signed.headers

"""Webhooks, the pure part: secrets, the retry schedule, the payload of an event and the signed request.

Deliveries follow Standard Webhooks (https://www.standardwebhooks.com): the body is the event's JSON; the
headers `webhook-id` (the event's id, the same on every retry so a receiver can drop duplicates: delivery is
at-least-once), `webhook-timestamp` (this attempt's time, so a receiver's replay window works on retries too) and
`webhook-signature` (`v1,<base64 HMAC-SHA256>` of id.timestamp.body, made by the `standardwebhooks` package, which
is also what receivers verify with). Nothing here touches the database or the network.
"""

import base64
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 24  # 192 bits; Standard Webhooks asks for 24 to 64
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WAIT = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


def new_secret() -> str:
    """A signing secret in the format receivers' libraries take as is: `whsec_` + base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def parse_schedule(text: str) -> list[float]:
    """`5s,5m,30m,2h` -> seconds to wait before each retry. A bare number is seconds. ValueError names the part
    that is not a duration (the settings refuse to start with it)."""
    waits = []
    for part in (p.strip().lower() for p in text.split(",")):
        match = _WAIT.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not a duration: use e.g. 5s, 5m, 2h or 1d, comma-separated")
        waits.append(float(match[1]) * _UNITS[match[2] or "s"])
    if not waits:
        raise ValueError("the schedule needs at least one wait")
    return waits


def max_attempts(schedule: list[float]) -> int:
    """The first attempt, then one after each wait."""
    return len(schedule) + 1


def next_wait(schedule: list[float], attempts: int) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones, or None when the schedule is spent."""
    return schedule[attempts - 1] if 1 <= attempts <= len(schedule) else None


def payload(event_type: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The body every endpoint gets for one event (Standard Webhooks' recommended shape)."""
    return {"type": event_type, "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"), "data": data}


def body_bytes(body: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


@dataclass(frozen=True)
class Signed:
    headers: dict[str, str]
    body: bytes


def message_id(event_id: object) -> str:
    return f"msg_{event_id}"


def sign(secret: str, event_id: object, body: dict[str, Any], at: datetime) -> Signed:
    """One attempt's request: the body and the three Standard Webhooks headers, signed at `at`."""
    raw = body_bytes(body)
    msg_id = message_id(event_id)
    signature = Webhook(secret).sign(msg_id, at, raw.decode())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return Signed(headers, raw)


def is_success(status: int) -> bool:
    return 200 <= status < 300

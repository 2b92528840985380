"""Webhooks in the database: events written in the transaction of the change they report (a transactional
outbox), and their deliveries, which are the retry queue.

Whoever changes a video's state calls `emit` on the same session before committing: the event and one delivery
per endpoint that wants it commit with the change, or not at all. A broker message is then only a doorbell
(`ring`); a worker leases one due delivery at a time (`claim`), attempts it, and `record`s the outcome under its
lease. A worker that dies mid-attempt leaves a lease that runs out; the supervisor's sweep (`due_count`) rings
again for it and for any delivery whose doorbell a broker restart lost. The database stays the truth.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, or_, select, update
from sqlmodel import Session, col

from core.db import affected
from core.webhooks import is_success, next_wait, payload
from schemas.tables import (
    DeliveryError,
    DeliveryState,
    EndpointDisabled,
    Rendition,
    Video,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
    utcnow,
)

if TYPE_CHECKING:
    from core.broker import Broker

log = logging.getLogger(__name__)
WEBHOOK_TASK = "streamify.webhooks"


def lease_seconds(attempt_seconds: float) -> float:
    """How long an attempt holds its delivery: twice its own time bound (which `asyncio.timeout` enforces) and a
    little more for recording it. Past that its worker is taken for dead and another may attempt it."""
    return 2 * attempt_seconds + 5


CLAIM_CANDIDATES = 20


def video_data(video: Video, renditions: list[Rendition] | None = None) -> dict[str, Any]:
    """What an event says about a video: the fields of `GET /api/v1/videos/{id}` that need no viewer (no signed
    URLs: a receiver reads those from the API with its token). `error` goes to the owner's receivers only."""
    ready = video.status == "ready"
    playable = ready or video.playable_seconds is not None
    return {
        "id": str(video.id),
        "title": video.title,
        "description": video.description,
        "visibility": video.visibility,
        "status": video.status,
        "progress": video.progress,
        "playable": playable,
        "encoded_seconds": (video.duration if ready else video.playable_seconds) if playable else None,
        "error": video.error,
        "duration": video.duration,
        "width": video.width,
        "height": video.height,
        "has_video": video.has_video,
        "has_audio": video.has_audio,
        "created_at": video.created_at.isoformat() if video.created_at else None,
        "renditions": [
            {"name": r.name, "width": r.width, "height": r.height, "bandwidth": r.bandwidth, "codecs": r.codecs}
            for r in sorted(renditions or [], key=lambda r: r.bandwidth, reverse=True)
        ],
        "watch_url": f"/watch/{video.id}",
    }


def emit(
    session: Session,
    event_type: WebhookEventType,
    owner_id: uuid.UUID,
    data: dict[str, Any],
    *,
    video_id: uuid.UUID | None = None,
) -> int:
    """Add the event and its deliveries to `session`'s transaction (the caller commits them with its change).
    Returns how many deliveries were queued: the caller rings when it is not zero."""
    endpoints = session.execute(
        select(col(WebhookEndpoint.id), col(WebhookEndpoint.event_types)).where(
            col(WebhookEndpoint.enabled).is_(True),
            or_(col(WebhookEndpoint.owner_id) == owner_id, col(WebhookEndpoint.install_wide).is_(True)),
        )
    ).all()
    wanted = [row[0] for row in endpoints if event_type in (row[1] or [])]
    if not wanted:
        return 0
    now = utcnow()
    event = WebhookEvent(type=event_type, owner_id=owner_id, video_id=video_id, payload=payload(event_type, now, data))
    session.add(event)
    session.flush()  # the event before its deliveries (foreign key)
    for endpoint_id in wanted:
        session.add(WebhookDelivery(event_id=event.id, endpoint_id=endpoint_id, next_attempt_at=now))
    return len(wanted)


def emit_for_video(session: Session, event_type: WebhookEventType, video_id: uuid.UUID) -> int:
    """`emit` for a video as this transaction sees it: the caller's own changes are flushed first, then the row is
    read back (its UPDATEs may have bypassed the loaded object)."""
    session.flush()
    video = session.get(Video, video_id, populate_existing=True)
    if video is None:
        return 0
    renditions = list(session.execute(select(Rendition).where(col(Rendition.video_id) == video_id)).scalars())
    return emit(session, event_type, video.owner_id, video_data(video, renditions), video_id=video.id)


def ring(broker: "Broker", reason: str, countdown: float | None = None) -> None:
    """The doorbell of the webhook task, on the broker's queue (`countdown`: rung that many seconds from now). A
    broker that is down loses nothing: the deliveries wait in the database and the supervisor's sweep rings."""
    try:
        broker.app.send_task(WEBHOOK_TASK, args=[reason], queue=broker.settings.queue, countdown=countdown)
    except Exception:
        log.warning("broker unreachable: no webhook doorbell for %s (the sweep rings later)", reason, exc_info=True)


def _due(now: datetime) -> tuple:
    """Deliveries an attempt may start now: pending, due, to an enabled endpoint, and nobody's lease running."""
    return (
        col(WebhookDelivery.state) == DeliveryState.pending,
        col(WebhookDelivery.next_attempt_at) <= now,
        or_(col(WebhookDelivery.claimed_until).is_(None), col(WebhookDelivery.claimed_until) < now),
        col(WebhookEndpoint.enabled).is_(True),
    )


def due_count(engine: Engine, now: datetime | None = None) -> int:
    """Deliveries waiting for an attempt (their doorbell lost, or their lease run out): the sweep rings for them."""
    now = now or utcnow()
    with Session(engine) as s:
        query = (
            select(func.count())
            .select_from(WebhookDelivery)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(*_due(now))
        )
        return s.execute(query).scalar_one()


@dataclass(frozen=True)
class Claimed:
    """One attempt at one delivery, with everything it needs to send it."""

    delivery_id: uuid.UUID
    lease: uuid.UUID
    attempt: int
    event_id: uuid.UUID
    body: dict[str, Any]
    url: str
    secret: str


def claim(engine: Engine, attempt_seconds: float, now: datetime | None = None) -> Claimed | None:
    """Lease the oldest due delivery for one attempt (a conditional UPDATE: two workers never take the same one).
    A delivery whose earlier lease ran out lost its worker mid-attempt: that attempt is recorded as such."""
    now = now or utcnow()
    with Session(engine) as s:
        candidates = s.execute(
            select(col(WebhookDelivery.id), col(WebhookDelivery.claimed_until))
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(*_due(now))
            .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
            .limit(CLAIM_CANDIDATES)
        ).all()
        for delivery_id, previous_lease in candidates:
            lease = uuid.uuid4()
            lost = {"last_error": DeliveryError.worker_lost, "last_error_detail": None} if previous_lease else {}
            taken = affected(
                s.execute(
                    update(WebhookDelivery)
                    .where(
                        col(WebhookDelivery.id) == delivery_id,
                        col(WebhookDelivery.state) == DeliveryState.pending,
                        or_(col(WebhookDelivery.claimed_until).is_(None), col(WebhookDelivery.claimed_until) < now),
                    )
                    .values(
                        lease=lease,
                        claimed_until=now + timedelta(seconds=lease_seconds(attempt_seconds)),
                        attempts=WebhookDelivery.attempts + 1,
                        last_attempt_at=now,
                        **lost,
                    )
                )
            )
            if not taken:
                s.rollback()
                continue
            row = s.execute(
                select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
                .join(WebhookEvent, col(WebhookEvent.id) == col(WebhookDelivery.event_id))
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
                .where(col(WebhookDelivery.id) == delivery_id)
            ).one()
            delivery, event, endpoint = row
            claimed = Claimed(delivery.id, lease, delivery.attempts, event.id, event.payload, endpoint.url,
                              endpoint.secret)  # fmt: skip
            s.commit()
            return claimed
    return None


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or an error kind (and words for the owner)."""

    status: int | None = None
    error: DeliveryError | None = None
    detail: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and is_success(self.status)


def record(
    engine: Engine, attempt: Claimed, outcome: Outcome, schedule: list[float], disable_after: int
) -> DeliveryState | None:
    """The attempt's outcome, if it still holds its lease (None otherwise: another attempt owns it now).

    Delivered: done, and the endpoint's run of failures resets. Failed: due again after the schedule's next wait;
    once spent (or at once when the address is blocked: the same policy will refuse it again), the delivery
    fails, and an endpoint with `disable_after` failed deliveries in a row is disabled, which its owner sees."""
    now = utcnow()
    wait = None if outcome.error == DeliveryError.blocked else next_wait(schedule, attempt.attempt)
    if outcome.delivered:
        state = DeliveryState.delivered
    elif wait is None:  # the schedule is spent (max_attempts)
        state = DeliveryState.failed
    else:
        state = DeliveryState.pending
    error = None if outcome.delivered else (outcome.error or DeliveryError.http_status)
    next_at = now + timedelta(seconds=wait) if state == DeliveryState.pending and wait is not None else None
    with Session(engine) as s:
        held = affected(
            s.execute(
                update(WebhookDelivery)
                .where(col(WebhookDelivery.id) == attempt.delivery_id, col(WebhookDelivery.lease) == attempt.lease)
                .values(
                    state=state,
                    claimed_until=None,
                    lease=None,
                    response_status=outcome.status,
                    last_error=error,
                    last_error_detail=(outcome.detail or "")[:300] or None,
                    next_attempt_at=next_at,
                    delivered_at=now if state == DeliveryState.delivered else None,
                )
            )
        )
        if not held:
            s.rollback()
            return None
        endpoint_id = s.execute(
            select(col(WebhookDelivery.endpoint_id)).where(col(WebhookDelivery.id) == attempt.delivery_id)
        ).scalar_one()
        if state == DeliveryState.delivered:
            s.execute(
                update(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id).values(consecutive_failures=0)
            )
        elif state == DeliveryState.failed:
            s.execute(
                update(WebhookEndpoint)
                .where(col(WebhookEndpoint.id) == endpoint_id)
                .values(consecutive_failures=WebhookEndpoint.consecutive_failures + 1)
            )
            s.execute(
                update(WebhookEndpoint)
                .where(
                    col(WebhookEndpoint.id) == endpoint_id,
                    col(WebhookEndpoint.enabled).is_(True),
                    col(WebhookEndpoint.consecutive_failures) >= disable_after,
                )
                .values(enabled=False, disabled_reason=EndpointDisabled.failing, disabled_at=now, updated_at=now)
            )
        s.commit()
    return state


def resend(session: Session, delivery: WebhookDelivery) -> WebhookDelivery:
    """The same event (same `webhook-id`) to the same endpoint again, as a new delivery with a fresh schedule."""
    again = WebhookDelivery(event_id=delivery.event_id, endpoint_id=delivery.endpoint_id, next_attempt_at=utcnow())
    session.add(again)
    return again

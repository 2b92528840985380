"""Webhook endpoints: a creator registers receivers for events (an operator also install-wide ones), sees each
delivery's attempts and sends one again. Another creator's endpoint or delivery answers 404, like a missing one.

A URL is checked when it is given (`core.egress.check_url`: http/https, no credentials, a host that resolves to
public addresses only, unless the operator allows it): a creator hears at once why it will not be called. The
worker checks again on every connection it opens (workers/webhook_delivery.py)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.deps import SessionDep, SettingsDep, UserDep, WebhookBellDep
from api.errors import Responses
from core.egress import EgressRefused, check_url
from core.settings import Settings
from core.webhook_outbox import resend
from core.webhooks import new_secret
from schemas.api import (
    Problem,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPage,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookUpdate,
)
from schemas.tables import (
    DeliveryState,
    EndpointDisabled,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
    utcnow,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
MAX_ENDPOINTS = 20  # per account: each one multiplies every event's deliveries
REFUSALS: Responses = {code: {"model": Problem} for code in (401, 403, 404, 409, 422)}
NOT_FOUND: Responses = {401: {"model": Problem}, 404: {"model": Problem}}
Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


def notice(endpoint: WebhookEndpoint) -> str | None:
    """The disabled notice its owner reads in the API and on the library page."""
    if endpoint.enabled:
        return None
    if endpoint.disabled_reason == EndpointDisabled.failing:
        return (
            f"Disabled after {endpoint.consecutive_failures} deliveries in a row failed. Nothing is sent to it "
            "until you fix the receiver and enable it again; deliveries that were waiting are sent then."
        )
    return "Turned off: nothing is sent to it until you enable it again."


def endpoint_read(endpoint: WebhookEndpoint) -> WebhookRead:
    return WebhookRead(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        event_types=list(endpoint.event_types),
        install_wide=endpoint.install_wide,
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        notice=notice(endpoint),
        consecutive_failures=endpoint.consecutive_failures,
        created_at=endpoint.created_at,
    )


def delivery_read(delivery: WebhookDelivery, event: WebhookEvent) -> WebhookDeliveryRead:
    return WebhookDeliveryRead(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event_id=event.id,
        event_type=event.type,
        video_id=event.video_id,
        state=delivery.state,
        attempts=delivery.attempts,
        response_status=delivery.response_status,
        last_error=delivery.last_error,
        last_error_detail=delivery.last_error_detail,
        next_attempt_at=delivery.next_attempt_at if delivery.state == DeliveryState.pending else None,
        last_attempt_at=delivery.last_attempt_at,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


def _checked_url(url: str, settings: Settings) -> str:
    try:
        return check_url(url, settings)
    except EgressRefused as exc:
        raise HTTPException(422, f"url refused: {exc.message}") from exc


def _event_types(types: list[WebhookEventType]) -> list[str]:
    return sorted({str(t) for t in types})


def get_endpoint(endpoint_id: uuid.UUID, session: SessionDep, user: UserDep) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.owner_id != user.id:
        raise HTTPException(404, f"webhook {endpoint_id} not found")
    return endpoint


EndpointDep = Annotated[WebhookEndpoint, Depends(get_endpoint)]


@router.post("", status_code=201, response_model=WebhookCreated, responses=REFUSALS)
def create_webhook(body: WebhookCreate, user: UserDep, session: SessionDep, settings: SettingsDep) -> WebhookCreated:
    """Register a receiver. The answer carries its signing `secret`, shown this once (Standard Webhooks:
    `standardwebhooks.Webhook(secret).verify(body, headers)` on the receiving side)."""
    if body.install_wide and not user.is_operator:
        raise HTTPException(403, "only operators register install-wide endpoints (every creator's events)")
    count = session.execute(
        select(func.count()).select_from(WebhookEndpoint).where(col(WebhookEndpoint.owner_id) == user.id)
    ).scalar_one()
    if count >= MAX_ENDPOINTS:
        raise HTTPException(409, f"at most {MAX_ENDPOINTS} webhook endpoints per account: delete one first")
    endpoint = WebhookEndpoint(
        owner_id=user.id,
        install_wide=body.install_wide,
        url=_checked_url(body.url, settings),
        description=body.description,
        event_types=_event_types(body.event_types),
        secret=new_secret(),
    )
    session.add(endpoint)
    session.commit()
    session.refresh(endpoint)
    return WebhookCreated(**endpoint_read(endpoint).model_dump(), secret=endpoint.secret)


@router.get("", response_model=list[WebhookRead], responses=NOT_FOUND)
def list_webhooks(user: UserDep, session: SessionDep) -> list[WebhookRead]:
    """The caller's endpoints, oldest first (secrets are never shown again)."""
    return [endpoint_read(e) for e in _endpoints_of(session, user)]


def _endpoints_of(session: Session, user: User) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(col(WebhookEndpoint.owner_id) == user.id)
    return list(session.execute(query.order_by(col(WebhookEndpoint.created_at))).scalars())


@router.get("/{endpoint_id}", response_model=WebhookRead, responses=NOT_FOUND)
def get_webhook(endpoint: EndpointDep) -> WebhookRead:
    return endpoint_read(endpoint)


@router.patch("/{endpoint_id}", response_model=WebhookRead, responses=REFUSALS)
def update_webhook(
    endpoint: EndpointDep, changes: WebhookUpdate, session: SessionDep, settings: SettingsDep
) -> WebhookRead:
    """Change the URL, events or description; `enabled: true` turns an endpoint disabled for failing back on
    (its run of failures starts again from zero), `enabled: false` turns it off."""
    if changes.url is not None:
        endpoint.url = _checked_url(changes.url, settings)
    if changes.event_types is not None:
        endpoint.event_types = _event_types(changes.event_types)
    if changes.description is not None:
        endpoint.description = changes.description
    now = utcnow()
    if changes.enabled is True and not endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
        endpoint.consecutive_failures = 0
    elif changes.enabled is False and endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, EndpointDisabled.owner, now
    endpoint.updated_at = now
    session.add(endpoint)
    session.commit()
    session.refresh(endpoint)
    return endpoint_read(endpoint)


@router.delete("/{endpoint_id}", status_code=204, responses=NOT_FOUND)
def delete_webhook(endpoint: EndpointDep, session: SessionDep) -> None:
    """The endpoint and its deliveries go; nothing more is sent to it."""
    session.delete(endpoint)
    session.commit()


@router.get("/{endpoint_id}/deliveries", response_model=WebhookDeliveryPage, responses=NOT_FOUND)
def list_deliveries(
    endpoint: EndpointDep,
    session: SessionDep,
    limit: Limit = 20,
    offset: Offset = 0,
    state: Annotated[DeliveryState | None, Query()] = None,
) -> WebhookDeliveryPage:
    """The endpoint's deliveries, newest first: state, attempts, the last answer or error, the next try."""
    where = [col(WebhookDelivery.endpoint_id) == endpoint.id]
    if state is not None:
        where.append(col(WebhookDelivery.state) == state)
    rows = session.execute(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, col(WebhookEvent.id) == col(WebhookDelivery.event_id))
        .where(*where)
        .order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id))
        .offset(offset)
        .limit(limit)
    ).all()
    total = session.execute(select(func.count()).select_from(WebhookDelivery).where(*where)).scalar_one()
    return WebhookDeliveryPage(items=[delivery_read(d, e) for d, e in rows], total=total, limit=limit, offset=offset)


@router.post(
    "/deliveries/{delivery_id}/resend", status_code=202, response_model=WebhookDeliveryRead, responses=REFUSALS
)
def resend_delivery(
    delivery_id: uuid.UUID, user: UserDep, session: SessionDep, bell: WebhookBellDep
) -> WebhookDeliveryRead:
    """The same event (same `webhook-id`) to the same endpoint again, with a fresh retry schedule: 202 with the new
    delivery. 409 while the endpoint is disabled (enable it first)."""
    row = session.execute(
        select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
        .join(WebhookEvent, col(WebhookEvent.id) == col(WebhookDelivery.event_id))
        .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
        .where(col(WebhookDelivery.id) == delivery_id, col(WebhookEndpoint.owner_id) == user.id)
    ).one_or_none()
    if row is None:
        raise HTTPException(404, f"delivery {delivery_id} not found")
    delivery, event, endpoint = row
    if not endpoint.enabled:
        raise HTTPException(409, "the endpoint is disabled: enable it first, then resend")
    again = resend(session, delivery)
    session.commit()
    session.refresh(again)
    bell(f"resend {again.id}")
    return delivery_read(again, event)

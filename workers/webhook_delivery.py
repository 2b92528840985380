"""Sending webhooks: lease a due delivery, send it signed through the egress guard, record what happened.

Every request goes through `core.egress.egress_client`, which checks the address each connection really opens to
(every redirect hop, every DNS answer): a receiver URL that resolves, or redirects, to a loopback, private,
link-local or metadata address is blocked at delivery even if it looked public when it was registered. One
attempt is bounded as a whole (`webhook_timeout_seconds`), so a receiver that trickles its answer cannot hold a
worker, and the response body is never read: the status is all a delivery needs.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from core.db import get_engine
from core.egress import egress_client, refused, run_async
from core.settings import Settings
from core.webhook_outbox import Claimed, Outcome, claim, record
from core.webhooks import next_wait, parse_schedule, sign
from schemas.tables import DeliveryError, DeliveryState

log = logging.getLogger(__name__)
MAX_REDIRECTS = 3
BATCH = 10  # deliveries attempted at once: a receiver that hangs costs one attempt's bound, not ten in a row
DRAIN_LIMIT = 50  # attempts per doorbell: a backlog is shared with other workers' doorbells and the sweep's
RING_RETRY_WITHIN = 60.0  # a retry this soon gets a delayed doorbell; later ones wait for the sweep (every 10 s)


@dataclass(frozen=True)
class Drained:
    attempted: int
    retry_in: float | None  # seconds until the soonest retry scheduled here, if it is soon enough to ring for
    more: bool  # stopped at the limit with deliveries perhaps still due: ring again


def deliver_due(settings: Settings, limit: int = DRAIN_LIMIT) -> Drained:
    """Attempt due deliveries, BATCH at once, until none is left (or `limit`). A retry due within RING_RETRY_WITHIN
    is reported so the caller rings for it then (a delayed doorbell); later ones are the supervisor's sweep's."""
    engine = get_engine(settings)
    schedule = parse_schedule(settings.webhook_retry_schedule)
    done = 0
    soonest: float | None = None
    while done < limit:
        batch: list[Claimed] = []
        while len(batch) < min(BATCH, limit - done):
            attempt = claim(engine, settings.webhook_timeout_seconds)
            if attempt is None:
                break
            batch.append(attempt)
        if not batch:
            return Drained(done, soonest, more=False)
        outcomes = run_async(_send_all(batch, settings))
        for attempt, outcome in zip(batch, outcomes, strict=True):
            state = record(engine, attempt, outcome, schedule, settings.webhook_disable_after_failures)
            log.info("webhook delivery %s attempt %d: %s -> %s", attempt.delivery_id, attempt.attempt,
                     outcome.status or outcome.error, state)  # fmt: skip
            wait = next_wait(schedule, attempt.attempt)
            if state == DeliveryState.pending and wait is not None and wait <= RING_RETRY_WITHIN:
                soonest = wait if soonest is None else min(soonest, wait)
        done += len(batch)
    return Drained(done, soonest, more=True)


async def _send_all(batch: list[Claimed], settings: Settings) -> list[Outcome]:
    return list(await asyncio.gather(*(send(attempt, settings) for attempt in batch)))


async def send(attempt: Claimed, settings: Settings) -> Outcome:
    """One attempt: a POST of the signed body; the answer's status, or why there was none."""
    signed = sign(attempt.secret, attempt.event_id, attempt.body, datetime.now(UTC))
    timeout = httpx.Timeout(settings.webhook_timeout_seconds, connect=settings.webhook_connect_timeout_seconds)
    try:
        async with (
            asyncio.timeout(settings.webhook_timeout_seconds),
            egress_client(settings, timeout=timeout, max_redirects=MAX_REDIRECTS) as client,
            client.stream("POST", attempt.url, content=signed.body, headers=signed.headers) as answer,
        ):
            status = answer.status_code
        return Outcome(status=status, detail=None if 200 <= status < 300 else f"the receiver answered HTTP {status}")
    except TimeoutError:
        return Outcome(error=DeliveryError.timeout, detail=f"no answer within {settings.webhook_timeout_seconds:g} s")
    except httpx.TooManyRedirects:
        return Outcome(error=DeliveryError.too_many_redirects, detail=f"more than {MAX_REDIRECTS} redirects")
    except httpx.TimeoutException:
        return Outcome(error=DeliveryError.timeout, detail=f"no answer within {settings.webhook_timeout_seconds:g} s")
    except Exception as exc:  # the guard's refusal may come wrapped in httpx's own errors
        blocked = refused(exc)
        if blocked is not None:
            return Outcome(error=DeliveryError.blocked, detail=blocked.message)
        if not isinstance(exc, httpx.HTTPError | OSError):
            log.exception("webhook delivery %s: unexpected failure", attempt.delivery_id)
        return Outcome(error=DeliveryError.connection, detail=_connection_detail(exc))


def _connection_detail(exc: BaseException) -> str:
    """What the owner reads: the kind of failure, not a stack trace."""
    if isinstance(exc, httpx.ConnectError):
        return "could not connect to the receiver (no such host, connection refused or TLS failure)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the receiver closed the connection without a valid HTTP answer"
    return "the connection to the receiver failed"

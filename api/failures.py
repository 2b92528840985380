"""What the API answers when something under it fails: JSON a client can act on, never a plain-text 500.

A database that dropped its connections or a blob store that is down is a 503 with Retry-After (the request
may simply be tried again); a full disk is a 507. Anything else is our bug: logged with its trace, answered
as a 500 in JSON with no internals. Classification is core.transient's, shared with the workers.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.transient import transient_kind
from schemas.tables import FailureKind

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5


async def _failed(request: Request, exc: Exception) -> JSONResponse:
    kind = transient_kind(exc)
    if kind == FailureKind.disk_full:
        log.error("%s %s: disk full", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "the server is out of storage space; try again later"}, status_code=507)
    if kind == FailureKind.unavailable:
        log.warning("%s %s: a backing service is unavailable", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"detail": "a backing service is briefly unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
RETRIES = 2  # a failover can drop the fresh connection too; a third drop in a row is an outage (503)


class RetryDroppedConnection:
    """Runs an idempotent request again when its database connection was dropped under it (a failover, a
    restart, an operator's pg_terminate_backend) before any byte of the answer was sent. The pool's pre-ping
    only catches connections that died while idle; one killed mid-request would otherwise reach the viewer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in IDEMPOTENT:
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        for attempt in range(1, RETRIES + 2):
            try:
                await self.app(scope, receive if attempt == 1 else _replay, tracking)
                return
            except DBAPIError as exc:
                if started or not exc.connection_invalidated or attempt > RETRIES:
                    raise
                log.warning("%s %s: database connection dropped; running it again", scope["method"], scope["path"])


async def _replay() -> Message:
    """The request's (empty) body again: the first run read it."""
    return {"type": "http.request", "body": b"", "more_body": False}


def add_failure_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _failed)
    app.add_middleware(RetryDroppedConnection)

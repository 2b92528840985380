"""What the API answers when something under it fails: JSON a client can act on, never a plain-text 500.

A database that dropped its connections or a blob store that is down is a 503 with Retry-After (the request
may simply be tried again); a full disk is a 507. Anything else is our bug: logged with its trace, answered
as a 500 in JSON with no internals. Classification is core.transient's, shared with the workers.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


def add_failure_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _failed)

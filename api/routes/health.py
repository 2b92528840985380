"""Liveness and readiness: /readyz checks every backing service."""

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import SessionDep, StoresDep

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, session: SessionDep, stores: StoresDep) -> JSONResponse:
    checks: dict[str, str] = {}
    for name, check in (
        ("database", lambda: session.execute(text("SELECT 1"))),
        ("broker", request.app.state.broker.check),
        ("storage", stores.check),
    ):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # anyone may ask: the reason (hosts, accounts) goes to the log, not the answer
            log.warning("readiness: %s unavailable: %s: %s", name, type(exc).__name__, exc)
            checks[name] = "unavailable"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

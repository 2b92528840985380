"""Prometheus scrape endpoint: queue depth, job durations and encode speed, failures, uploads, bytes stored."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from api.deps import MetricsReaderDep, SessionDep
from api.metrics import exposition
from schemas.api import Problem

router = APIRouter(tags=["operators"], responses={401: {"model": Problem}, 403: {"model": Problem}})


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}})
def metrics(request: Request, _reader: MetricsReaderDep, session: SessionDep) -> Response:
    """Read from the database at scrape time, so every API node gives the same numbers (see api.metrics)."""
    body, content_type = exposition(session, request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type})

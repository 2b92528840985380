"""How the API answers a domain refusal (core.errors): one status per reason, the detail as the body."""

from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse

from core.errors import Refusal, Refused

STATUS: dict[Refusal, HTTPStatus] = {
    Refusal.malformed: HTTPStatus.BAD_REQUEST,
    Refusal.invalid: HTTPStatus.UNPROCESSABLE_ENTITY,
    Refusal.unsupported_media: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    Refusal.too_large: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    # Not 413: the request is small, what it asks the decoder for is the problem (like a 422 on any other value).
    Refusal.over_limit: HTTPStatus.UNPROCESSABLE_ENTITY,
    Refusal.not_found: HTTPStatus.NOT_FOUND,
    Refusal.gone: HTTPStatus.GONE,
    Refusal.conflict: HTTPStatus.CONFLICT,
    Refusal.busy: HTTPStatus.LOCKED,
    Refusal.too_many: HTTPStatus.TOO_MANY_REQUESTS,
    Refusal.throttled: HTTPStatus.TOO_MANY_REQUESTS,
    Refusal.out_of_space: HTTPStatus.INSUFFICIENT_STORAGE,
    Refusal.unavailable: HTTPStatus.SERVICE_UNAVAILABLE,
}


# What a route may answer besides success, for the OpenAPI schema (FastAPI's own type for `responses=`).
Responses = dict[int | str, dict[str, Any]]


def status_for(reason: Refusal) -> int:
    return int(STATUS[reason])


def refusal_response(exc: Refused) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse({"detail": exc.detail}, status_code=status_for(exc.reason), headers=headers)

"""How the API answers a domain refusal (core.errors): one status per reason, the detail as the body."""

from http import HTTPStatus
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.errors import Refusal, Refused

STATUS: dict[Refusal, HTTPStatus] = {
    Refusal.malformed: HTTPStatus.BAD_REQUEST,
    Refusal.invalid: HTTPStatus.UNPROCESSABLE_ENTITY,
    Refusal.unsupported_media: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    Refusal.too_large: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    Refusal.not_found: HTTPStatus.NOT_FOUND,
    Refusal.gone: HTTPStatus.GONE,
    Refusal.conflict: HTTPStatus.CONFLICT,
    Refusal.busy: HTTPStatus.LOCKED,
    Refusal.too_many: HTTPStatus.TOO_MANY_REQUESTS,
    Refusal.out_of_space: HTTPStatus.INSUFFICIENT_STORAGE,
    Refusal.unavailable: HTTPStatus.SERVICE_UNAVAILABLE,
}


# What a route may answer besides success, for the OpenAPI schema (FastAPI's own type for `responses=`).
Responses = dict[int | str, dict[str, Any]]


def status_for(reason: Refusal) -> int:
    return int(STATUS[reason])


def refusal_response(exc: Refused) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=status_for(exc.reason))


def _encodable(value: Any) -> Any:
    """`value` with every lone surrogate (valid in JSON's \\uD800 escapes, never in UTF-8) made U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(v) for v in value]
    return value


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 (`detail`: the errors, with the input echoed), but always encodable: its own handler
    crashes with a 500 when the echoed input holds a lone surrogate."""
    return JSONResponse({"detail": _encodable(jsonable_encoder(exc.errors()))}, status_code=422)

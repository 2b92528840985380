"""How the API answers a domain refusal (core.errors): one status per reason, the detail as the body."""

from http import HTTPStatus
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import validation_error_definition
from fastapi.responses import JSONResponse

from core.errors import Refusal, Refused
from schemas.api import Problem

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


# What FastAPI answers by itself, before a route runs, described in the schema (the routes' `responses=` cannot):
# - 400 "There was an error parsing the body" when a body cannot be read at all (JSON that is not UTF-8, a broken
#   multipart form): on every operation with a body;
# - 422 is either its per-field validation errors (`detail`: a list) or a route's own refusal of a value
#   (`detail`: a string, Refusal.invalid): one schema for both, wherever a 422 is declared;
# - every refusal is JSON, even on a route whose success is not (playlists, server-sent events), where FastAPI
#   would list the refusal under the success's media type.
_REF = "#/components/schemas/"
INVALID_INPUT = {
    "title": "InvalidInput",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "title": "Detail",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": _REF + "ValidationError"}}],
        }
    },
}


def _json_of(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF + name}}}


def with_framework_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document FastAPI generated, with the 400 and 422 above (changed in place, and returned)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ValidationError", validation_error_definition)
    components.setdefault("Problem", Problem.model_json_schema())
    components["InvalidInput"] = INVALID_INPUT
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                content = response.get("content", {})
                if status[0] in "45" and content and "application/json" not in content:
                    response["content"] = {"application/json": next(iter(content.values()))}
            if "422" in responses:
                responses["422"]["content"] = _json_of("InvalidInput")
            if "requestBody" in operation:
                unreadable = "The body could not be parsed (not UTF-8 JSON, a broken multipart form)"
                responses.setdefault("400", {"description": unreadable, "content": _json_of("Problem")})
    return schema


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

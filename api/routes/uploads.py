"""Resumable uploads over tus 1.0 (core, creation, termination, expiration) at /api/v1/uploads/.

Thin HTTP layer over ingest/tus.py: headers in, headers out. Beyond tus, `GET /api/v1/uploads/{id}`
tells a client that lost the final PATCH's answer what became of its upload (video id or refusal).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlmodel import Session

from api.deps import EnqueueDep, SessionDep, SettingsDep, StoresDep, UserDep, WebhookBellDep
from api.errors import refusal_response, status_for
from api.webhook_events import report_refused_upload
from core.errors import Refusal, Refused
from ingest.housekeeping import sweep_periodically
from ingest.tus import (
    TUS_EXTENSIONS,
    TUS_VERSION,
    TusStore,
    UploadRecord,
    http_date,
    parse_metadata,
)
from schemas.api import Problem, UploadRead, UploadState

PREFIX = "/api/v1/uploads"
VIDEO_ID_HEADER = "Streamify-Video-Id"
OFFSET_STREAM = "application/offset+octet-stream"


class TusRoute(APIRoute):
    """Every tus answer, refusals included, carries Tus-Resumable and a JSON {"detail": ...} body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except Refused as exc:
                response = refusal_response(exc)
            except HTTPException as exc:
                response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
            response.headers["Tus-Resumable"] = TUS_VERSION
            return response

        return tus_handler


@contextlib.asynccontextmanager
async def _cleanup(app: FastAPI) -> AsyncIterator[None]:
    """Upload leftovers (expired partial uploads, orphaned sources) go at startup and then periodically, from
    each API process: with the settings the app was created with (`create_app(settings)`), not the environment's."""
    task = asyncio.create_task(sweep_periodically(app.state.settings))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


router = APIRouter(prefix=PREFIX, tags=["uploads"], route_class=TusRoute, lifespan=_cleanup)
REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 404, 409, 410, 412, 413, 415, 422, 423, 429, 503, 507)
}


def check_version(tus_resumable: Annotated[str | None, Header()] = None) -> None:
    if tus_resumable != TUS_VERSION:
        raise HTTPException(412, f"Tus-Resumable must be {TUS_VERSION}", headers={"Tus-Version": TUS_VERSION})


def get_tus(settings: SettingsDep) -> TusStore:
    return TusStore(settings)


TusDep = Annotated[TusStore, Depends(get_tus)]


def get_upload(upload_id: str, user: UserDep, tus: TusDep) -> UploadRecord:
    """One of the caller's uploads; another creator's id is 404, like an unknown one."""
    return tus.load(user.id, upload_id)


UploadDep = Annotated[UploadRecord, Depends(get_upload)]
Versioned = [Depends(check_version)]


def _int_header(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise Refused(Refusal.malformed, f"{name} must be a non-negative integer")
    return int(value)


def _state_headers(rec: UploadRecord, offset: int) -> dict[str, str]:
    headers = {"Upload-Offset": str(offset), "Upload-Expires": http_date(rec.expires_at)}
    if rec.video_id:
        headers[VIDEO_ID_HEADER] = str(rec.video_id)
    return headers


@router.options("", status_code=204, include_in_schema=False)
@router.options("/", status_code=204)
def discover(settings: SettingsDep) -> Response:
    """tus discovery: version, extensions and the size limit."""
    limit = str(settings.max_upload_bytes)
    return Response(
        status_code=204, headers={"Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS, "Tus-Max-Size": limit}
    )


@router.post("", status_code=201, include_in_schema=False, dependencies=Versioned)
@router.post("/", status_code=201, dependencies=Versioned, responses=REFUSALS)
def create_upload(
    user: UserDep,
    tus: TusDep,
    upload_length: Annotated[str | None, Header()] = None,
    upload_defer_length: Annotated[str | None, Header()] = None,
    upload_concat: Annotated[str | None, Header()] = None,
    upload_metadata: Annotated[str | None, Header()] = None,
    content_length: Annotated[str | None, Header()] = None,
) -> Response:
    """Creation: declare Upload-Length (≤ the size limit) and metadata filename/title/description/visibility."""
    if upload_defer_length is not None or upload_length is None:
        raise Refused(Refusal.malformed, "Upload-Length is required (Upload-Defer-Length is not supported)")
    if upload_concat is not None:
        raise Refused(Refusal.malformed, "Upload-Concat (concatenation) is not supported")
    if _int_header(content_length, "Content-Length"):
        raise Refused(Refusal.malformed, "creation-with-upload is not supported: send the bytes with PATCH")
    length = _int_header(upload_length, "Upload-Length")
    assert length is not None
    rec = tus.create(user.id, length, metadata=parse_metadata(upload_metadata))
    headers = {"Location": f"{PREFIX}/{rec.id}", "Upload-Expires": http_date(rec.expires_at)}
    return Response(status_code=201, headers=headers)


@router.head("/{upload_id}", dependencies=Versioned, responses=REFUSALS)
def upload_offset(rec: UploadDep, tus: TusDep) -> Response:
    """The offset to resume from; waits for a PATCH still writing so the answer is the true one."""
    if rec.state == UploadState.refused:
        raise Refused(Refusal.gone, f"upload {rec.id} was refused: {rec.error}")
    rec, offset = tus.current(rec)
    headers = {**_state_headers(rec, offset), "Upload-Length": str(rec.length), "Cache-Control": "no-store"}
    return Response(status_code=200, headers=headers)


@router.patch("/{upload_id}", status_code=204, dependencies=Versioned, responses=REFUSALS)
async def append_bytes(
    request: Request,
    rec: UploadDep,
    tus: TusDep,
    session: SessionDep,
    stores: StoresDep,
    enqueue: EnqueueDep,
    bell: WebhookBellDep,
    upload_offset: Annotated[str | None, Header()] = None,
    content_type: Annotated[str | None, Header()] = None,
    content_length: Annotated[str | None, Header()] = None,
) -> Response:
    """Append bytes at Upload-Offset; the PATCH that completes the upload also ingests it.

    Its answer then carries Streamify-Video-Id, or the refusal (415 not media, 422 corrupt...).
    """
    # Authenticated: give the pooled connection back before a body that may take hours; the ingest after the
    # last byte checks one out again for its own short transaction.
    await run_in_threadpool(session.close)
    if (content_type or "").split(";")[0].strip().lower() != OFFSET_STREAM:
        raise Refused(Refusal.unsupported_media, f"Content-Type must be {OFFSET_STREAM}")
    offset = _int_header(upload_offset, "Upload-Offset")
    if offset is None:
        raise Refused(Refusal.malformed, "Upload-Offset header is required")
    try:
        rec, new_offset = await tus.receive(
            rec, offset, _int_header(content_length, "Content-Length"), request.stream()
        )
        if rec.state == UploadState.ingesting:
            await run_in_threadpool(tus.ingest, rec, session=session, stores=stores, enqueue=enqueue)
    except Refused as exc:
        await run_in_threadpool(_report_if_refused, tus, rec, exc, session, bell)
        raise
    return Response(status_code=204, headers=_state_headers(rec, new_offset))


def _report_if_refused(
    tus: TusStore, before: UploadRecord, exc: Refused, session: Session, bell: Callable[[str], None]
) -> None:
    """`upload.refused` when this PATCH is what refused the upload (its bytes, not the request's headers)."""
    if before.state == UploadState.refused:
        return
    try:
        after = tus.load(before.owner_id, before.id)
    except Refused:
        return
    if after.state == UploadState.refused:
        report_refused_upload(
            session, bell, after.owner_id, exc, filename=after.filename, title=after.title, upload_id=after.id
        )


@router.delete("/{upload_id}", status_code=204, dependencies=Versioned, responses=REFUSALS)
def terminate(rec: UploadDep, tus: TusDep) -> Response:
    """Termination: drop the upload and its bytes (a finished upload's video stays)."""
    tus.terminate(rec)
    return Response(status_code=204)


@router.get("/{upload_id}", response_model=UploadRead, responses=REFUSALS)
def upload_status(rec: UploadDep, tus: TusDep) -> UploadRead:
    """Not tus: what became of the upload (receiving, ingesting, done with video_id, refused with error)."""
    rec, offset = tus.current(rec)
    return UploadRead(
        **rec.model_dump(include=set(UploadRead.model_fields) & set(UploadRecord.model_fields) - {"error_status"}),
        # A record written before refusals had reasons carries its status itself (gone within tus_expiry).
        error_status=status_for(rec.refusal) if rec.refusal else rec.error_status,
        offset=offset,
        watch_url=f"/watch/{rec.video_id}" if rec.video_id else None,
    )

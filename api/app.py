"""FastAPI application factory.

The settings given to `create_app` are the only ones its requests see: the engine, stores, signer and broker
are made from them here and kept on `app.state`, where api.deps finds them.
"""

from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.access import Signer
from api.errors import refusal_response, validation_response, with_framework_responses
from api.failures import add_failure_handlers
from api.headers import SecurityHeaders, page_policy
from api.limits import BodyLimits, body_rules
from api.media import MediaFiles
from api.routes import (
    auth,
    captions,
    health,
    imports,
    media_access,
    metrics,
    ops,
    ops_page,
    playback,
    uploads,
    videos,
    webhooks,
)
from core.accounts import limit_password_hashing
from core.blobs import MEDIA_URL_PREFIX, make_stores
from core.broker import Broker
from core.db import make_engine
from core.errors import Refused
from core.logs import configure_logging
from core.playback_secret import playback_secret
from core.playback_tokens import nginx_key
from core.settings import Settings, get_settings
from player.pages import mount_player


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_format)  # JSON lines for uvicorn's and our loggers when asked
    stores = make_stores(settings)
    secret = playback_secret(settings)  # at start: a node without the shared secret must not come up
    engine = make_engine(settings.effective_database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        stores.ensure()
        yield
        engine.dispose()

    app = FastAPI(
        title="Streamify",
        version="0.1.0",
        lifespan=lifespan,
        description="Upload videos, transcode them to adaptive HLS, play them with hls.js.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.stores = stores
    app.state.signer = Signer.from_settings(settings, secret, stores.media)
    app.state.broker = Broker(settings)
    app.add_middleware(BodyLimits, rules=body_rules(settings), default=settings.json_body_max_bytes)
    limit_password_hashing(settings.password_hash_concurrency, settings.password_hash_wait_seconds)
    docs = frozenset(p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p)
    app.add_middleware(SecurityHeaders, page_csp=page_policy(settings), docs_paths=docs)
    add_failure_handlers(app)

    @app.exception_handler(Refused)
    async def _refused(_request: Request, exc: Refused) -> JSONResponse:
        return refusal_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc)

    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(videos.router)
    app.include_router(videos.library)
    app.include_router(imports.router)  # import from a URL (a worker downloads it)
    app.include_router(uploads.router)  # tus resumable uploads (+ its expiry cleanup lifespan)
    app.include_router(playback.router)
    app.include_router(media_access.router)  # nginx's auth_request for unsigned /media/ (cached per video)
    app.include_router(captions.router)
    app.include_router(webhooks.router)  # creators' and operators' webhook endpoints and their deliveries
    app.include_router(ops.router)
    app.include_router(metrics.router)  # Prometheus; operators or the scrape token
    app.include_router(ops_page.router)  # the operator dashboard page (/ops)
    if not settings.uses_azure:
        media_dir = settings.blob_dir / "media"
        media_dir.mkdir(parents=True, exist_ok=True)
        files = MediaFiles(directory=media_dir, engine=engine, segment_key=nginx_key(secret))
        app.mount(MEDIA_URL_PREFIX, files, name="media")
    mount_player(app)

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            with_framework_responses(FastAPI.openapi(app))  # FastAPI's own document, then what it answers itself
        return app.openapi_schema  # type: ignore[return-value]  # set by FastAPI.openapi

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
    return app

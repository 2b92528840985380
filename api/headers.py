"""Security headers on every answer: Content-Security-Policy for the pages, nosniff, Referrer-Policy, no framing.

The pages load only their own files (hls.js, Plyr, tus-js-client, uPlot are copied to /static/vendor by `npm ci`;
templates carry no inline script or style, so no nonce or hash is needed) and fetch from this site and the media
store: playlists, segments, posters, sprites and captions come from this origin (nginx, the embedded /media
mount), or from the CDN named by STREAMIFY_SEGMENT_BASE_URL, or from Azure Blob Storage when players fetch
blobs directly. hls.js feeds MediaSource through blob: URLs and may start its demuxer in a blob: worker.

No page is meant to be embedded (there is no embed page): frame-ancestors 'none' everywhere. The Swagger UI at
/docs and /redoc loads its own inline script from a CDN, so it keeps FastAPI's page and gets only frame-ancestors.
A pure ASGI middleware: Starlette's BaseHTTPMiddleware would buffer the operators' server-sent events.
"""

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings

# Token-carrying URLs (/watch/{id}?token=, playlists with ?token=) must never leave in a Referer: the full URL
# goes to this site only, other sites (the CDN, Blob Storage, links in descriptions) get nothing.
REFERRER_POLICY = "same-origin"
NO_FRAMING = "frame-ancestors 'none'"


def media_origin(settings: Settings) -> str | None:
    """The origin players fetch media from when it is not this site: the CDN prefix, or the blob endpoint."""
    base = settings.segment_base_url
    if not base and settings.uses_azure:
        from azure.storage.blob import BlobServiceClient

        assert settings.azure_connection_string
        base = BlobServiceClient.from_connection_string(settings.azure_connection_string).url
    parts = urlsplit(base or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def page_policy(settings: Settings) -> str:
    media = " ".join(filter(None, ("'self'", media_origin(settings))))
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media} data: blob:",
            f"media-src {media} blob:",
            f"connect-src {media}",
            "worker-src 'self' blob:",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            NO_FRAMING,
        )
    )


class SecurityHeaders:
    """Adds the headers to every HTTP answer that does not set them itself."""

    def __init__(self, app: ASGIApp, *, page_csp: str, docs_paths: frozenset[str]) -> None:
        self.app = app
        self.page_csp = page_csp
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in self.docs_paths

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", REFERRER_POLICY)
                headers.setdefault("X-Frame-Options", "DENY")  # browsers without frame-ancestors
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", NO_FRAMING if docs else self.page_csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)

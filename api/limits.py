"""Refuse an oversized upload while it streams in, before it fills a disk (413)."""

import json
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import too_large_detail
from core.limits import MULTIPART_SLACK


class _TooLarge(HTTPException):
    """An HTTPException so FastAPI's body parser re-raises it instead of answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_detail(limit), headers={"connection": "close"})


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        methods: tuple[str, ...] = ("POST", "PUT", "PATCH"),
        path: str | None = None,  # a regex: only these paths (a smaller limit for small files, e.g. captions)
    ) -> None:
        self.app, self.limit, self.methods = app, limit + MULTIPART_SLACK, methods
        self.path = re.compile(path) if path else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in self.methods
            or (self.path is not None and not self.path.match(scope["path"]))
        ):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge(self.limit - MULTIPART_SLACK)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": too_large_detail(self.limit - MULTIPART_SLACK)})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})

"""Request bodies, bounded per route in the app itself (nginx bounds them too, but the embedded mode has no nginx).

Every request has a body limit: the routes that take files say theirs (`BodyRule`), every other route gets the
small `default` (JSON). A declared Content-Length over it is refused with 413 before a byte is read; a chunked
body is counted while it streams in and cut at the limit.

A rule may also ask for the caller first (`authenticate=True`): FastAPI parses a multipart body (and Starlette
spools its file to disk) before any dependency runs, so `UserDep` on such a route would answer 401 only after
the whole body arrived. Here the caller is resolved from the headers alone, exactly as `api.deps` does, and an
anonymous or forged request gets its 401/403 without its body being read.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.captions import MAX_CAPTION_BYTES
from api.deps import get_current_user, require_user
from api.routes import captions, uploads, videos
from core.errors import too_large_detail
from core.limits import MULTIPART_SLACK
from core.settings import Settings


def body_too_large_detail(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes"


@dataclass(frozen=True)
class BodyRule:
    """The body limit of the routes whose path matches `path` (a regex) for these methods."""

    path: str
    limit: int  # the bound named to the caller (a file's size for uploads)
    methods: tuple[str, ...] = ("POST",)
    slack: int = 0  # allowed beyond `limit`: multipart boundaries and form fields around the file
    file: bool = True  # refusals name a file ("file too large") rather than the request body
    authenticate: bool = False  # resolve the caller before the body is read (routes that parse it up front)

    def detail(self) -> str:
        return too_large_detail(self.limit) if self.file else body_too_large_detail(self.limit)


class _TooLarge(HTTPException):
    """An HTTPException so FastAPI's body parser re-raises it instead of answering 400."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail, headers={"connection": "close"})


class BodyLimits:
    def __init__(self, app: ASGIApp, rules: list[BodyRule], default: int) -> None:
        self.app = app
        self.rules = [(re.compile(rule.path), rule) for rule in rules]
        self.default = BodyRule(path="", limit=default, methods=(), file=False)

    def rule_for(self, method: str, path: str) -> BodyRule:
        for pattern, rule in self.rules:
            if method in rule.methods and pattern.match(path):
                return rule
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.rule_for(scope["method"], scope["path"])
        limit = rule.limit + rule.slack
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, rule.detail())
            return
        if rule.authenticate and (refusal := await _caller_refused(scope)) is not None:
            await _answer(send, refusal.status_code, refusal.detail, refusal.headers)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge(rule.detail())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _answer(send, 413, rule.detail())


async def _caller_refused(scope: Scope) -> HTTPException | None:
    """What `UserDep` would answer from these headers (401 anonymous or bad token, 403 cross-site), or None."""
    request = Request(scope)  # no receive: nothing here can touch the body

    def check() -> None:
        with Session(request.app.state.engine) as session:
            require_user(get_current_user(request, session))

    try:
        await run_in_threadpool(check)
    except HTTPException as exc:
        return exc
    return None


async def _answer(send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
    """A JSON refusal that closes the connection: the unread body is never waited for."""
    body = json.dumps({"detail": detail}).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    plain = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    start = {"type": "http.response.start", "status": status, "headers": [*plain, (b"connection", b"close"), *extra]}
    await send(start)
    await send({"type": "http.response.body", "body": body})


def body_rules(settings: Settings) -> list[BodyRule]:
    """The routes that take more than JSON: a video (multipart or tus PATCH) and a caption file."""
    return [
        BodyRule(rf"^{videos.router.prefix}/?$", settings.max_upload_bytes, slack=MULTIPART_SLACK, authenticate=True),
        BodyRule(captions.UPLOAD_PATH, MAX_CAPTION_BYTES, slack=MULTIPART_SLACK, authenticate=True),
        # tus PATCH reads its body itself, after its dependencies authenticated the caller; ingest.tus bounds it
        # to the upload's declared length too.
        BodyRule(rf"^{uploads.PREFIX}/[^/]+$", settings.max_upload_bytes, methods=("PATCH",)),
    ]

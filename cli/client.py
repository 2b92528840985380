"""A typed Python client for Streamify's public API: what `streamify upload` and the tests use.

Written small on httpx rather than generated from the OpenAPI schema: the API's answers already are pydantic
models (schemas/api.py), so each method is a line or two over `request` that returns one of them, and a generator
would emit a second copy of every model. Only the public API (`/api/v1/...`, Bearer token) is covered; the
operator routes stay with `streamify jobs`.

Uploads are resumable by default (tus 1.0, /api/v1/uploads/): a dropped connection or a node restarting mid-file
resumes from the offset the server holds, never from 0, and a lost final answer is recovered from
`GET /api/v1/uploads/{id}`. `resumable=False` sends one multipart POST instead (no resume).

One exception for every refusal: `StreamifyError(status, detail)` with the API's JSON `detail`. A server that
cannot be reached raises httpx's own `TransportError` (there is no answer to carry), `wait_until` a `TimeoutError`.

Extending it: a route the client lacks is one method calling `self.request(...)` and validating its answer with
the route's model from schemas/api.py (see "Further areas" at the end of the class); anyone can also call
`request` directly for a route no method covers yet.
"""

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Literal, Self, TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from schemas.api import (
    CaptionCreated,
    CaptionRead,
    ImportRead,
    PlaybackTokenRead,
    TokenCreated,
    TokenRead,
    UploadRead,
    UploadState,
    UserRead,
    VideoPage,
    VideoRead,
    VisibilityName,
)
from schemas.tables import VideoStatus, Visibility

API = "/api/v1"
UPLOADS = f"{API}/uploads/"
# The tus 1.0 protocol's own constants (https://tus.io/protocols/resumable-upload): what any tus client sends.
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"

# The final PATCH (or the multipart POST) answers once the server has sniffed, probed and stored the file.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, read=600.0)
CHUNK_BYTES = 32 * 1024 * 1024  # one PATCH: bounded so a proxy's body limit or a cut loses little
READ_BYTES = 256 * 1024  # one progress step
RESUME_ATTEMPTS = 5  # failures in a row (no byte accepted in between) before the upload gives up
# Answers that say "not now" rather than "no": an upload resumes after them, a wait polls on. 409 and 423 are tus:
# the offset moved under us (a PATCH we thought lost was written) or another PATCH still holds the upload.
TRANSIENT = frozenset({502, 503, 504})
RESYNC = TRANSIENT | {409, 423}
FINAL = frozenset({VideoStatus.ready, VideoStatus.failed, VideoStatus.cancelled})

ProgressCallback = Callable[[int, int], None]  # (bytes sent so far, file size); may go back after a resume
Until = Literal["ready", "playable"] | Callable[[VideoRead], bool]
M = TypeVar("M", bound=BaseModel)  # the answer's model, from schemas/api.py


class StreamifyError(Exception):
    """The API refused: `status` is the HTTP status, `detail` the API's JSON `detail` (a 422's per-field
    errors joined into one line; the start of the body when an answer is not JSON, e.g. from a proxy)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail

    @classmethod
    def from_response(cls, response: httpx.Response) -> "StreamifyError":
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):  # FastAPI's validation errors: [{"loc": [...], "msg": ...}, ...]
            detail = "; ".join(_field_error(e) for e in detail)
        if not isinstance(detail, str) or not detail:
            detail = response.text[:200].strip() or response.reason_phrase
        return cls(response.status_code, detail)


def _field_error(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = ".".join(str(part) for part in error.get("loc", [])[1:])  # drop "body" / "query"
    return f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", ""))


def tus_metadata(fields: dict[str, str]) -> str:
    """tus `Upload-Metadata`: `key base64(value)` pairs, comma-separated."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in fields.items())


def _segment(value: uuid.UUID | str) -> str:
    """One path segment: an id or a language tag from the caller can never reach another route."""
    return quote(str(value), safe="")


class _Counting:
    """A file wrapper that reports each read, so a multipart body streamed by httpx advances a progress bar."""

    def __init__(self, f: BinaryIO, total: int, on_progress: ProgressCallback) -> None:
        self._f, self._total, self._on_progress, self._sent = f, total, on_progress, 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._sent += len(data)
        self._on_progress(self._sent, self._total)
        return data

    def __getattr__(self, name: str) -> Any:  # fileno, seek, tell: httpx sizes and rewinds the file with them
        return getattr(self._f, name)


class StreamifyClient:
    """`StreamifyClient(server, token)`: a Streamify install's public API, as one user (an API token from the site
    or `streamify users token EMAIL`; without one, an anonymous viewer). Use it in a `with` block, or `close()`."""

    def __init__(
        self, server: str, token: str | None = None, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)
        self._owned = True

    @classmethod
    def wrap(cls, http: httpx.Client) -> "StreamifyClient":
        """Over an httpx.Client set up elsewhere (its base_url, auth headers, transport); `close()` leaves it open."""
        client = cls.__new__(cls)
        client._http, client._owned = http, False
        return client

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any route (a path under the server, or a full URL); a refusal (status ≥ 400) raises StreamifyError."""
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise StreamifyError.from_response(response)
        return response

    def link(self, path: str) -> str:
        """An absolute URL for a path the API answers (`watch_url`, `playback_url`): to print or share."""
        return str(self._http.base_url.join(path))

    def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return model.model_validate_json(self.request(method, path, **kwargs).content)

    def _models(self, model: type[M], method: str, path: str, **kwargs: Any) -> list[M]:
        return [model.model_validate(item) for item in self.request(method, path, **kwargs).json()]

    # Account

    def me(self) -> UserRead:
        return self._model(UserRead, "GET", f"{API}/auth/me")

    def create_token(self, name: str) -> TokenCreated:
        """A new API token for this account; its secret (`token`) is in this answer only."""
        return self._model(TokenCreated, "POST", f"{API}/auth/tokens", json={"name": name})

    def list_tokens(self) -> list[TokenRead]:
        return self._models(TokenRead, "GET", f"{API}/auth/tokens")

    def revoke_token(self, token_id: uuid.UUID | str) -> None:
        self.request("DELETE", f"{API}/auth/tokens/{_segment(token_id)}")

    # Videos

    def upload(
        self,
        path: Path | str,
        *,
        title: str | None = None,
        description: str | None = None,
        visibility: Visibility | VisibilityName | None = None,
        on_progress: ProgressCallback | None = None,
        resumable: bool = True,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> VideoRead:
        """Upload a file; returns the new video (queued: `wait_until` follows it). Without a title the server
        takes the file's name. A refusal (not media, too large, corrupt...) raises StreamifyError with its reason."""
        path = Path(path)
        fields = {"title": title, "description": description, "visibility": visibility}
        given = {key: str(value) for key, value in fields.items() if value is not None}
        if resumable:
            return self._upload_tus(path, given, on_progress, chunk_bytes)
        return self._upload_multipart(path, given, on_progress)

    def _upload_multipart(self, path: Path, fields: dict[str, str], on_progress: ProgressCallback | None) -> VideoRead:
        with path.open("rb") as f:
            body = cast(IO[bytes], _Counting(f, path.stat().st_size, on_progress)) if on_progress else f
            return self._model(VideoRead, "POST", f"{API}/videos", files={"file": (path.name, body)}, data=fields)

    def _upload_tus(
        self, path: Path, fields: dict[str, str], on_progress: ProgressCallback | None, chunk_bytes: int
    ) -> VideoRead:
        total = path.stat().st_size
        metadata = tus_metadata({"filename": path.name, **fields})
        headers = {**TUS_HEADERS, "Upload-Length": str(total), "Upload-Metadata": metadata}
        url = self.request("POST", UPLOADS, headers=headers).headers["location"]
        offset: int | None = 0  # None: unknown after a failure, asked from the server
        failures = 0
        with path.open("rb") as f:
            while True:
                try:
                    if offset is None or offset >= total:
                        state = self.upload_state(url)
                        if state.state != UploadState.receiving or state.offset >= total:
                            break  # every byte is in: the upload became a video or was refused
                        offset = state.offset
                        if on_progress:
                            on_progress(offset, total)
                    answer = self._patch(url, f, offset, min(chunk_bytes, total - offset), total, on_progress)
                    offset, failures = int(answer.headers["upload-offset"]), 0
                except (httpx.TransportError, StreamifyError) as exc:
                    if isinstance(exc, StreamifyError) and exc.status not in RESYNC or failures >= RESUME_ATTEMPTS:
                        raise
                    failures += 1
                    offset = None
                    time.sleep(min(2.0**failures, 30.0))
        return self.get_video(self._outcome(url, state))

    def _patch(
        self, url: str, f: BinaryIO, offset: int, size: int, total: int, on_progress: ProgressCallback | None
    ) -> httpx.Response:
        f.seek(offset)

        def chunk() -> Iterator[bytes]:
            sent = 0
            while sent < size:
                data = f.read(min(READ_BYTES, size - sent))
                if not data:
                    raise OSError(f"{f.name} shrank while it was being uploaded")
                sent += len(data)
                yield data
                if on_progress:
                    on_progress(offset + sent, total)

        headers = {
            **TUS_HEADERS,
            "Content-Type": OFFSET_STREAM,
            "Upload-Offset": str(offset),
            "Content-Length": str(size),
        }
        return self.request("PATCH", url, headers=headers, content=chunk())

    def upload_state(self, url: str) -> UploadRead:
        """What became of a resumable upload (its Location): receiving at `offset`, ingesting, done, refused."""
        return self._model(UploadRead, "GET", url)

    def _outcome(self, url: str, state: UploadRead) -> uuid.UUID:
        """The video an upload whose bytes are all in became; its refusal (final: the bytes are gone) raises."""
        while state.state == UploadState.ingesting:  # the completing PATCH is still sniffing, probing, storing
            time.sleep(1.0)
            state = self.upload_state(url)
        if state.state != UploadState.done or state.video_id is None:
            raise StreamifyError(state.error_status or 409, state.error or f"the upload is {state.state}")
        return state.video_id

    def get_video(self, video_id: uuid.UUID | str) -> VideoRead:
        return self._model(VideoRead, "GET", f"{API}/videos/{_segment(video_id)}")

    def list_videos(self, q: str | None = None, *, limit: int = 20, offset: int = 0) -> VideoPage:
        """The public index: public, ready videos of every creator, newest first (`limit` ≤ 100)."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset, **({"q": q} if q else {})}
        return self._model(VideoPage, "GET", f"{API}/videos", params=params)

    def my_videos(
        self, q: str | None = None, *, status: VideoStatus | str | None = None, limit: int = 20, offset: int = 0
    ) -> VideoPage:
        """This account's own videos in every state and visibility, newest first."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        params |= {key: str(value) for key, value in {"q": q, "status": status}.items() if value}
        return self._model(VideoPage, "GET", f"{API}/me/videos", params=params)

    def update_video(
        self,
        video_id: uuid.UUID | str,
        *,
        title: str | None = None,
        description: str | None = None,
        visibility: Visibility | VisibilityName | None = None,
    ) -> VideoRead:
        """Change what is given (VideoUpdate); the server checks it (a blank title is a 422 StreamifyError)."""
        changes = {"title": title, "description": description, "visibility": visibility}
        body = {key: str(value) for key, value in changes.items() if value is not None}
        return self._model(VideoRead, "PATCH", f"{API}/videos/{_segment(video_id)}", json=body)

    def delete_video(self, video_id: uuid.UUID | str) -> None:
        """The video, its rows and every file of it."""
        self.request("DELETE", f"{API}/videos/{_segment(video_id)}")

    def wait_until(
        self,
        video_id: uuid.UUID | str,
        until: Until = "ready",
        *,
        timeout: float | None = 3600.0,
        interval: float = 1.0,
        on_poll: Callable[[VideoRead], None] | None = None,
    ) -> VideoRead:
        """Poll the video until `until` holds: "ready", "playable" (its start plays while the rest encodes), or a
        condition of your own. "ready" and "playable" also return once they never can (failed, cancelled): read
        `status` and `error`. An unreachable or busy server (502/503/504) is waited out; a refusal raises
        StreamifyError (404: deleted, or not yours); `timeout` seconds (None: no limit) raise TimeoutError."""
        done = _CONDITIONS[until] if isinstance(until, str) else until
        deadline = None if timeout is None else time.monotonic() + timeout
        last = "unreachable"
        while True:
            try:
                video = self.get_video(video_id)
            except (httpx.TransportError, StreamifyError) as exc:
                if isinstance(exc, StreamifyError) and exc.status not in TRANSIENT:
                    raise
                last = f"unreachable ({exc})"
            else:
                if on_poll:
                    on_poll(video)
                if done(video):
                    return video
                last = video.status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"video {video_id} is still {last} after {timeout:g} s")
            time.sleep(interval)

    # Playback (owner): links that play any visibility, private included

    def playback_link(self, video_id: uuid.UUID | str, ttl_seconds: int | None = None) -> PlaybackTokenRead:
        """An expiring playback link (`playback_url` plays in any HLS player, `watch_url` opens the page)."""
        body = {"ttl_seconds": ttl_seconds} if ttl_seconds is not None else None
        return self._model(PlaybackTokenRead, "POST", f"{API}/videos/{_segment(video_id)}/playback-token", json=body)

    def revoke_playback_links(self, video_id: uuid.UUID | str) -> None:
        """Every playback link of the video handed out so far stops working; new ones work."""
        self.request("POST", f"{API}/videos/{_segment(video_id)}/playback-token/revoke")

    # Captions

    def list_captions(self, video_id: uuid.UUID | str) -> list[CaptionRead]:
        return self._models(CaptionRead, "GET", f"{API}/videos/{_segment(video_id)}/captions")

    def add_caption(
        self,
        video_id: uuid.UUID | str,
        path: Path | str,
        language: str,
        *,
        label: str | None = None,
        default: bool = False,
    ) -> CaptionCreated:
        """Attach (or replace) the WebVTT or SRT caption of one language (BCP 47: "en", "pt-BR")."""
        path = Path(path)
        data = {"language": language, "default": str(default).lower(), **({"label": label} if label else {})}
        with path.open("rb") as f:
            url = f"{API}/videos/{_segment(video_id)}/captions"
            return self._model(CaptionCreated, "POST", url, files={"file": (path.name, f)}, data=data)

    def delete_caption(self, video_id: uuid.UUID | str, language: str) -> None:
        self.request("DELETE", f"{API}/videos/{_segment(video_id)}/captions/{_segment(language)}")

    # Downloads and imports

    def set_downloads(self, video_id: uuid.UUID | str, enabled: bool, rendition: str | None = None) -> VideoRead:
        """Turn the MP4 (of `rendition`, default the top H.264 rung) and M4A downloads on or off; `downloads`
        on the video lists them, made once it is ready."""
        body = {"downloads": {"enabled": enabled, "rendition": rendition}}
        return self._model(VideoRead, "PATCH", f"{API}/videos/{_segment(video_id)}", json=body)

    def import_video(
        self,
        url: str,
        *,
        title: str | None = None,
        description: str = "",
        visibility: Visibility | VisibilityName = "public",
    ) -> VideoRead:
        """A worker fetches `url` (public addresses only) and it goes on as an upload; a refused URL is a 422."""
        body = {"url": url, "description": description, "visibility": str(visibility)}
        if title is not None:
            body["title"] = title
        return self._model(VideoRead, "POST", f"{API}/videos/import", json=body)

    def get_import(self, video_id: uuid.UUID | str) -> ImportRead:
        """Where an imported video came from and what became of its download (owner only)."""
        return self._model(ImportRead, "GET", f"{API}/videos/{_segment(video_id)}/import")

    # Further areas add their methods here, each over `self.request` and returning its route's model from
    # schemas/api.py.


def _ready(video: VideoRead) -> bool:
    return video.status in FINAL


def _playable(video: VideoRead) -> bool:
    return video.playable or video.status in FINAL


_CONDITIONS: dict[str, Callable[[VideoRead], bool]] = {"ready": _ready, "playable": _playable}

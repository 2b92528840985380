"""Download a user-given URL to a local file, within the limits an import has; nothing else ever reads the URL.

Every connection goes through core.egress (each hop and each DNS answer is checked when the socket opens), the
body is streamed to disk as it comes (never held in memory), and the download is given up as soon as it is over
the size limit, slower than the rate floor over the last window, or longer than the total time. What comes
back is a local file: ffmpeg only ever opens that, after core.source_check.check_source.

`RateWindow` is the pure part (times in, verdicts out), tested without a network.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.egress import egress_client, refused, run_async
from core.errors import too_large_detail
from core.settings import Settings
from schemas.tables import FailureKind

log = logging.getLogger(__name__)
MAX_REDIRECTS = 5
CONNECT_SECONDS = 30.0


class FetchFailed(Exception):
    """The download was given up; `message` is said to the creator as written (never an address or a trace)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class FetchStopped(Exception):
    """The caller asked to stop (the attempt lost its import): nothing to say to anyone."""


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout_seconds: float
    min_bytes_per_second: int  # 0: no floor
    window_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "FetchLimits":
        return cls(
            max_bytes=settings.max_upload_bytes,
            timeout_seconds=settings.import_timeout_seconds,
            min_bytes_per_second=settings.import_min_bytes_per_second,
            window_seconds=settings.import_rate_window_seconds,
        )


def too_large(limits: FetchLimits) -> FetchFailed:
    return FetchFailed(FailureKind.fetch_too_large, too_large_detail(limits.max_bytes))


def too_slow(limits: FetchLimits) -> FetchFailed:
    return FetchFailed(
        FailureKind.fetch_too_slow,
        f"the download was too slow: under {limits.min_bytes_per_second} bytes/s over {limits.window_seconds:g} s",
    )


def too_long(limits: FetchLimits) -> FetchFailed:
    return FetchFailed(FailureKind.fetch_timeout, f"the download took longer than {limits.timeout_seconds:g} s")


def declared_too_large(content_length: str | None, limits: FetchLimits) -> bool:
    """Whether the server said up front that the file is over the limit (an unreadable length says nothing)."""
    try:
        return content_length is not None and int(content_length) > limits.max_bytes
    except ValueError:
        return False


class RateWindow:
    """Bytes received so far, at the times they came; `check` raises FetchFailed once the download is over the
    size limit, past the total time, or (once a whole window has passed) received less than the floor's worth
    over the last window. A stall with no bytes at all is the reader's timeout (`window_seconds`)."""

    def __init__(self, limits: FetchLimits, start: float) -> None:
        self.limits = limits
        self.start = start
        self.samples: deque[tuple[float, int]] = deque([(start, 0)])

    def check(self, now: float, received: int) -> None:
        limits = self.limits
        if received > limits.max_bytes:
            raise too_large(limits)
        if now - self.start > limits.timeout_seconds:
            raise too_long(limits)
        self.samples.append((now, received))
        horizon = now - limits.window_seconds
        while len(self.samples) > 1 and self.samples[1][0] <= horizon:
            self.samples.popleft()  # keep the last sample at or before the horizon: the window's baseline
        since, base = self.samples[0]
        floor = limits.min_bytes_per_second
        if floor and since <= horizon and now > since and (received - base) / (now - since) < floor:
            raise too_slow(limits)


@dataclass
class Progress:
    """What the download has received, read by the attempt's heartbeat thread."""

    received: int = 0
    total: int | None = None


def fetch(url: str, dest: Path, settings: Settings, progress: Progress, stop: Callable[[], bool]) -> int:
    """Download `url` to `dest` (created or truncated); returns the bytes written. Raises FetchFailed saying why
    it was given up, or FetchStopped when `stop()` turned true. `dest` may hold a partial file after either: the
    caller owns it."""
    limits = FetchLimits.from_settings(settings)
    try:
        return run_async(_fetch_within(url, dest, settings, limits, progress, stop))
    except (FetchFailed, FetchStopped):
        raise
    except TimeoutError as exc:  # asyncio.timeout: the whole download, connecting included
        raise too_long(limits) from exc
    except httpx.ReadTimeout as exc:  # nothing at all for a whole window
        raise too_slow(limits) from exc
    except Exception as exc:
        failure = _failure(exc)
        if failure is None:  # not the download's: a full scratch disk, our bug (the worker classifies it)
            raise
        raise failure from exc


async def _fetch_within(
    url: str, dest: Path, settings: Settings, limits: FetchLimits, progress: Progress, stop: Callable[[], bool]
) -> int:
    async with asyncio.timeout(limits.timeout_seconds):
        return await _fetch(url, dest, settings, limits, progress, stop)


async def _fetch(
    url: str, dest: Path, settings: Settings, limits: FetchLimits, progress: Progress, stop: Callable[[], bool]
) -> int:
    timeout = httpx.Timeout(
        connect=min(CONNECT_SECONDS, limits.timeout_seconds),
        read=limits.window_seconds,
        write=CONNECT_SECONDS,
        pool=CONNECT_SECONDS,
    )
    client = egress_client(settings, timeout=timeout, max_redirects=MAX_REDIRECTS)
    # identity: the bytes as stored, so the size limit counts what lands on disk (aiter_raw never inflates).
    request = client.stream("GET", url, headers={"Accept-Encoding": "identity"})
    async with client, request as response:
        if not response.is_success:
            phrase = f" {response.reason_phrase}" if response.reason_phrase else ""
            raise FetchFailed(FailureKind.fetch_failed, f"the server answered {response.status_code}{phrase}")
        length = response.headers.get("content-length")
        if declared_too_large(length, limits):
            raise too_large(limits)
        progress.total = int(length) if length and length.isdigit() else None
        window = RateWindow(limits, time.monotonic())
        received = 0
        with dest.open("wb") as out:
            async for chunk in response.aiter_raw():  # as the network gives it: a chunk size would buffer
                received += len(chunk)
                window.check(time.monotonic(), received)  # before writing: never a byte past the limit
                out.write(chunk)
                progress.received = received
                if stop():
                    raise FetchStopped
        return received


def _failure(exc: Exception) -> FetchFailed | None:
    """A fixed sentence per kind of download failure (None: not one): the creator named the server, but the
    exception's words may carry addresses it resolved to (logged for operators)."""
    blocked = refused(exc)
    if blocked is not None:
        return FetchFailed(FailureKind.fetch_blocked, f"refused: {blocked.message}")
    log.info("import download failed: %r", exc)
    if isinstance(exc, httpx.TooManyRedirects):
        return FetchFailed(FailureKind.fetch_failed, f"more than {MAX_REDIRECTS} redirects")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return FetchFailed(FailureKind.fetch_failed, "redirected to a URL that is not http:// or https://")
    if isinstance(exc, httpx.ConnectTimeout):
        return FetchFailed(FailureKind.fetch_failed, "the server did not answer")
    if isinstance(exc, httpx.ConnectError):
        return FetchFailed(FailureKind.fetch_failed, "could not connect to the server")
    if isinstance(exc, httpx.HTTPError):
        return FetchFailed(FailureKind.fetch_failed, "the connection to the server failed during the download")
    return None

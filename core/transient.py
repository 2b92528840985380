"""Which failures are worth another try: a store, database or disk that may be back in a minute.

A job that meets one is put back in the queue with a growing delay (core.jobqueue.retry_later) instead of
failing for good; after settings.transient_retries it fails with the kind returned here. The classification is by
exception type, never by message text.
"""

import errno

from schemas.tables import FailureKind

RETRY_MAX_SECONDS = 300.0  # with the default base of 10 s: 10, 30, 90, 270, 300 s (about 12 minutes in all)

# What a creator is told: never a host, a port or a stack trace (operators find the detail in the job's log).
PUBLIC_REASONS = {
    FailureKind.unavailable: "storage or database unavailable: the encode was retried and gave up; retry later",
    FailureKind.disk_full: "the encoding server ran out of disk space: the encode was retried and gave up",
    FailureKind.internal: "internal error while encoding; an operator can see the details",
}


def transient_kind(exc: BaseException) -> FailureKind | None:
    """The kind of a failure that may pass on its own, or None when trying again would fail the same way."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return FailureKind.disk_full
        if _is_unavailable(e):
            return FailureKind.unavailable
    return None


def retry_delay(failures_so_far: int, base_seconds: float) -> float:
    """Seconds to wait before the next try, after `failures_so_far` transient failures (>= 1)."""
    return min(base_seconds * 3 ** max(failures_so_far - 1, 0), RETRY_MAX_SECONDS)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def _is_unavailable(e: BaseException) -> bool:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(e, ServiceRequestError | ServiceResponseError | ConnectionError | TimeoutError):
        return True
    if isinstance(e, HttpResponseError):  # 408, 429 and 5xx: the store is overloaded or down, not refusing us
        return e.status_code is not None and (e.status_code in (408, 429) or e.status_code >= 500)
    if isinstance(e, OperationalError):
        return True
    return isinstance(e, DBAPIError) and bool(e.connection_invalidated)

"""Refusals in the platform's own words: what was refused and why, never how HTTP says it.

Intake, storage and media code raise `Refused` with a `Refusal` reason; the API turns the reason into a status
(api/errors.py), the CLI prints the detail, and a worker that finds the source refused records its
`FailureKind` on the job. Nothing below the API knows HTTP.
"""

from enum import StrEnum

from schemas.tables import FailureKind


class Refusal(StrEnum):
    malformed = "malformed"  # the request itself is not well-formed (a protocol header or field)
    invalid = "invalid"  # well-formed, but a value is not acceptable
    unsupported_media = "unsupported_media"  # not a kind of file Streamify takes
    too_large = "too_large"  # the request's bytes
    over_limit = "over_limit"  # a source over a media limit (core.media_limits): pixels, streams, duration, rates
    not_found = "not_found"  # or someone else's: the same answer
    gone = "gone"  # it was there: expired or refused
    conflict = "conflict"  # not in this state
    busy = "busy"  # another request holds it: retry
    too_many = "too_many"  # a per-creator quota is full
    throttled = "throttled"  # too many attempts lately: retry after `retry_after` seconds
    out_of_space = "out_of_space"
    unavailable = "unavailable"  # a backing service failed: try again later


class Refused(Exception):
    """`detail` is said to the caller as written. `kind` is set on refusals of a source's content (sniff,
    probe): a worker probing the source again records it as the job's failure kind. `retry_after` (seconds) is
    set when the same request will work later (throttled, busy)."""

    def __init__(
        self, reason: Refusal, detail: str, *, kind: FailureKind | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.kind = kind
        self.retry_after = retry_after


def too_large_detail(limit: int) -> str:
    return f"file too large: the limit is {limit} bytes"

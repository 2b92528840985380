"""Refusals that carry the HTTP status and the message a creator sees."""

from schemas.tables import FailureKind


class IngestError(Exception):
    """`kind` is set on refusals of a source's content (ingest.sniff, ingest.probe): a worker probing the
    source again records it as the job's failure kind."""

    def __init__(self, status: int, detail: str, *, kind: FailureKind | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind


def too_large_detail(limit: int) -> str:
    return f"file too large: the limit is {limit} bytes"

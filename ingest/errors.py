"""Refusals that carry the HTTP status and the message a creator sees."""


class IngestError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def too_large_detail(limit: int) -> str:
    return f"file too large: the limit is {limit} bytes"

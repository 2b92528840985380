"""Time helpers shared by every role."""

from datetime import UTC, datetime
from typing import overload


@overload
def aware(ts: datetime) -> datetime: ...
@overload
def aware(ts: None) -> None: ...
def aware(ts: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; they were written in UTC (PostgreSQL's come back aware)."""
    return ts if ts is None or ts.tzinfo else ts.replace(tzinfo=UTC)

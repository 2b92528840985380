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


def clock(seconds: float) -> str:
    """0:40, 1:10, 1:02:03: how a player's time display writes it."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def time_span(start: float, end: float | None) -> str:
    """'0:40–1:10', or '9:30–end' for a last range whose end is open: a range in a reason creators read."""
    return f"{clock(start)}–{clock(end) if end is not None else 'end'}"

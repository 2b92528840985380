"""Sign-in throttling: failed attempts per account and per client address, counted in the database.

The database, not process memory or Redis: every API node must see the same count (a guesser spreads its
attempts over the nodes behind nginx), and the embedded mode has no Redis. Over `login_max_failures_per_*`
failures within `login_failure_window_seconds`, a sign-in is refused before its password is hashed, with the
seconds until the oldest counted failure leaves the window. A success clears the account's failures (not the
address's: one address guessing many accounts stays slowed down).

Keys are SHA-256 digests: the table never holds an email someone mistyped or an address in clear. An IPv6 client
is counted by its /64, which one host usually owns whole. The check and the count are not one transaction: a burst
of concurrent guesses may pass the limit by as many as run at once (bounded by core.accounts' hash slots).
"""

import hashlib
import ipaddress
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from core.accounts import normalize_email
from core.errors import Refusal, Refused
from core.settings import Settings
from core.timeutil import aware
from schemas.tables import LoginFailure


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def account_key(email: str) -> str:
    return _key("account", normalize_email(email))


def address_key(address: str | None) -> str | None:
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return _key("address", address)
    if ip.version == 6:
        return _key("address", str(ipaddress.ip_network(f"{ip}/64", strict=False)))
    return _key("address", str(ip))


def _retry_after(session: Session, key: str, limit: int, window: timedelta, now: datetime) -> int | None:
    """Seconds until `key` has fewer than `limit` failures in the window, or None if it has fewer already."""
    recent = session.exec(
        select(LoginFailure.at)
        .where(LoginFailure.key == key, col(LoginFailure.at) > now - window)
        .order_by(col(LoginFailure.at).desc())
        .limit(limit)
    ).all()
    if len(recent) < limit:
        return None
    return max(1, math.ceil((aware(recent[-1]) + window - now).total_seconds()))


def check(session: Session, settings: Settings, email: str, address: str | None) -> None:
    """Raise Refused(throttled) with `retry_after` if this account or this address has failed too often lately."""
    now = datetime.now(UTC)
    window = timedelta(seconds=settings.login_failure_window_seconds)
    waits = [
        _retry_after(session, account_key(email), settings.login_max_failures_per_account, window, now),
    ]
    if (by_address := address_key(address)) is not None:
        waits.append(_retry_after(session, by_address, settings.login_max_failures_per_address, window, now))
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        raise Refused(Refusal.throttled, f"too many failed sign-ins: try again in {wait} seconds", retry_after=wait)


def record_failure(session: Session, settings: Settings, email: str, address: str | None) -> None:
    now = datetime.now(UTC)
    keys = [k for k in (account_key(email), address_key(address)) if k is not None]
    session.add_all([LoginFailure(key=k, at=now) for k in keys])
    cutoff = now - timedelta(seconds=settings.login_failure_window_seconds)
    session.execute(delete(LoginFailure).where(col(LoginFailure.at) < cutoff))  # what no window counts any more
    session.commit()


def record_success(session: Session, email: str) -> None:
    session.execute(delete(LoginFailure).where(col(LoginFailure.key) == account_key(email)))
    session.commit()

"""Users, passwords, sessions and API tokens, shared by the API and the CLI.

Passwords are hashed with Argon2 (pwdlib). Sessions and API tokens are random secrets of which only a
SHA-256 is stored, so a copy of the database lets nobody sign in. Both expire (`expires_at`); a password change
revokes every one of the account's sessions and tokens.

A new password must be PASSWORD_MIN to PASSWORD_MAX characters and not one of the 30,000 most common passwords
(the `passwords` frequency list zxcvbn ships, from Mark Burnett's 10 million password dump: the list Dropbox's
zxcvbn was built on), compared case-insensitively; nor the account's own email.

Argon2 takes 64 MiB and ~0.3 s of CPU per hash: `password_hashing` bounds how many run at once in this process
(a sign-in storm would otherwise take a GiB), the others wait their turn for a while, then are told to retry.
Sign-in failures are counted in the database (every API node sees them) per account and per client address;
over the limit, sign-ins are refused with a retry delay before any password is checked (core.login_throttle).
"""

import hashlib
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache

from pwdlib import PasswordHash
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from core.db import affected
from core.errors import Refusal, Refused
from core.timeutil import aware as _aware
from schemas.tables import AuthToken, TokenKind, User, utcnow

PASSWORD_MIN = 10
PASSWORD_MAX = 128
SESSION_COOKIE = "streamify_session"  # set by the API, named in the nginx config (its micro-cache bypass)
SESSION_TTL = timedelta(days=30)  # the settings' defaults, for callers without settings (tests, scripts)
API_TOKEN_TTL = timedelta(days=90)
HASH_BUSY_RETRY_SECONDS = 2
_TOKEN_PREFIX = {TokenKind.session: "sfs_", TokenKind.api: "sfy_"}
_hasher = PasswordHash.recommended()


class AccountError(Refused):
    """A refused account change: `reason` says which (conflict: the email is taken; invalid: the password)."""


class _HashSlots:
    """How many Argon2 hashes run at once in this process: memory is per process, so the bound is too."""

    def __init__(self, concurrency: int, wait_seconds: float) -> None:
        self.semaphore = threading.BoundedSemaphore(concurrency)
        self.wait_seconds = wait_seconds


_slots = _HashSlots(2, 10.0)


def limit_password_hashing(concurrency: int, wait_seconds: float) -> None:
    """Called once per process by the API with its settings (password_hash_concurrency, _wait_seconds)."""
    global _slots
    _slots = _HashSlots(concurrency, wait_seconds)


@contextmanager
def _hash_slot() -> Iterator[None]:
    slots = _slots
    if not slots.semaphore.acquire(timeout=slots.wait_seconds):
        raise Refused(
            Refusal.unavailable,
            "too many sign-ins at once: try again in a few seconds",
            retry_after=HASH_BUSY_RETRY_SECONDS,
        )
    try:
        yield
    finally:
        slots.semaphore.release()


def _verify(password: str, password_hash: str) -> tuple[bool, str | None]:
    with _hash_slot():
        return _hasher.verify_and_update(password, password_hash)


@cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a wrong email costs as long as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))


@cache
def _common_passwords() -> frozenset[str]:
    # 30,000 entries, loaded on the first password set. zxcvbn ships no type hints (and no stub package is pinned).
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(FREQUENCY_LISTS["passwords"])


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_password(password: str, email: str = "") -> None:
    """The password policy; raises AccountError(invalid) naming what is wrong."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccountError(Refusal.invalid, f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    folded = password.strip().lower()
    if folded in _common_passwords():
        raise AccountError(Refusal.invalid, "this password is one of the most common passwords: choose another")
    if email and folded in {normalize_email(email), normalize_email(email).split("@")[0]}:
        raise AccountError(Refusal.invalid, "the password must not be the email address")


def hash_password(password: str, email: str = "") -> str:
    check_password(password, email)
    with _hash_slot():
        return _hasher.hash(password)


def create_user(
    session: Session, email: str, password: str, display_name: str = "", *, is_operator: bool = False
) -> User:
    email = normalize_email(email)
    if session.exec(select(User).where(User.email == email)).first() is not None:
        raise AccountError(Refusal.conflict, "an account with this email already exists")
    user = User(
        email=email,
        display_name=(display_name.strip() or email.split("@")[0])[:100],
        password_hash=hash_password(password, email),
        is_operator=is_operator,
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.exec(select(User).where(User.email == normalize_email(email))).first()
    if user is None or not user.password_hash.startswith("$"):
        _verify(password, _dummy_hash())
        return None
    valid, new_hash = _verify(password, user.password_hash)
    if not valid:
        return None
    if new_hash:  # parameters got stronger since this hash was made
        user.password_hash = new_hash
        session.add(user)
        session.commit()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """A new password signs the account out everywhere: every session and API token is revoked."""
    user.password_hash = hash_password(password, user.email)
    session.add(user)
    session.execute(delete(AuthToken).where(col(AuthToken.user_id) == user.id))
    session.commit()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mint_token(
    session: Session, user: User, kind: TokenKind, name: str = "", ttl: timedelta | None = None
) -> tuple[str, AuthToken]:
    """Returns the secret (shown once, never stored) and its row; it expires after `ttl` (default per kind)."""
    secret = _TOKEN_PREFIX[kind] + secrets.token_urlsafe(32)
    ttl = ttl or (SESSION_TTL if kind == TokenKind.session else API_TOKEN_TTL)
    row = AuthToken(
        user_id=user.id,
        kind=kind,
        name=name[:100],
        token_hash=_digest(secret),
        prefix=secret[:12],
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return secret, row


def user_for_token(session: Session, secret: str, kind: TokenKind) -> User | None:
    if not secret.startswith(_TOKEN_PREFIX[kind]):
        return None
    row = session.exec(select(AuthToken).where(AuthToken.token_hash == _digest(secret))).first()
    if row is None or row.kind != kind:
        return None
    now = datetime.now(UTC)
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        return None
    if row.last_used_at is None or now - _aware(row.last_used_at) > timedelta(minutes=5):
        session.execute(update(AuthToken).where(col(AuthToken.id) == row.id).values(last_used_at=now))
        session.commit()
    return session.get(User, row.user_id)


def revoke_token(session: Session, secret: str) -> None:
    session.execute(delete(AuthToken).where(col(AuthToken.token_hash) == _digest(secret)))
    session.commit()


def delete_api_token(session: Session, user: User, token_id: uuid.UUID) -> bool:
    result = session.execute(
        delete(AuthToken).where(
            col(AuthToken.id) == token_id, col(AuthToken.user_id) == user.id, col(AuthToken.kind) == TokenKind.api
        )
    )
    session.commit()
    return bool(affected(result))

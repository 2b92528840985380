"""Users, passwords, sessions and API tokens, shared by the API and the CLI.

Passwords are hashed with Argon2 (pwdlib). Sessions and API tokens are random secrets of which only a
SHA-256 is stored, so a copy of the database lets nobody sign in.
"""

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from pwdlib import PasswordHash
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from core.db import affected
from core.timeutil import aware as _aware
from schemas.tables import AuthToken, TokenKind, User, utcnow

PASSWORD_MIN = 8
PASSWORD_MAX = 128
SESSION_COOKIE = "streamify_session"  # set by the API, named in the nginx config (its micro-cache bypass)
SESSION_TTL = timedelta(days=30)
_TOKEN_PREFIX = {TokenKind.session: "sfs_", TokenKind.api: "sfy_"}
_hasher = PasswordHash.recommended()
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    pass


def normalize_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccountError(f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    return _hasher.hash(password)


def create_user(
    session: Session, email: str, password: str, display_name: str = "", *, is_operator: bool = False
) -> User:
    email = normalize_email(email)
    if session.exec(select(User).where(User.email == email)).first() is not None:
        raise AccountError("an account with this email already exists")
    user = User(
        email=email,
        display_name=(display_name.strip() or email.split("@")[0])[:100],
        password_hash=hash_password(password),
        is_operator=is_operator,
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.exec(select(User).where(User.email == normalize_email(email))).first()
    if user is None or not user.password_hash.startswith("$"):
        _hasher.verify(password, _DUMMY_HASH)
        return None
    valid, new_hash = _hasher.verify_and_update(password, user.password_hash)
    if not valid:
        return None
    if new_hash:  # parameters got stronger since this hash was made
        user.password_hash = new_hash
        session.add(user)
        session.commit()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    session.add(user)
    session.execute(
        delete(AuthToken).where(col(AuthToken.user_id) == user.id, col(AuthToken.kind) == TokenKind.session)
    )
    session.commit()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mint_token(session: Session, user: User, kind: TokenKind, name: str = "") -> tuple[str, AuthToken]:
    """Returns the secret (shown once, never stored) and its row."""
    secret = _TOKEN_PREFIX[kind] + secrets.token_urlsafe(32)
    row = AuthToken(
        user_id=user.id,
        kind=kind,
        name=name[:100],
        token_hash=_digest(secret),
        prefix=secret[:12],
        expires_at=utcnow() + SESSION_TTL if kind == TokenKind.session else None,
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

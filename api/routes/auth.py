"""Sign up, sign in and out, password change, the caller's account, and API tokens for the CLI and scripts.

Sign-ins are throttled per account and per client address (core.login_throttle: 429 with Retry-After). The
address is the one uvicorn resolved: the peer, or the X-Forwarded-For entry left by a proxy it trusts
(`--forwarded-allow-ips`, 127.0.0.1 by default: nginx on the same host).
"""

import uuid
from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response
from sqlmodel import col, select

from api.deps import SessionDep, SettingsDep, UserDep
from api.errors import Responses
from core import login_throttle
from core.accounts import (
    SESSION_COOKIE,
    authenticate,
    create_user,
    delete_api_token,
    mint_token,
    revoke_token,
    set_password,
)
from core.settings import Settings
from core.timeutil import aware
from schemas.api import (
    PasswordChange,
    Problem,
    SignIn,
    SignUp,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserRead,
)
from schemas.tables import AuthToken, TokenKind, User

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
THROTTLED: Responses = {429: {"model": Problem}, 503: {"model": Problem}}


def _user_read(user: User) -> UserRead:
    return UserRead(id=user.id, email=user.email, display_name=user.display_name, is_operator=user.is_operator)


def _client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _start_session(response: Response, request: Request, session: SessionDep, settings: Settings, user: User) -> None:
    ttl = timedelta(seconds=settings.session_ttl_seconds)
    user_agent = request.headers.get("user-agent", "")[:100]
    secret, _ = mint_token(session, user, TokenKind.session, name=user_agent, ttl=ttl)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=settings.session_ttl_seconds,
        httponly=True,  # page scripts never see it
        samesite="lax",  # other sites' forms and fetches do not carry it
        # Behind a proxy that terminates TLS the request reaches us as http: the public URL says what browsers use.
        secure=(settings.public_url or "").startswith("https://") or request.url.scheme == "https",
        path="/",
    )


@router.post(
    "/signup", status_code=201, response_model=UserRead, responses={409: {"model": Problem}, 422: {"model": Problem}}
)
def sign_up(body: SignUp, request: Request, response: Response, session: SessionDep, settings: SettingsDep) -> UserRead:
    # The first account of an install runs it: it becomes the operator.
    first = session.exec(select(User.id).limit(1)).first() is None
    user = create_user(session, body.email, body.password, body.display_name, is_operator=first)
    _start_session(response, request, session, settings, user)
    return _user_read(user)


def _check_password(session: SessionDep, settings: Settings, request: Request, email: str, password: str) -> User:
    """The account, if the password is right and neither it nor the caller's address is throttled."""
    address = _client_address(request)
    login_throttle.check(session, settings, email, address)
    user = authenticate(session, email, password)
    if user is None:
        login_throttle.record_failure(session, settings, email, address)
        raise HTTPException(401, "wrong email or password")
    login_throttle.record_success(session, email)
    return user


@router.post("/login", response_model=UserRead, responses={401: {"model": Problem}, **THROTTLED})
def sign_in(body: SignIn, request: Request, response: Response, session: SessionDep, settings: SettingsDep) -> UserRead:
    user = _check_password(session, settings, request, body.email, body.password)
    _start_session(response, request, session, settings, user)
    return _user_read(user)


@router.post("/password", status_code=204, responses={401: {"model": Problem}, 422: {"model": Problem}, **THROTTLED})
def change_password(
    body: PasswordChange,
    user: UserDep,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> None:
    """Signs the account out everywhere: every session and API token is revoked; this browser gets a new session."""
    user = _check_password(session, settings, request, user.email, body.current_password)
    set_password(session, user, body.new_password)
    _start_session(response, request, session, settings, user)


@router.post("/logout", status_code=204)
def sign_out(request: Request, response: Response, session: SessionDep) -> None:
    if secret := request.cookies.get(SESSION_COOKIE):
        revoke_token(session, secret)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=UserRead, responses={401: {"model": Problem}})
def me(user: UserDep) -> UserRead:
    return _user_read(user)


def _token_read(row: AuthToken) -> dict:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "created_at": aware(row.created_at),
            "last_used_at": aware(row.last_used_at), "expires_at": aware(row.expires_at)}  # fmt: skip


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, user: UserDep, session: SessionDep, settings: SettingsDep) -> TokenCreated:
    ttl = timedelta(days=settings.api_token_ttl_days)
    secret, row = mint_token(session, user, TokenKind.api, name=body.name, ttl=ttl)
    return TokenCreated(token=secret, **_token_read(row))


@router.get("/tokens", response_model=list[TokenRead])
def list_tokens(user: UserDep, session: SessionDep) -> list[TokenRead]:
    rows = session.exec(
        select(AuthToken)
        .where(AuthToken.user_id == user.id, AuthToken.kind == TokenKind.api)
        .order_by(col(AuthToken.created_at).desc())
    )
    return [TokenRead(**_token_read(r)) for r in rows]


@router.delete("/tokens/{token_id}", status_code=204, responses={404: {"model": Problem}})
def revoke(token_id: uuid.UUID, user: UserDep, session: SessionDep) -> None:
    if not delete_api_token(session, user, token_id):
        raise HTTPException(404, f"token {token_id} not found")

"""Sign up, sign in and out, the caller's account, and API tokens for the CLI and scripts."""

import uuid

from fastapi import APIRouter, HTTPException, Request, Response
from sqlmodel import col, select

from api.deps import SessionDep, UserDep
from core.accounts import (
    SESSION_COOKIE,
    SESSION_TTL,
    AccountError,
    authenticate,
    create_user,
    delete_api_token,
    mint_token,
    revoke_token,
)
from schemas.api import Problem, SignIn, SignUp, TokenCreate, TokenCreated, TokenRead, UserRead
from schemas.tables import AuthToken, TokenKind, User

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _user_read(user: User) -> UserRead:
    return UserRead(id=user.id, email=user.email, display_name=user.display_name, is_operator=user.is_operator)


def _start_session(response: Response, request: Request, session: SessionDep, user: User) -> None:
    secret, _ = mint_token(session, user, TokenKind.session, name=request.headers.get("user-agent", "")[:100])
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,  # page scripts never see it
        samesite="lax",  # other sites' forms and fetches do not carry it
        secure=request.url.scheme == "https",
        path="/",
    )


@router.post("/signup", status_code=201, response_model=UserRead, responses={409: {"model": Problem}})
def sign_up(body: SignUp, request: Request, response: Response, session: SessionDep) -> UserRead:
    try:
        # The first account of an install runs it: it becomes the operator.
        first = session.exec(select(User.id).limit(1)).first() is None
        user = create_user(session, body.email, body.password, body.display_name, is_operator=first)
    except AccountError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from exc
    _start_session(response, request, session, user)
    return _user_read(user)


@router.post("/login", response_model=UserRead, responses={401: {"model": Problem}})
def sign_in(body: SignIn, request: Request, response: Response, session: SessionDep) -> UserRead:
    user = authenticate(session, body.email, body.password)
    if user is None:
        raise HTTPException(401, "wrong email or password")
    _start_session(response, request, session, user)
    return _user_read(user)


@router.post("/logout", status_code=204)
def sign_out(request: Request, response: Response, session: SessionDep) -> None:
    if secret := request.cookies.get(SESSION_COOKIE):
        revoke_token(session, secret)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=UserRead, responses={401: {"model": Problem}})
def me(user: UserDep) -> UserRead:
    return _user_read(user)


def _token_read(row: AuthToken) -> dict:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "created_at": row.created_at,
            "last_used_at": row.last_used_at}  # fmt: skip


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, user: UserDep, session: SessionDep) -> TokenCreated:
    secret, row = mint_token(session, user, TokenKind.api, name=body.name)
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

"""Dependencies injected into routes with Depends."""

import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session

from core.accounts import user_for_token
from core.blobs import Stores, make_stores
from core.db import get_session
from core.settings import Settings, get_settings
from schemas.tables import TokenKind, User, Video, Visibility

SESSION_COOKIE = "streamify_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@lru_cache
def _stores(settings_json: str) -> Stores:
    return make_stores(Settings.model_validate_json(settings_json))


def get_stores(settings: Annotated[Settings, Depends(get_settings)]) -> Stores:
    """One set of store clients per configuration (keeps Azure connection pools and SAS caches warm)."""
    return _stores(settings.model_dump_json(exclude={"effective_database_url", "effective_broker_url"}))


def get_enqueue() -> Callable[[uuid.UUID], None]:
    from workers.celery_app import enqueue_transcode

    return enqueue_transcode


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
StoresDep = Annotated[Stores, Depends(get_stores)]
EnqueueDep = Annotated[Callable[[uuid.UUID], None], Depends(get_enqueue)]


def _same_site(request: Request) -> bool:
    """A cookie-signed-in browser only changes things from our own pages (CSRF), on top of SameSite=Lax."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("host")


def get_current_user(request: Request, session: SessionDep) -> User | None:
    """The caller, from a Bearer API token or the session cookie; None for an anonymous viewer."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "malformed Authorization header: use 'Bearer <token>'")
        user = user_for_token(session, token.strip(), TokenKind.api)
        if user is None:
            raise HTTPException(401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"})
        return user
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    if request.method not in SAFE_METHODS and not _same_site(request):
        raise HTTPException(403, "cross-site request refused")
    return user_for_token(session, cookie, TokenKind.session)


MaybeUserDep = Annotated[User | None, Depends(get_current_user)]


def require_user(user: MaybeUserDep) -> User:
    if user is None:
        raise HTTPException(401, "sign in or send an API token", headers={"WWW-Authenticate": "Bearer"})
    return user


UserDep = Annotated[User, Depends(require_user)]


def require_operator(user: UserDep) -> User:
    if not user.is_operator:
        raise HTTPException(403, "operators only: ask an operator to grant the role (`streamify users operator`)")
    return user


OperatorDep = Annotated[User, Depends(require_operator)]


def _not_found(video_id: uuid.UUID) -> HTTPException:
    # The same answer whether the video does not exist or belongs to someone else: ids reveal nothing.
    return HTTPException(404, f"video {video_id} not found")


def get_video(video_id: uuid.UUID, session: SessionDep, user: MaybeUserDep) -> Video:
    """A video the caller may watch: public or unlisted, or their own."""
    video = session.get(Video, video_id)
    if video is None:
        raise _not_found(video_id)
    if video.visibility == Visibility.private and (user is None or user.id != video.owner_id):
        raise _not_found(video_id)
    return video


def get_owned_video(video_id: uuid.UUID, session: SessionDep, user: UserDep) -> Video:
    """A video the caller may change: their own."""
    video = session.get(Video, video_id)
    if video is None or video.owner_id != user.id:
        raise _not_found(video_id)
    return video


VideoDep = Annotated[Video, Depends(get_video)]
OwnedVideoDep = Annotated[Video, Depends(get_owned_video)]

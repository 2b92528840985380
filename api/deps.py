"""Dependencies injected into routes with Depends."""

import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from sqlmodel import Session

from api.access import Playback, Signer
from core.accounts import SESSION_COOKIE, user_for_token
from core.blobs import Stores
from core.playback_tokens import TOKEN_PARAM, TokenRefused
from core.settings import Settings
from core.webhook_outbox import ring as ring_webhooks
from schemas.tables import TokenKind, User, Video

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Everything a request needs comes from the app it reached (api.app.create_app puts it on app.state), never
# from the environment: two apps with different settings in one process each use only their own.
def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_stores(request: Request) -> Stores:
    return request.app.state.stores


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


def get_enqueue(request: Request) -> Callable[[uuid.UUID], None]:
    return request.app.state.broker.enqueue


def get_webhook_bell(request: Request) -> Callable[[str], None]:
    """Rings the webhook task after a commit that queued deliveries (core.webhook_outbox)."""
    broker = request.app.state.broker
    return lambda reason: ring_webhooks(broker, reason)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
StoresDep = Annotated[Stores, Depends(get_stores)]
EnqueueDep = Annotated[Callable[[uuid.UUID], None], Depends(get_enqueue)]
WebhookBellDep = Annotated[Callable[[str], None], Depends(get_webhook_bell)]


def _same_site(request: Request) -> bool:
    """A cookie-signed-in browser only changes things from our own pages (CSRF), on top of SameSite=Lax.

    The browser's own Sec-Fetch-Site decides when sent (every current browser does): behind Front Door and
    nginx, Host is an internal name while Origin is the public one, so comparing them would refuse every
    write. `none` is a user-typed navigation. Without it, Origin must name the Host, or the X-Forwarded-Host
    the proxy passed on (a page on another site cannot set that header: it is not CORS-safelisted)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host", "").split(",")[0].strip()}
    return origin.split("://", 1)[-1] in hosts - {None, ""}


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


def require_metrics_reader(request: Request, settings: SettingsDep, session: SessionDep) -> None:
    """A Prometheus scraper with STREAMIFY_METRICS_TOKEN, or an operator (token or session): nobody else."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token
    if expected and scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), expected.encode()):
        return
    require_operator(require_user(get_current_user(request, session)))


MetricsReaderDep = Annotated[None, Depends(require_metrics_reader)]


def _not_found(video_id: uuid.UUID) -> HTTPException:
    # The same answer whether the video does not exist or belongs to someone else: ids reveal nothing.
    return HTTPException(404, f"video {video_id} not found")


def get_signer(request: Request) -> Signer:
    return request.app.state.signer


SignerDep = Annotated[Signer, Depends(get_signer)]
PlaybackToken = Annotated[
    str | None,
    Query(alias=TOKEN_PARAM, max_length=64, description="playback token of a private video (from its owner)"),
]


def _granted(video: Video, user: User | None, signer: Signer, token: str | None) -> Playback | None:
    try:
        return signer.grant(video, user, token)
    except TokenRefused as exc:  # expired, forged, or another video's: say which, the holder can do something
        raise HTTPException(403, str(exc)) from exc


def get_video(
    video_id: uuid.UUID, session: SessionDep, user: MaybeUserDep, signer: SignerDep, token: PlaybackToken = None
) -> Video:
    """A video the caller may watch: public or unlisted, their own, or a private one with a valid playback token."""
    video = session.get(Video, video_id)
    if video is None or _granted(video, user, signer, token) is None:
        raise _not_found(video_id)
    return video


def get_playback(
    video_id: uuid.UUID, session: SessionDep, user: MaybeUserDep, signer: SignerDep, token: PlaybackToken = None
) -> Playback:
    """For playlists, tracks and any other playback route: the grant whose URLs (`api_url`, `media_url`) and
    `cache_control` the response must use. A private video without a token (and not the owner's) is 404, like one
    that does not exist (README: a video someone may not see answers 404)."""
    video = session.get(Video, video_id)
    playback = None if video is None else _granted(video, user, signer, token)
    if playback is None:
        raise _not_found(video_id)
    return playback


def get_owned_video(video_id: uuid.UUID, session: SessionDep, user: UserDep) -> Video:
    """A video the caller may change: their own."""
    video = session.get(Video, video_id)
    if video is None or video.owner_id != user.id:
        raise _not_found(video_id)
    return video


VideoDep = Annotated[Video, Depends(get_video)]
PlaybackDep = Annotated[Playback, Depends(get_playback)]
OwnedVideoDep = Annotated[Video, Depends(get_owned_video)]

"""Signed playback for private videos (pure: no I/O, the clock is an argument).

Two proofs, both derived from the one playback secret:

- the playback token (`?token=` on playlist URLs) that an owner hands out: HMAC-SHA256 over the video id
  and an expiry, checked by the API for playlists and tracks;
- the segment signature (`?e=&st=` on every media URL of a private video's playlists), in the form nginx's
  `secure_link_md5 "$secure_link_expires:<video id>:<key>"` checks on its own, so no segment request needs
  the database or an API node. Its key is derived from the secret (HMAC, one way): the nginx config holds only
  that, and someone who reads it can open segments but never mint playback tokens.

A segment signature covers a video id and an expiry, not a path: it opens every file of that one video until
it expires, and nothing of any other video.
"""

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

TOKEN_PARAM = "token"  # noqa: S105 - a query parameter name
SIGNATURE_PARAM = "st"  # nginx: secure_link $arg_st,$arg_e
EXPIRES_PARAM = "e"
_TOKEN_CONTEXT = b"streamify playback token v1"
_NGINX_KEY_CONTEXT = b"streamify nginx secure_link v1"
_MAX_EXPIRES_DIGITS = 11  # unix seconds until the year 5138: longer is never one of ours
MIN_SECRET_BYTES = 32


class TokenRefused(ValueError):
    """A playback token or segment signature that does not open this video now; str() says why."""


class Expired(TokenRefused):
    def __init__(self, expires: int) -> None:
        self.expires = expires
        when = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
        super().__init__(f"playback link expired at {when}: ask the owner for a new one")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _check_secret(secret: bytes) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the playback secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def _token_mac(secret: bytes, video_id: uuid.UUID, expires: int) -> str:
    message = b"%s:%s:%d" % (_TOKEN_CONTEXT, str(video_id).encode(), expires)
    return _b64(hmac.new(_check_secret(secret), message, hashlib.sha256).digest())


def sign_token(secret: bytes, video_id: uuid.UUID, expires: int) -> str:
    """`<expires>.<mac>`: URL-safe, no padding; the video id is not in it (a token names nothing)."""
    if expires <= 0:
        raise ValueError("expiry must be a positive unix time")
    return f"{expires}.{_token_mac(secret, video_id, expires)}"


def _parse_expires(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > _MAX_EXPIRES_DIGITS:
        raise TokenRefused("playback token is malformed")
    return int(text)


def verify_token(secret: bytes, video_id: uuid.UUID, token: str, now: float) -> int:
    """The token's expiry if it opens `video_id` at `now`; TokenRefused otherwise.

    The MAC is checked before the expiry, so a forged token never learns whether its date was in range."""
    expires_text, dot, mac = token.partition(".")
    if not dot or not mac:
        raise TokenRefused("playback token is malformed")
    expires = _parse_expires(expires_text)
    if not hmac.compare_digest(mac.encode(), _token_mac(secret, video_id, expires).encode()):
        raise TokenRefused("playback token is not valid for this video")
    if expires <= now:
        raise Expired(expires)
    return expires


def nginx_key(secret: bytes) -> str:
    """The key nginx's secure_link_md5 expression holds: hex, so it is safe inside a quoted nginx string."""
    return hmac.new(_check_secret(secret), _NGINX_KEY_CONTEXT, hashlib.sha256).hexdigest()[:40]


def segment_signature(key: str, video_id: uuid.UUID, expires: int | str) -> str:
    """base64url(md5("<expires>:<video id>:<key>")): what nginx computes for `secure_link_md5` (over the
    expiry exactly as the URL spells it)."""
    digest = hashlib.md5(f"{expires}:{video_id}:{key}".encode(), usedforsecurity=False).digest()
    return _b64(digest)


def segment_query(key: str, video_id: uuid.UUID, expires: int) -> str:
    return f"{EXPIRES_PARAM}={expires}&{SIGNATURE_PARAM}={segment_signature(key, video_id, expires)}"


def verify_segment(key: str, video_id: uuid.UUID, signature: str, expires_text: str, now: float) -> int:
    """Mirror of nginx's check, for the single-process /media mount: the expiry, or TokenRefused."""
    try:
        expires = _parse_expires(expires_text)
    except TokenRefused:
        raise TokenRefused("signed media link is not valid for this video") from None
    if not hmac.compare_digest(signature.encode(), segment_signature(key, video_id, expires_text).encode()):
        raise TokenRefused("signed media link is not valid for this video")
    if expires <= now:
        raise Expired(expires)
    return expires


def expiry_after(now: float, ttl_seconds: int) -> int:
    return int(now) + int(ttl_seconds)

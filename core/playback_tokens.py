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

Early revocation: each video has a playback generation (`Video.playback_generation`, 0 until its owner first
revokes its links). Both proofs cover it, and carry it in the clear when it is not 0 (`<expires>.<gen>.<mac>`,
`&g=<gen>`), so a genuine proof of an older generation is told "revoked" rather than "forged". Bumping the
generation makes every earlier token and segment signature stop working: the API compares it on every
playlist; nginx asks a node (cached per video and generation for STREAMIFY_NGINX_ACCESS_CACHE_SECONDS).
Generation 0 signs exactly what the format signed before generations existed, so links already handed out keep
working.
"""

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

TOKEN_PARAM = "token"  # noqa: S105 - a query parameter name
SIGNATURE_PARAM = "st"  # nginx: secure_link $arg_st,$arg_e
EXPIRES_PARAM = "e"
GENERATION_PARAM = "g"  # absent for generation 0
_TOKEN_CONTEXT = b"streamify playback token v1"
_NGINX_KEY_CONTEXT = b"streamify nginx secure_link v1"
_MAX_EXPIRES_DIGITS = 11  # unix seconds until the year 5138: longer is never one of ours
_MAX_GENERATION_DIGITS = 9  # a token stays within the 64 characters the API takes (11 + 1 + 9 + 1 + 43 = 65 max)
MIN_SECRET_BYTES = 32


class TokenRefused(ValueError):
    """A playback token or segment signature that does not open this video now; str() says why."""


class Expired(TokenRefused):
    def __init__(self, expires: int) -> None:
        self.expires = expires
        when = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
        super().__init__(f"playback link expired at {when}: ask the owner for a new one")


class Revoked(TokenRefused):
    def __init__(self) -> None:
        super().__init__("playback link was revoked by the owner: ask the owner for a new one")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _check_secret(secret: bytes) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the playback secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def _token_mac(secret: bytes, video_id: uuid.UUID, expires: int, generation: int = 0) -> str:
    message = b"%s:%s:%d" % (_TOKEN_CONTEXT, str(video_id).encode(), expires)
    if generation:
        message += b":%d" % generation
    return _b64(hmac.new(_check_secret(secret), message, hashlib.sha256).digest())


def _check_generation(generation: int) -> int:
    if generation < 0 or len(str(generation)) > _MAX_GENERATION_DIGITS:
        raise ValueError(f"playback generation out of range: {generation}")
    return generation


def sign_token(secret: bytes, video_id: uuid.UUID, expires: int, generation: int = 0) -> str:
    """`<expires>.<mac>`, or `<expires>.<generation>.<mac>` once the owner revoked links: URL-safe, no padding;
    the video id is not in it (a token names nothing)."""
    if expires <= 0:
        raise ValueError("expiry must be a positive unix time")
    mac = _token_mac(secret, video_id, expires, _check_generation(generation))
    return f"{expires}.{generation}.{mac}" if generation else f"{expires}.{mac}"


def _parse_number(text: str, digits: int, what: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > digits:
        raise TokenRefused(f"{what} is malformed")
    return int(text)


def _parse_expires(text: str) -> int:
    return _parse_number(text, _MAX_EXPIRES_DIGITS, "playback token")


def verify_token(secret: bytes, video_id: uuid.UUID, token: str, now: float, generation: int = 0) -> int:
    """The token's expiry if it opens `video_id` at `now` and is of the video's current `generation`;
    TokenRefused (Expired, Revoked) otherwise.

    The MAC is checked first, so a forged token never learns whether its date or generation was current."""
    parts = token.split(".")
    if len(parts) not in (2, 3) or not all(parts):
        raise TokenRefused("playback token is malformed")
    expires = _parse_expires(parts[0])
    token_generation = _parse_number(parts[1], _MAX_GENERATION_DIGITS, "playback token") if len(parts) == 3 else 0
    if len(parts) == 3 and (token_generation == 0 or parts[1] != str(token_generation)):
        raise TokenRefused("playback token is malformed")  # one spelling per generation: 0 is never written
    if not hmac.compare_digest(parts[-1].encode(), _token_mac(secret, video_id, expires, token_generation).encode()):
        raise TokenRefused("playback token is not valid for this video")
    if token_generation != generation:
        raise Revoked()
    if expires <= now:
        raise Expired(expires)
    return expires


def nginx_key(secret: bytes) -> str:
    """The key nginx's secure_link_md5 expression holds: hex, so it is safe inside a quoted nginx string."""
    return hmac.new(_check_secret(secret), _NGINX_KEY_CONTEXT, hashlib.sha256).hexdigest()[:40]


def segment_signature(key: str, video_id: uuid.UUID, expires: int | str, generation: int | str = "") -> str:
    """base64url(md5("<expires>:<video id>[:<generation>]:<key>")): what nginx computes for `secure_link_md5`
    (over the expiry and generation exactly as the URL spells them; no generation part for generation 0)."""
    part = f":{generation}" if generation not in ("", 0) else ""
    digest = hashlib.md5(f"{expires}:{video_id}{part}:{key}".encode(), usedforsecurity=False).digest()
    return _b64(digest)


def segment_query(key: str, video_id: uuid.UUID, expires: int, generation: int = 0) -> str:
    query = f"{EXPIRES_PARAM}={expires}&{SIGNATURE_PARAM}={segment_signature(key, video_id, expires, generation)}"
    return f"{query}&{GENERATION_PARAM}={_check_generation(generation)}" if generation else query


def verify_segment(
    key: str,
    video_id: uuid.UUID,
    signature: str,
    expires_text: str,
    now: float,
    generation_text: str = "",
    generation: int = 0,
) -> int:
    """Mirror of nginx's check (and of the generation question it asks a node), for the single-process /media
    mount: the expiry, or TokenRefused (Expired, Revoked)."""
    invalid = TokenRefused("signed media link is not valid for this video")
    try:
        expires = _parse_expires(expires_text)
        signed_generation = (
            _parse_number(generation_text, _MAX_GENERATION_DIGITS, "generation") if generation_text else 0
        )
    except TokenRefused:
        raise invalid from None
    expected = segment_signature(key, video_id, expires_text, generation_text)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise invalid
    if signed_generation != generation:
        raise Revoked()
    if expires <= now:
        raise Expired(expires)
    return expires


def expiry_after(now: float, ttl_seconds: int) -> int:
    return int(now) + int(ttl_seconds)

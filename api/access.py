"""Who may play a video, and the URLs that carry the proof.

A `Playback` is one viewer's grant on one video. Public and unlisted videos need no proof: their URLs are
plain and cacheable by anyone. A private video's grant carries a playback token (from the owner, or minted for
the owner's own session) and its expiry: playlist URLs get `?token=`, media URLs get a segment signature
nginx checks by itself (`?e=&st=`; or, with players fetching straight from Azure Blob, a per-blob SAS that
ends with the token). Playback routes take a `PlaybackDep` (api/deps.py) and build every URL through it.
"""

import time
from dataclasses import dataclass, field
from urllib.parse import quote

import m3u8

from core.blobs import BlobStore
from core.media_keys import media_prefix
from core.playback_tokens import (
    TOKEN_PARAM,
    TokenRefused,
    expiry_after,
    nginx_key,
    segment_query,
    sign_token,
    verify_token,
)
from core.settings import Settings
from schemas.tables import User, Video, Visibility

PRIVATE_NO_STORE = "private, no-store"


@dataclass(frozen=True)
class Playback:
    video: Video
    media: BlobStore
    segment_key: str = field(repr=False)
    direct_sas: bool  # media URLs are the blob store's own (SAS), not nginx's /media/ or a CDN in front of it
    token: str | None = None  # None: the video needs no proof (public or unlisted)
    expires: int | None = None

    @property
    def private(self) -> bool:
        return self.token is not None

    @property
    def query(self) -> str:
        """What a playlist URL must carry: `?token=...` for a private video, nothing otherwise."""
        return f"?{TOKEN_PARAM}={quote(self.token, safe='')}" if self.token else ""

    def api_url(self, path: str = "master.m3u8") -> str:
        """A playback route of this video (playlists, tracks), with the proof it needs."""
        return f"/api/v1/videos/{self.video.id}/{path}{self.query}"

    def media_url(self, key: str) -> str:
        """A file of this video in the media store: signed, and ending with the token, when private."""
        if not key.startswith(media_prefix(self.video.id)):
            raise ValueError(f"{key!r} is not a file of video {self.video.id}")  # a signature opens one video
        if self.expires is None:
            return self.media.url_for(key)
        if self.direct_sas:
            return self.media.url_for(key, expires=self.expires)
        query = segment_query(self.segment_key, self.video.id, self.expires, self.video.playback_generation)
        return f"{self.media.url_for(key)}?{query}"

    def cache_control(self, public_max_age: int) -> str:
        """Private playlists are never kept by a shared cache (nor by the browser: they carry the token)."""
        return PRIVATE_NO_STORE if self.private else f"public, max-age={public_max_age}"


@dataclass(frozen=True)
class Signer:
    """Mints and checks playback tokens for one install (its secret, its media store)."""

    secret: bytes = field(repr=False)
    media: BlobStore
    direct_sas: bool
    ttl_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings, secret: bytes, media: BlobStore) -> "Signer":
        direct = settings.uses_azure and not settings.segment_base_url
        return cls(secret, media, direct, settings.playback_token_ttl_seconds)

    @property
    def segment_key(self) -> str:
        return nginx_key(self.secret)

    def _playback(self, video: Video, token: str | None = None, expires: int | None = None) -> Playback:
        return Playback(video, self.media, self.segment_key, self.direct_sas, token, expires)

    def mint(self, video: Video, ttl_seconds: int, now: float | None = None) -> tuple[str, int]:
        """A token for the video's current playback generation: revoking links later makes it stop working."""
        expires = expiry_after(time.time() if now is None else now, ttl_seconds)
        return sign_token(self.secret, video.id, expires, video.playback_generation), expires

    def for_token(self, video: Video, token: str, now: float | None = None) -> Playback:
        """TokenRefused (expired, revoked, forged, another video's) unless the token opens this video now."""
        now = time.time() if now is None else now
        expires = verify_token(self.secret, video.id, token, now, video.playback_generation)
        return self._playback(video, token, expires)

    def for_owner(self, video: Video) -> Playback:
        """The owner's own playback: a fresh token, so the same URLs work in any player they paste them into."""
        token, expires = self.mint(video, self.ttl_seconds)
        return self._playback(video, token, expires)

    def grant(self, video: Video, viewer: User | None, token: str | None) -> Playback | None:
        """How `viewer` may play `video`: None if it is private and they bring no proof.

        A token, when given, must be valid (TokenRefused otherwise), even for the owner: a link that is
        refused for its recipient must be refused for whoever tests it."""
        if video.visibility != Visibility.private:
            return self._playback(video)
        if token is not None:
            return self.for_token(video, token)
        if viewer is not None and viewer.id == video.owner_id:
            return self.for_owner(video)
        return None


def may_serve_unsigned(video: Video | None) -> bool:
    """Whether a media file of this video may go out without a signature (what nginx asks and caches)."""
    return video is not None and video.visibility != Visibility.private


def may_serve_signed(video: Video | None, generation: int) -> bool:
    """Whether a media file with a valid signature of `generation` may go out (nginx asks once the signature
    checked out): not if the owner revoked that generation's links since, unless the video is no longer private
    (its plain URLs are open then anyway)."""
    return video is not None and (video.playback_generation == generation or may_serve_unsigned(video))


def with_query(master_text: str, query: str) -> str:
    """The master playlist with `query` (the token) on every URI it names: variants, renditions (audio,
    subtitles), I-frame playlists. A player resolves them against the master's URL, which loses its query."""
    if not query:
        return master_text
    master = m3u8.loads(master_text)
    for item in [*master.playlists, *master.media, *master.iframe_playlists]:
        if item.uri:
            if "?" in item.uri or "#" in item.uri:
                raise ValueError(f"master playlist URI already has a query: {item.uri!r}")
            item.uri = item.uri + query
    return master.dumps()


__all__ = ["Playback", "Signer", "TokenRefused", "may_serve_signed", "may_serve_unsigned", "with_query"]

"""Blob storage: one interface, a local-directory backend and an Azure Blob backend.

Two stores exist per install: `sources` (private originals) and `media` (HLS output that players
fetch). Keeping them apart means a public media URL or SAS can never reach an original upload.
Content-Type and Cache-Control are decided here, by key, for both backends.
"""

import contextlib
import mimetypes
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol, cast

from core.settings import Settings

CHUNK = 4 * 1024 * 1024
IMMUTABLE = "public, max-age=31536000, immutable"
FINISHED_PLAYLIST = "public, max-age=86400"
PRIVATE = "private, no-store"

_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".ts": "video/mp2t",
    ".aac": "audio/aac",
    ".vtt": "text/vtt",
    ".jpg": "image/jpeg",
}


def content_type_for(key: str) -> str:
    suffix = PurePosixPath(key).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def cache_control_for(key: str) -> str:
    """Segments, init files and images never change under their name; playlists and WebVTT tracks (indexes of
    those, which a re-transcode may lay out anew) are written once, when final."""
    suffix = PurePosixPath(key).suffix.lower()
    if suffix in (".m4s", ".ts", ".mp4", ".m4a", ".aac", ".jpg"):
        return IMMUTABLE
    if suffix in (".m3u8", ".vtt"):
        return FINISHED_PLAYLIST
    return PRIVATE


class BlobNotFound(KeyError):
    pass


def check_key(key: str) -> str:
    """Keys are built by the server, but refuse anything that could escape a prefix all the same."""
    parts = key.split("/")
    if not key or any(p in ("..", ".", "") for p in parts) or "\\" in key:
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStore(Protocol):
    def ensure(self) -> None: ...
    def check(self) -> None: ...
    def put_stream(self, key: str, stream: BinaryIO) -> None: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def download_to(self, key: str, path: Path) -> None: ...
    def read_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def keys_older_than(self, prefix: str, before: datetime) -> list[str]: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str) -> int: ...
    # `expires`: when a signed URL ends (Azure SAS); stores whose URLs are plain ignore it.
    def url_for(self, key: str, expires: int | None = None) -> str: ...


class LocalBlobStore:
    """Blobs as files under one directory; headers come from content_type_for/cache_control_for at serve time."""

    def __init__(self, root: Path, url_prefix: str) -> None:
        self.root = root.resolve()
        self.url_prefix = url_prefix.rstrip("/")

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"invalid blob key {key!r}")
        return path

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        if not self.root.is_dir():
            raise RuntimeError(f"blob directory {self.root} missing")

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        with tmp.open("wb") as out:
            shutil.copyfileobj(stream, out, CHUNK)
        tmp.replace(path)  # readers never see a half-written blob

    def put_file(self, key: str, path: Path) -> None:
        with path.open("rb") as f:
            self.put_stream(key, f)

    def download_to(self, key: str, path: Path) -> None:
        shutil.copyfile(self.local_path(key), path)

    def local_path(self, key: str) -> Path:
        """The blob's file, for a reader on this machine that needs no copy (a worker's ffmpeg reading a source)."""
        src = self._path(key)
        if not src.is_file():
            raise BlobNotFound(key)
        return src

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys_older_than(self, prefix: str, before: datetime) -> list[str]:
        cutoff = before.timestamp()
        keys = []
        for key in self.list(prefix):
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: not ours to report
                if (self.root / key).stat().st_mtime < cutoff:
                    keys.append(key)
        return keys

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def delete_prefix(self, prefix: str) -> int:
        check_key(prefix.rstrip("/"))
        keys = self.list(prefix)
        target = self._path(prefix.rstrip("/"))
        if target.is_dir():
            shutil.rmtree(target)
        elif target.is_file():
            target.unlink()
        return len(keys)

    def url_for(self, key: str, expires: int | None = None) -> str:
        return f"{self.url_prefix}/{check_key(key)}"


@dataclass
class _SasWindow:
    start: datetime | None = None
    expiry: datetime | None = None
    renew_at: float = 0.0


class AzureBlobStore:
    """One container of an Azure Blob account (Azurite locally). Uploads and downloads stream in chunks."""

    def __init__(self, connection_string: str, container: str, settings: Settings) -> None:
        from azure.storage.blob import BlobServiceClient

        self.service = BlobServiceClient.from_connection_string(
            connection_string,
            max_single_put_size=CHUNK,
            max_block_size=CHUNK,
            max_single_get_size=CHUNK,
            max_chunk_get_size=CHUNK,
            retry_total=settings.azure_retry_total,  # beyond these, a job is retried later (core.transient)
            initial_backoff=1,  # the SDK's 15 s (+3^n) would keep an API request past nginx's 60 s
            increment_base=2,
            connection_timeout=settings.azure_connect_timeout_seconds,
            read_timeout=settings.azure_read_timeout_seconds,
        )
        self.container_name = container
        self.container = self.service.get_container_client(container)
        self.settings = settings
        self._sas = _SasWindow()

    def ensure(self) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import CorsRule

        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()
        if self.settings.azure_cors_origins:
            # Players fetch segments cross-origin straight from the account.
            rule = CorsRule(
                self.settings.azure_cors_origins.split(","),
                ["GET", "HEAD", "OPTIONS"],
                allowed_headers=["*"],
                exposed_headers=["*"],
                max_age_in_seconds=3600,
            )
            self.service.set_service_properties(cors=[rule])

    def check(self) -> None:
        self.container.get_container_properties()

    def _settings_for(self, key: str):
        from azure.storage.blob import ContentSettings

        return ContentSettings(content_type=content_type_for(key), cache_control=cache_control_for(key))

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        self.container.upload_blob(
            check_key(key), stream, overwrite=True, content_settings=self._settings_for(key), max_concurrency=2
        )

    def put_file(self, key: str, path: Path) -> None:
        with path.open("rb") as f:
            self.put_stream(key, f)

    def download_to(self, key: str, path: Path) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self.container.download_blob(check_key(key), max_concurrency=2)
            with path.open("wb") as f:
                for chunk in downloader.chunks():
                    f.write(chunk)
        except ResourceNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def read_bytes(self, key: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.container.download_blob(check_key(key)).readall()
        except ResourceNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def exists(self, key: str) -> bool:
        return self.container.get_blob_client(check_key(key)).exists()

    def keys_older_than(self, prefix: str, before: datetime) -> list[str]:
        return sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix) if b.last_modified < before)

    def list(self, prefix: str) -> list[str]:
        return sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix))

    def delete_prefix(self, prefix: str) -> int:
        names = self.list(prefix)
        for start in range(0, len(names), 256):  # batch delete takes at most 256 blobs
            batch = names[start : start + 256]
            # A blob listed a moment ago may be gone already (a part removing its scratch tiles, a concurrent
            # delete): 404 is what we want; anything else fails the delete so the caller keeps its row.
            responses = self.container.delete_blobs(*batch, raise_on_any_failure=False)
            failed = [(name, r.status_code) for name, r in zip(batch, responses, strict=False)
                      if r.status_code not in (202, 404)]  # fmt: skip
            if failed:
                raise RuntimeError(f"could not delete {len(failed)} blobs under {prefix!r}: {failed[:3]}")
        return len(names)

    def _window(self) -> tuple[datetime, datetime]:
        """One validity window for every SAS until half its lifetime has passed, so playlists stay cacheable."""
        now = time.time()
        if self._sas.start is None or now >= self._sas.renew_at:
            ttl = self.settings.sas_ttl_seconds
            self._sas = _SasWindow(
                datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(seconds=ttl), now + ttl / 2
            )
        assert self._sas.start is not None and self._sas.expiry is not None
        return self._sas.start, self._sas.expiry

    def url_for(self, key: str, expires: int | None = None) -> str:
        """A read-only SAS for this one blob (a container SAS handed to one viewer would open every video's
        blobs, private ones included). `expires` (unix time): a private video's, ending with its token."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        start, expiry = self._window()
        if expires is not None:
            expiry = datetime.fromtimestamp(expires, UTC)
        assert self.service.account_name, "an Azure connection string names its account"
        sas = generate_blob_sas(
            account_name=self.service.account_name,
            container_name=self.container_name,
            blob_name=check_key(key),
            account_key=self.service.credential.account_key,
            permission=BlobSasPermissions(read=True),
            start=start,
            expiry=expiry,
        )
        return f"{self.container.url}/{key}?{sas}"


class CdnUrls:
    """Wraps a store so players fetch media from a CDN or nginx prefix instead of the backend URL."""

    def __init__(self, store: BlobStore, base_url: str) -> None:
        self._store = store
        self._base = base_url.rstrip("/")

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def url_for(self, key: str, expires: int | None = None) -> str:
        return f"{self._base}/{check_key(key)}"


class MirroredStore:
    """The media store written to two accounts: a blob is in both before its part is recorded, so nginx's fallback
    origin (the mirror) holds every segment a playlist names, even one written a moment before the primary fails.

    Writes go to the primary first and deletes to the mirror first: whatever fails half-way, the mirror holds no
    blob the primary lacks, so the sweeps that list the primary (the truth, read by everything) find every
    leftover. A failure on either side raises, and the caller retries as it would any storage error.
    """

    def __init__(self, primary: BlobStore, mirror: BlobStore) -> None:
        self.primary, self.mirror = primary, mirror

    def ensure(self) -> None:
        self.primary.ensure()
        self.mirror.ensure()

    def check(self) -> None:
        self.primary.check()
        self.mirror.check()

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        # The stream can be read once: spool it, then write the file to both (media writes are files anyway).
        with tempfile.NamedTemporaryFile(prefix="mirror-") as spool:
            shutil.copyfileobj(stream, spool, CHUNK)
            spool.flush()
            self.put_file(key, Path(spool.name))

    def put_file(self, key: str, path: Path) -> None:
        self.primary.put_file(key, path)
        self.mirror.put_file(key, path)

    def download_to(self, key: str, path: Path) -> None:
        self.primary.download_to(key, path)

    def read_bytes(self, key: str) -> bytes:
        return self.primary.read_bytes(key)

    def exists(self, key: str) -> bool:
        return self.primary.exists(key)

    def keys_older_than(self, prefix: str, before: datetime) -> list[str]:
        return self.primary.keys_older_than(prefix, before)

    def list(self, prefix: str) -> list[str]:
        return self.primary.list(prefix)

    def delete_prefix(self, prefix: str) -> int:
        self.mirror.delete_prefix(prefix)
        return self.primary.delete_prefix(prefix)

    def url_for(self, key: str, expires: int | None = None) -> str:
        return self.primary.url_for(key, expires)


@dataclass
class Stores:
    sources: BlobStore
    media: BlobStore

    def ensure(self) -> None:
        self.sources.ensure()
        self.media.ensure()

    def check(self) -> None:
        self.sources.check()
        self.media.check()


MEDIA_URL_PREFIX = "/media"


def make_stores(settings: Settings) -> Stores:
    if settings.uses_azure:
        assert settings.azure_connection_string
        sources: BlobStore = AzureBlobStore(settings.azure_connection_string, settings.azure_source_container, settings)
        media: BlobStore = AzureBlobStore(settings.azure_connection_string, settings.azure_media_container, settings)
        if settings.azure_mirror_connection_string:
            mirror = AzureBlobStore(settings.azure_mirror_connection_string, settings.azure_media_container, settings)
            media = MirroredStore(media, mirror)
    else:
        sources = LocalBlobStore(settings.blob_dir / "sources", "")
        media = LocalBlobStore(settings.blob_dir / "media", MEDIA_URL_PREFIX)
    if settings.segment_base_url:
        media = cast(BlobStore, CdnUrls(media, settings.segment_base_url))  # the rest via __getattr__
    return Stores(sources=sources, media=media)


def iter_files(root: Path) -> Iterator[Path]:
    yield from sorted(p for p in root.rglob("*") if p.is_file())

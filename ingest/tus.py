"""Resumable uploads: the storage side of a tus 1.0 server (core, creation, termination, expiration).

Why not a library: tuspyserver 4.4.3, the maintained FastAPI implementation, was tried first. Its
per-request `files_dir` hook can separate owners, but creation-with-upload reads the whole POST body
into memory and writes it ignoring both Upload-Length and the size limit; the concatenation extension
is always on and its final size is never checked; its expiry collector (`gc_files`) parses the RFC 7231
date it writes with `fromisoformat` and raises; a PATCH that overruns Upload-Length is refused after
earlier chunks hit the disk but before the offset is saved; it has nowhere to keep the ingest outcome
for a client that lost the final response. Each would need a workaround around its routes, so this
small implementation does exactly the subset we serve, and the routes stay thin (api/routes/uploads.py).

Layout, all under `settings.tmp_dir / "tus" / <owner id hex>/`: `<upload id>` holds the bytes received
so far (its size IS the offset, so a crash can never make the two disagree), `<upload id>.json` the
record. A PATCH holds an exclusive `flock` on the data file, so concurrent PATCHes, a HEAD racing a
PATCH and the cleanup serialize across API worker processes on one host. Several API hosts must share
the tmp dir on a filesystem whose flock works across hosts: one data dir for `streamify up --nodes` and
compose, an NFS Azure Files share on Azure (infra/README.md; SMB would turn flock into mandatory locks).

Expiry is sliding: `tus_expiry_seconds` after the last PATCH. `cleanup_expired` deletes what has
expired; the API runs it at startup and then every `tus_cleanup_interval_seconds` (no beat process
needed), and `python -m ingest.housekeeping` runs it once, for cron (ingest/housekeeping.py).

Disk: creation reserves. Under a lock on `tus/.reserve.lock`, a new upload is accepted only if the declared
lengths of its creator's open uploads, its own included, stay within `tus_max_reserved_bytes` (429 otherwise:
one creator cannot take the shared budget with uploads it never sends), and if free space covers what every
open upload on this data dir (all owners) may still send, plus its own length, plus `tus_disk_margin_bytes`;
otherwise 507. The ingesting process holds a `flock` on `<upload id>.lock` until
it records the outcome; an upload `ingesting` for over `tus_ingest_timeout_seconds` whose lock is free
(its process died: the kernel dropped the lock) is refused ("ingest was interrupted; upload again") by
the next read or cleanup pass, and its bytes are deleted.
"""

import base64
import binascii
import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from anyio import to_thread
from pydantic import BaseModel, ValidationError
from sqlmodel import Session
from starlette.requests import ClientDisconnect

from core.blobs import Stores
from core.errors import Refusal, Refused, too_large_detail
from core.settings import Settings
from core.sniff import sniff_demuxer
from ingest.intake import accept_file, clean_title
from schemas.api import UploadState
from schemas.tables import Video, Visibility

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,expiration,termination"
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
MAX_METADATA_HEADER = 32 * 1024
MAX_DESCRIPTION = 5000
MAX_FILENAME = 255
SNIFF_BYTES = 8192  # what sniff_demuxer reads: enough to refuse a non-media file at its first chunk
WRITE_BUFFER = 1024 * 1024  # bytes gathered from the socket before one write to disk
LOCK_TIMEOUT = 10.0
MAX_RECORDED_PATCHES = 1000
EMPTY_DETAIL = "empty file: the upload contains no bytes"
STORE_FAILED_DETAIL = "could not store the upload; try again"
INTERRUPTED_DETAIL = "ingest was interrupted; upload again"
NO_SPACE_DETAIL = "not enough disk space on the server for this upload right now: try again later"
RESERVE_LOCK = ".reserve.lock"


class UploadRecord(BaseModel):
    id: str
    owner_id: uuid.UUID
    length: int
    filename: str | None
    title: str
    description: str
    visibility: str
    created_at: datetime
    expires_at: datetime
    state: UploadState = UploadState.receiving
    # The server's own account of the bytes it wrote: equals `length` when nothing was received twice.
    received_bytes: int = 0
    patch_offsets: list[int] = []  # Upload-Offset of each PATCH that wrote bytes, in order
    ingest_started_at: datetime | None = None  # when every byte was in and the ingest began
    video_id: uuid.UUID | None = None
    refusal: Refusal | None = None  # why it was refused (the API answers its status)
    error_status: int | None = None  # written by versions before `refusal`: read, never written
    error: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def http_date(when: datetime) -> str:
    """RFC 7231 date, the format tus asks for in Upload-Expires."""
    return format_datetime(when.astimezone(UTC), usegmt=True)


def parse_metadata(header: str | None) -> dict[str, str]:
    """`Upload-Metadata: key base64value,key2 ...`; a key may come without a value."""
    if not header:
        return {}
    if len(header) > MAX_METADATA_HEADER:
        raise Refused(Refusal.malformed, f"Upload-Metadata too long: at most {MAX_METADATA_HEADER} bytes")
    out: dict[str, str] = {}
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if not parts[0] or len(parts) > 2 or not parts[0].isascii() or not parts[0].isprintable():
            raise Refused(
                Refusal.malformed, f"malformed Upload-Metadata entry {pair.strip()[:40]!r}: use 'key base64value'"
            )
        key = parts[0]
        if key in out:
            raise Refused(Refusal.malformed, f"Upload-Metadata key {key!r} given twice")
        try:
            out[key] = base64.b64decode(parts[1], validate=True).decode() if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Refused(Refusal.malformed, f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text") from exc
    return out


def _clean_filename(name: str | None) -> str | None:
    name = re.split(r"[/\\]", name or "")[-1].strip()
    if not name:
        return None
    if len(name) > MAX_FILENAME or not name.isprintable():
        raise Refused(Refusal.invalid, f"filename must be printable and at most {MAX_FILENAME} characters")
    return name


class TusStore:
    """Upload records and bytes on local disk, one folder per owner so an id alone reaches nothing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.tmp_dir / "tus"

    # --- paths --------------------------------------------------------------------------------------
    def _dir(self, owner_id: uuid.UUID) -> Path:
        return self.root / owner_id.hex

    def data_path(self, rec: UploadRecord) -> Path:
        return self._dir(rec.owner_id) / rec.id

    def _ingest_path(self, rec: UploadRecord) -> Path:
        return self._dir(rec.owner_id) / f"{rec.id}.ingest"

    def _ingest_lock_path(self, rec: UploadRecord) -> Path:
        return self._dir(rec.owner_id) / f"{rec.id}.lock"

    def _record_path(self, owner_id: uuid.UUID, upload_id: str) -> Path:
        return self._dir(owner_id) / f"{upload_id}.json"

    # --- records ------------------------------------------------------------------------------------
    def save(self, rec: UploadRecord) -> None:
        """Atomic replace: a reader sees the old record or the new one, never half of one."""
        path = self._record_path(rec.owner_id, rec.id)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(rec.model_dump_json())
        os.replace(tmp, path)

    def _read(self, path: Path) -> UploadRecord | None:
        try:
            return UploadRecord.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None

    def load(self, owner_id: uuid.UUID, upload_id: str) -> UploadRecord:
        """The caller's upload: someone else's id answers 404 exactly like an unknown one."""
        rec = self._read(self._record_path(owner_id, upload_id)) if UPLOAD_ID.fullmatch(upload_id) else None
        if rec is None or rec.owner_id != owner_id:
            raise Refused(Refusal.not_found, f"upload {upload_id} not found")
        if rec.expires_at <= _now():
            self.delete(rec)
            raise Refused(Refusal.gone, f"upload {upload_id} expired: start it again")
        return self._refuse_if_interrupted(rec)

    def delete(self, rec: UploadRecord) -> None:
        paths = (self.data_path(rec), self._ingest_path(rec), self._ingest_lock_path(rec))
        for path in (*paths, self._record_path(rec.owner_id, rec.id)):
            path.unlink(missing_ok=True)

    # --- creation -----------------------------------------------------------------------------------
    def create(self, owner_id: uuid.UUID, length: int, metadata: dict[str, str]) -> UploadRecord:
        """Validate everything that can be known before the first byte, then reserve an id."""
        limit = self.settings.max_upload_bytes
        if length > limit:
            raise Refused(Refusal.too_large, too_large_detail(limit))
        if length == 0:
            raise Refused(Refusal.invalid, EMPTY_DETAIL)
        filename = _clean_filename(metadata.get("filename") or metadata.get("name"))
        title = clean_title(metadata.get("title"), filename)
        description = metadata.get("description", "")
        if len(description) > MAX_DESCRIPTION:
            raise Refused(Refusal.invalid, f"description too long: at most {MAX_DESCRIPTION} characters")
        visibility = metadata.get("visibility") or Visibility.public.value
        if visibility not in {v.value for v in Visibility}:
            raise Refused(Refusal.invalid, f"visibility must be one of {', '.join(v.value for v in Visibility)}")
        folder = self._dir(owner_id)
        folder.mkdir(parents=True, exist_ok=True)
        if len(self.open_uploads(owner_id)) >= self.settings.tus_max_open_uploads:
            raise Refused(
                Refusal.too_many,
                f"too many unfinished uploads: at most {self.settings.tus_max_open_uploads}; finish or delete one",
            )
        with self._reserving():  # check and record as one step: two creations never count the same free bytes
            # One creator's share first: declared lengths count whole, so zero-byte placeholders reserve too.
            mine = sum(rec.length for rec in self.open_uploads(owner_id))
            cap = self.settings.tus_max_reserved_bytes
            if mine + length > cap:
                raise Refused(
                    Refusal.too_many,
                    f"your unfinished uploads would declare {mine + length} bytes: at most {cap} bytes per creator; "
                    "finish or delete one",
                )
            needed = self.reserved_bytes() + length + self.settings.tus_disk_margin_bytes
            if shutil.disk_usage(self.root).free < needed:
                raise Refused(Refusal.out_of_space, NO_SPACE_DETAIL)
            return self._new_record(owner_id, length, filename, title, description, visibility)

    def _new_record(
        self, owner_id: uuid.UUID, length: int, filename: str | None, title: str, description: str, visibility: str
    ) -> UploadRecord:
        now = _now()
        rec = UploadRecord(
            id=uuid.uuid4().hex,
            owner_id=owner_id,
            length=length,
            filename=filename,
            title=title,
            description=description,
            visibility=visibility,
            created_at=now,
            expires_at=now + timedelta(seconds=self.settings.tus_expiry_seconds),
        )
        self.data_path(rec).touch(exist_ok=False)
        self.save(rec)
        return rec

    def open_uploads(self, owner_id: uuid.UUID) -> list[UploadRecord]:
        now = _now()
        recs = (self._read(p) for p in self._dir(owner_id).glob("*.json"))
        return [r for r in recs if r and r.state == UploadState.receiving and r.expires_at > now]

    def _owner_dirs(self) -> list[Path]:
        return [p for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []

    def reserved_bytes(self) -> int:
        """What every open upload on this data dir (all owners) may still send: its length minus what it holds."""
        reserved = 0
        for folder in self._owner_dirs():
            for rec in self.open_uploads(uuid.UUID(hex=folder.name)) if UPLOAD_ID.fullmatch(folder.name) else ():
                try:
                    reserved += max(rec.length - self.data_path(rec).stat().st_size, 0)
                except FileNotFoundError:  # finished or deleted meanwhile: it needs nothing more
                    continue
        return reserved

    @contextlib.contextmanager
    def _reserving(self) -> Iterator[None]:
        """Creations serialize on one lock file, across the API processes of this data dir."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / RESERVE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # --- locking ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, rec: UploadRecord, timeout: float = LOCK_TIMEOUT) -> Iterator[int]:
        """Exclusive use of the upload's bytes, across processes; yields an append-only descriptor."""
        try:
            fd = os.open(self.data_path(rec), os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise Refused(Refusal.not_found, f"upload {rec.id} not found") from None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise Refused(Refusal.busy, "upload busy: another request is writing it; retry") from None
                    time.sleep(0.05)
            if os.fstat(fd).st_nlink == 0:  # deleted (refused, expired, finished) while we waited
                raise Refused(Refusal.not_found, f"upload {rec.id} not found")
            yield fd
        finally:
            os.close(fd)  # also releases the lock

    def current(self, rec: UploadRecord) -> tuple[UploadRecord, int]:
        """Record and offset as they stand once no PATCH is writing: what HEAD reports."""
        if rec.state == UploadState.refused:
            return rec, rec.received_bytes  # what had arrived when it was refused (since deleted)
        if rec.state != UploadState.receiving:
            return rec, rec.length
        try:
            with self.locked(rec) as fd:
                return self.load(rec.owner_id, rec.id), os.fstat(fd).st_size
        except Refused as exc:
            if exc.reason != Refusal.not_found:
                raise
            return self.load(rec.owner_id, rec.id), rec.length  # finished while we waited

    # --- PATCH --------------------------------------------------------------------------------------
    async def receive(
        self, rec: UploadRecord, offset: int, content_length: int | None, body: AsyncIterator[bytes]
    ) -> tuple[UploadRecord, int]:
        """Append one PATCH body at `offset`; returns the record and the new offset.

        Bytes that arrived before a disconnect or a refusal are kept (they are at their right place),
        so the client resumes from the last byte the server has, never re-sending one.
        """
        if rec.state == UploadState.refused:
            raise Refused(Refusal.gone, f"upload {rec.id} was refused: {rec.error}")
        if rec.state != UploadState.receiving:
            raise Refused(Refusal.conflict, f"upload {rec.id} is already complete")
        if content_length is not None and offset + content_length > rec.length:
            raise Refused(Refusal.too_large, f"this PATCH would go past Upload-Length ({rec.length} bytes)")
        cm = self.locked(rec)
        fd = await to_thread.run_sync(cm.__enter__)
        written = 0
        pending = bytearray()
        try:
            rec = await to_thread.run_sync(self.load, rec.owner_id, rec.id)
            have = os.fstat(fd).st_size
            if have != offset:
                raise Refused(Refusal.conflict, f"Upload-Offset {offset} does not match the server's offset {have}")

            async def flush() -> None:
                nonlocal written
                if pending:
                    await to_thread.run_sync(os.write, fd, bytes(pending))
                    written += len(pending)
                    pending.clear()

            overrun = False
            try:
                async for chunk in body:
                    if len(chunk) > rec.length - offset - written - len(pending):
                        overrun = True
                        break
                    pending.extend(chunk)
                    if len(pending) >= WRITE_BUFFER:
                        await flush()
            except ClientDisconnect:
                log.info("upload %s: client left after %d bytes of this PATCH", rec.id, written + len(pending))
            finally:
                await flush()
                rec.received_bytes += written
                if written and len(rec.patch_offsets) < MAX_RECORDED_PATCHES:
                    rec.patch_offsets.append(offset)
                rec.expires_at = _now() + timedelta(seconds=self.settings.tus_expiry_seconds)
                await to_thread.run_sync(self.save, rec)
            if overrun:  # a client that lies about its length is not trusted with the rest either
                exc = Refused(
                    Refusal.too_large, f"PATCH body goes past Upload-Length ({rec.length} bytes): upload refused"
                )
                await to_thread.run_sync(self.refuse, rec, exc)
                raise exc
            new_offset = offset + written
            if offset < min(SNIFF_BYTES, rec.length) <= new_offset:
                await to_thread.run_sync(self._sniff_or_refuse, rec)
            if new_offset == rec.length:
                # Moved aside under the lock: no later PATCH can touch bytes that are being ingested.
                rec.state, rec.ingest_started_at = UploadState.ingesting, _now()
                await to_thread.run_sync(os.replace, self.data_path(rec), self._ingest_path(rec))
                await to_thread.run_sync(self.save, rec)
            return rec, new_offset
        finally:
            await to_thread.run_sync(cm.__exit__, None, None, None)

    def _sniff_or_refuse(self, rec: UploadRecord) -> None:
        """Refuse a non-media file at its first chunk instead of after gigabytes."""
        try:
            sniff_demuxer(self.data_path(rec))
        except Refused as exc:
            self.refuse(rec, exc)
            raise

    def refuse(self, rec: UploadRecord, exc: Refused) -> None:
        """Drop the bytes, keep the record (until it expires) so a client that lost the answer can GET it."""
        rec.state, rec.refusal, rec.error = UploadState.refused, exc.reason, exc.detail
        self.save(rec)
        self.data_path(rec).unlink(missing_ok=True)
        self._ingest_path(rec).unlink(missing_ok=True)
        self._ingest_lock_path(rec).unlink(missing_ok=True)

    # --- interrupted ingests ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _ingest_lock(self, rec: UploadRecord, *, wait: bool) -> Iterator[bool]:
        """The `<id>.lock` flock its ingesting process holds: yields False if another process holds it."""
        fd = os.open(self._ingest_lock_path(rec), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _refuse_if_interrupted(self, rec: UploadRecord) -> UploadRecord:
        """An upload `ingesting` past the bound with no live process on it (its node died mid-ingest) is refused
        and its bytes deleted; the creator is told to upload again instead of waiting until it expires."""
        if rec.state != UploadState.ingesting:
            return rec
        started = rec.ingest_started_at or rec.created_at
        if _now() - started < timedelta(seconds=self.settings.tus_ingest_timeout_seconds):
            return rec
        with self._ingest_lock(rec, wait=False) as free:
            current = self._read(self._record_path(rec.owner_id, rec.id))
            if not free or current is None or current.state != UploadState.ingesting:
                return current or rec  # still running somewhere, or it just ended
            log.warning("upload %s: ingest started at %s was interrupted (no process on it); refused", rec.id, started)
            self.refuse(current, Refused(Refusal.unavailable, INTERRUPTED_DETAIL))
            return current

    # --- completion ---------------------------------------------------------------------------------
    def ingest(
        self,
        rec: UploadRecord,
        *,
        session: Session,
        stores: Stores,
        enqueue: Callable[[uuid.UUID], None],
    ) -> Video:
        """The finished upload goes through the same ingest as the multipart endpoint.

        Under the upload's ingest lock until the outcome is saved: while it is held, nobody takes the upload
        for interrupted; an unexpected failure's details go to the log, the creator gets a plain 503."""
        assert rec.state == UploadState.ingesting
        with self._ingest_lock(rec, wait=True):
            current = self._read(self._record_path(rec.owner_id, rec.id))
            if current is None or current.state != UploadState.ingesting:  # declared interrupted meanwhile
                raise Refused(Refusal.unavailable, INTERRUPTED_DETAIL)
            return self._ingest_locked(rec, session=session, stores=stores, enqueue=enqueue)

    def _ingest_locked(
        self, rec: UploadRecord, *, session: Session, stores: Stores, enqueue: Callable[[uuid.UUID], None]
    ) -> Video:
        try:
            video = accept_file(
                self._ingest_path(rec),
                rec.filename,
                rec.title,
                owner_id=rec.owner_id,
                description=rec.description,
                visibility=rec.visibility,
                session=session,
                stores=stores,
                settings=self.settings,
                enqueue=enqueue,
            )
        except Refused as exc:
            self.refuse(rec, exc)
            raise
        except Exception as exc:
            log.exception("upload %s: ingest failed", rec.id)  # the details (Azure, database) stay in the log
            refusal = Refused(Refusal.unavailable, STORE_FAILED_DETAIL)
            self.refuse(rec, refusal)
            raise refusal from exc
        rec.state, rec.video_id = UploadState.done, video.id
        self.save(rec)
        self._ingest_lock_path(rec).unlink(missing_ok=True)
        return video

    def terminate(self, rec: UploadRecord) -> None:
        if rec.state == UploadState.ingesting:
            raise Refused(Refusal.conflict, f"upload {rec.id} is being processed; delete the video instead")
        if rec.state == UploadState.receiving:
            with self.locked(rec):
                self.delete(rec)
        else:
            self.delete(rec)

    # --- expiry -------------------------------------------------------------------------------------
    def cleanup_expired(self, now: datetime | None = None) -> int:
        """Delete expired uploads and leftovers; returns how many uploads went. Safe beside live PATCHes."""
        now = now or _now()
        removed = 0
        stale_before = (now - timedelta(seconds=self.settings.tus_expiry_seconds)).timestamp()
        for folder in self._owner_dirs():
            for record_path in folder.glob("*.json"):
                rec = self._read(record_path)
                if rec is None:
                    if _older(record_path, stale_before):  # unreadable record
                        record_path.unlink(missing_ok=True)
                    continue
                if rec.expires_at > now:
                    self._refuse_if_interrupted(rec)  # its bytes go now; the record tells the outcome until expiry
                    continue
                try:
                    if rec.state == UploadState.receiving:
                        with self.locked(rec, timeout=0):
                            self.delete(rec)
                    else:
                        self.delete(rec)
                    removed += 1
                except Refused:  # busy or already gone: next round
                    continue
            for path in folder.iterdir():  # bytes or temp files whose record is gone
                stem = path.name.split(".", 1)[0]
                if not (folder / f"{stem}.json").exists() and _older(path, stale_before):
                    path.unlink(missing_ok=True)
        return removed


def _older(path: Path, before: float) -> bool:
    """Last modified before `before`; a file another process deleted meanwhile is not (nothing to do)."""
    try:
        return path.stat().st_mtime < before
    except FileNotFoundError:
        return False


def cleanup_expired(settings: Settings, now: datetime | None = None) -> int:
    return TusStore(settings).cleanup_expired(now)

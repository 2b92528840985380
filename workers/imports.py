"""Run one claimed import: download the URL to a local file, check it exactly like an upload, store it as the
video's source and queue its transcode; or fail the video with the reason, leaving nothing behind.

The download file is the attempt's own (`<data>/tmp/imports/<import>.<lease>`, swept by the supervisor if its
worker is killed) and the stored copy is too (core.media_keys.imported_source_key), so an attempt that lost its
import (a frozen worker waking up) deletes only what it wrote. ffmpeg never sees the URL: only the local file,
through core.source_check.check_source (the allow-listed demuxers of core.sniff, the limits of core.probe).
"""

import logging
from collections.abc import Callable
from pathlib import Path

from core.blobs import Stores
from core.db import get_engine
from core.errors import Refusal, Refused
from core.fetch import FetchFailed, FetchStopped, Progress, fetch
from core.imports import ClaimedImport, fail_import, import_heartbeat, record_imported, retry_import_later
from core.jobqueue import Beat
from core.logs import job_context
from core.media_keys import imported_source_key, media_prefix
from core.settings import Settings
from core.source_check import check_source
from core.transient import transient_kind
from schemas.tables import FailureKind
from workers.job import Stop, beating_with

log = logging.getLogger(__name__)

# What a creator is told when the failure was not the URL's: never a host, a port or a trace.
PUBLIC_REASONS = {
    FailureKind.unavailable: "storage or database unavailable: the import was retried and gave up; import again later",
    FailureKind.disk_full: "the server ran out of disk space while importing: the import was retried and gave up",
    FailureKind.internal: "internal error while importing; an operator can see the details",
}


class Lost(Exception):
    """The attempt no longer holds its import: it writes nothing more."""


def download_path(settings: Settings, claimed: ClaimedImport) -> Path:
    """The attempt's own download file; `<id>.<lease>` is what workers.supervision.sweep_scratch reads."""
    return settings.tmp_dir / "imports" / f"{claimed.import_id}.{claimed.lease.hex}"


def run_import(
    claimed: ClaimedImport, worker: str, settings: Settings, stores: Stores, ring: Callable[[str], None]
) -> str:
    """Returns what became of it: "imported", "failed", "retrying" or "lost"."""
    with job_context(f"import:{claimed.import_id}", claimed.video_id):
        log.info("import %s (video %s) attempt %s on %s", claimed.import_id, claimed.video_id, claimed.lease, worker)
        return _run(claimed, settings, stores, ring)


def _run(claimed: ClaimedImport, settings: Settings, stores: Stores, ring: Callable[[str], None]) -> str:
    engine = get_engine(settings)
    dest = download_path(settings, claimed)
    key = imported_source_key(claimed.video_id, claimed.lease)
    stop, progress = Stop(), Progress()
    stored = False

    def beat() -> Beat:
        return import_heartbeat(engine, claimed, progress.received, progress.total)

    try:
        with beating_with(beat, stop, f"import-{claimed.import_id}"):
            dest.parent.mkdir(parents=True, exist_ok=True)
            received = fetch(claimed.url, dest, settings, progress, stop)
            checked = check_source(dest, settings)  # exactly what an upload of these bytes meets
            if stop():
                raise Lost
            stored = True
            stores.sources.put_file(key, dest)
            dest.unlink(missing_ok=True)
            job_id = record_imported(engine, claimed, key, checked.video_fields(), received)
            if job_id is None:
                raise Lost
    except Exception as exc:
        return _end(exc, claimed, settings, stores, key if stored else None, stop)
    finally:
        dest.unlink(missing_ok=True)
    _drop_other_copies(stores, claimed, key)
    ring(str(job_id))  # from here the video goes on exactly as an upload's does
    log.info("import %s: %d bytes stored; transcode job %s queued", claimed.import_id, received, job_id)
    return "imported"


def _end(
    exc: Exception, claimed: ClaimedImport, settings: Settings, stores: Stores, key: str | None, stop: Stop
) -> str:
    """Record why the attempt ended (if it still holds its import) and remove what it stored."""
    engine = get_engine(settings)
    if isinstance(exc, Lost | FetchStopped) or stop.lost.is_set():
        log.warning("import %s: attempt %s lost its import; stopping", claimed.import_id, claimed.lease)
        _delete(stores, key)
        return "lost"
    _delete(stores, key)
    if isinstance(exc, FetchFailed):
        kind, message = exc.kind, exc.message
    elif isinstance(exc, Refused):  # the content, refused as an upload of it would be
        too_big = exc.reason == Refusal.too_large
        kind, message = exc.kind or (FailureKind.fetch_too_large if too_big else FailureKind.refused_format), exc.detail
    elif (transient := transient_kind(exc)) is not None:
        delay = retry_import_later(
            engine, claimed, transient, str(exc)[:500], max_retries=settings.transient_retries,
            base_seconds=settings.transient_retry_base_seconds,
        )  # fmt: skip
        if delay is not None:
            log.warning("import %s: %s; retrying in %.0f s", claimed.import_id, transient.value, delay, exc_info=exc)
            return "retrying"
        kind, message = transient, PUBLIC_REASONS[transient]
    else:
        log.error("import %s failed", claimed.import_id, exc_info=exc)
        kind, message = FailureKind.internal, PUBLIC_REASONS[FailureKind.internal]
    if not fail_import(engine, claimed, kind, message):
        return "lost"
    log.warning("import %s failed (%s): %s", claimed.import_id, kind.value, message)
    # Whatever a dead earlier attempt stored: the video will never have a source.
    _delete(stores, media_prefix(claimed.video_id))
    return "failed"


def _delete(stores: Stores, prefix: str | None) -> None:
    if prefix is None:
        return
    try:
        stores.sources.delete_prefix(prefix)
    except Exception:  # the orphan sweep (ingest.housekeeping) or the video's deletion removes it later
        log.warning("could not delete %s from the source store", prefix, exc_info=True)


def _drop_other_copies(stores: Stores, claimed: ClaimedImport, key: str) -> None:
    """Copies stored by earlier attempts of the same import that died before recording theirs."""
    try:
        others = [k for k in stores.sources.list(media_prefix(claimed.video_id)) if k != key]
    except Exception:
        log.warning("could not list the sources of video %s", claimed.video_id, exc_info=True)
        return
    for other in others:
        _delete(stores, other)

"""Upload leftovers, swept by every API process at startup and then every `tus_cleanup_interval_seconds`
(no beat process needed), or once by `python -m ingest.housekeeping` for cron.

Two kinds: expired partial tus uploads (ingest/tus.py), and source blobs whose video was never recorded.
Intake stores the source before it commits the video row, so that no row ever names a missing blob; an
API node that dies between the two leaves a blob nothing refers to. Every key in the source store begins
with its video's id (core/media_keys.py), so a blob is an orphan when no row has that id and it is older
than `orphan_source_grace_seconds` (far longer than the store-then-commit gap of one request). Keys that
do not start with a video id are left alone. The source store must belong to one install: another
install's blobs in the same container would look orphaned to this one's database.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from anyio import to_thread
from sqlmodel import Session, col, select

from core.blobs import BlobStore, make_stores
from core.db import get_engine
from core.media_keys import media_prefix
from core.settings import Settings
from ingest.tus import cleanup_expired
from schemas.tables import Video

log = logging.getLogger(__name__)
ID_BATCH = 500  # ids per IN (...) query: well under every driver's parameter limit


def _video_id(key: str) -> uuid.UUID | None:
    head = key.split("/", 1)[0]
    try:
        video_id = uuid.UUID(head)
    except ValueError:
        return None
    return video_id if str(video_id) == head else None  # exactly as media_prefix writes it


def orphaned_sources(store: BlobStore, session: Session, before: datetime) -> set[uuid.UUID]:
    """Ids that have blobs last written before `before` in the source store and no video row."""
    ids = {vid for key in store.keys_older_than("", before) if (vid := _video_id(key))}
    batches = [sorted(ids)[i : i + ID_BATCH] for i in range(0, len(ids), ID_BATCH)]
    known = {vid for batch in batches for vid in session.exec(select(Video.id).where(col(Video.id).in_(batch)))}
    return ids - known


def sweep_orphaned_sources(settings: Settings, now: datetime | None = None) -> int:
    """Delete orphaned source blobs; returns how many videos' worth went."""
    before = (now or datetime.now(UTC)) - timedelta(seconds=settings.orphan_source_grace_seconds)
    store = make_stores(settings).sources
    with Session(get_engine(settings)) as session:
        orphans = orphaned_sources(store, session, before)
    for video_id in sorted(orphans):
        store.delete_prefix(media_prefix(video_id))
        log.warning("deleted the source of video %s: stored, but its row was never committed", video_id)
    return len(orphans)


PASSES: tuple[tuple[str, Callable[[Settings], int]], ...] = (
    ("expired partial uploads", cleanup_expired),
    ("orphaned sources", sweep_orphaned_sources),
)


def sweep_once(settings: Settings) -> dict[str, int]:
    return {what: run(settings) for what, run in PASSES}


async def sweep_periodically(settings: Settings) -> None:
    """One pass failing (storage or database down) neither stops the others nor the next round."""
    while True:
        for what, run in PASSES:
            try:
                removed = await to_thread.run_sync(run, settings)
                if removed:
                    log.info("cleanup: removed %d %s", removed, what)
            except Exception:
                log.exception("cleanup of %s failed", what)
        await asyncio.sleep(settings.tus_cleanup_interval_seconds)


if __name__ == "__main__":
    from core.settings import get_settings

    print(", ".join(f"removed {n} {what}" for what, n in sweep_once(get_settings()).items()))

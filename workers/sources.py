"""The source of a job on this machine: fetched once per machine and shared by every part it runs there.

Parts of one video run on many machines at once, and several on one machine: each machine downloads the
source once (a file lock serialises the first download), not once per part. A local blob store's file is
read in place. The supervisor removes copies whose job generation is over (sweep_sources).
"""

import fcntl
import shutil
import time
import uuid
from pathlib import Path

from core.blobs import BlobStore
from core.jobqueue import STALE_AFTER
from core.settings import Settings


def sources_dir(settings: Settings) -> Path:
    return settings.tmp_dir / "sources"


def local_source(settings: Settings, store: BlobStore, key: str, video_id: uuid.UUID, generation: uuid.UUID) -> Path:
    """A path to the source that ffmpeg can read (its mtime is touched so the sweep sees it in use)."""
    in_place = getattr(store, "local_path", None)
    if in_place is not None:
        return in_place(key)
    folder = sources_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{video_id}.{generation.hex}"
    with (folder / f"{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first part here downloads; the others wait for it, then share
        if not path.is_file():
            partial = path.with_name(f"{path.name}.partial")
            store.download_to(key, partial)
            partial.replace(path)
        path.touch()
    return path


def sweep_sources(folder: Path, live: set[tuple[uuid.UUID, uuid.UUID]], now: float | None = None) -> list[Path]:
    """Remove copies (`<video>.<generation>`) of generations no longer running, idle for STALE_AFTER."""
    now = now or time.time()
    removed = []
    for path in folder.glob("*.*") if folder.is_dir() else []:
        video, _, rest = path.name.partition(".")
        generation = rest.split(".")[0]
        try:
            key = (uuid.UUID(video), uuid.UUID(generation))
            idle = now - path.stat().st_mtime
        except (ValueError, OSError):
            continue
        if key not in live and idle > STALE_AFTER.total_seconds():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed

"""The source of a job on this machine: fetched once per machine and shared by every part it runs there.

Parts of one video run on many machines at once, and several on one machine: each machine downloads the
source once (a file lock serialises the first download), not once per part. A local blob store's file is
read in place. The supervisor removes copies whose job generation is over (workers.supervision.sweep_scratch).
"""

import fcntl
import uuid
from pathlib import Path

from core.blobs import BlobStore
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

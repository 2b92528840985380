"""What a killed worker leaves on a shared volume is removed, and nothing a live attempt or encode uses."""

import os
import time
import uuid

from core.jobqueue import STALE_AFTER
from workers.supervision import sweep_scratch


def test_leftovers_of_dead_attempts_and_encodes_go_live_ones_stay(tmp_path):
    dead, live = (uuid.uuid4(), uuid.uuid4()), (uuid.uuid4(), uuid.uuid4())
    old = time.time() - STALE_AFTER.total_seconds() - 5
    made = {
        "dead folder": tmp_path / f"{dead[0]}.{dead[1].hex}",  # an attempt's scratch folder
        "dead copy": tmp_path / f"{dead[0]}.{dead[1].hex}.lock",  # a source copy's lock file
        "live folder": tmp_path / f"{live[0]}.{live[1].hex}",
        "live copy": tmp_path / f"{live[0]}.{live[1].hex}.lock",
        "someone else's": tmp_path / "notes.txt",
    }
    for name, path in made.items():
        path.mkdir() if "folder" in name else path.write_text("x")
        os.utime(path, (old, old))
    fresh = tmp_path / f"{uuid.uuid4()}.{uuid.uuid4().hex}"  # just created: its worker may be starting
    fresh.mkdir()
    removed = set(sweep_scratch(tmp_path, {live}))
    assert removed == {made["dead folder"], made["dead copy"]}
    assert all(p.exists() for p in [made["live folder"], made["live copy"], made["someone else's"], fresh])

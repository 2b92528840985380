"""Where benchmarks keep the sources they generate, and generating one only once.

Sources are made with the workers' own FFmpeg build from lavfi graphs; a long or large one takes minutes, so it
is written once to <data dir>/bench-cache (STREAMIFY_DATA_DIR, else ./streamify-data) and reused by later runs.
A file's name must change when what generates it changes (callers put the length, size or a digest in it).
"""

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("STREAMIFY_DATA_DIR", ROOT / "streamify-data")) / "bench-cache"


def generated_once(path: Path, argv: Callable[[Path], list[str]], say: Callable[[str], object] = print) -> Path:
    """`path`, made by running argv(<a partial file>) unless it already exists; a run interrupted midway leaves
    only the partial file, never a truncated source that later runs would take for a finished one."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        say(f"generating {path}…")
        part = path.with_name(f"{path.stem}.part{path.suffix}")
        subprocess.run(argv(part), check=True)
        part.replace(path)
    return path

"""Where the playback secret comes from: STREAMIFY_PLAYBACK_SECRET, or a file under the data dir.

Every API node and nginx must hold the same secret, or tokens minted by one are refused by another. On
embedded defaults (SQLite: every process shares one data dir) a secret is generated once and kept in
`<data dir>/playback-secret` (mode 0600). With an external database the install may span machines, so the
secret must be given explicitly: a missing one stops the process at start, never later at a viewer's 403.
"""

import contextlib
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

from core.playback_tokens import MIN_SECRET_BYTES
from core.settings import Settings

SECRET_FILE = "playback-secret"  # noqa: S105 - a file name
MISSING = (
    "STREAMIFY_PLAYBACK_SECRET is required with an external database (every API node and nginx must share it); "
    'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
)


class SecretMissing(RuntimeError):
    pass


def secret_file(data_dir: Path) -> Path:
    return data_dir.resolve() / SECRET_FILE


@lru_cache(maxsize=8)
def _read_or_create(path: Path) -> str:
    if not path.exists():
        _create(path)
    value = path.read_text().strip()
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise SecretMissing(f"{path} holds a playback secret shorter than {MIN_SECRET_BYTES} bytes")
    return value


def _create(path: Path) -> None:
    """Write a complete secret to a temp file, then link it into place: `path` never exists half-written, so a
    process starting at the same moment (`streamify api --workers N` on a fresh data dir) reads a whole secret.
    os.link refuses to replace an existing file: the first process to link wins and everyone reads its secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process of this install won the race: use its secret
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def local_secret(data_dir: Path) -> str:
    """The data dir's secret, created on first use (for processes that share this data dir)."""
    return _read_or_create(secret_file(data_dir))


def playback_secret(settings: Settings) -> bytes:
    if settings.playback_secret is not None:
        return settings.playback_secret.get_secret_value().encode()
    if settings.database_url:
        raise SecretMissing(MISSING)
    return local_secret(settings.data_dir).encode()

"""Database engine, sessions and migrations, shared by the API, the workers and the CLI."""

from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import CursorResult, Engine, Result, event
from sqlmodel import create_engine

from core.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "schemas" / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # API and worker processes share the file
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


@lru_cache
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine(settings: Settings) -> Engine:
    """One engine per database URL in a process (workers, CLI); an API app holds its own (api.app)."""
    return _engine_for(settings.effective_database_url)


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed: its result is a CursorResult, though Session.execute is typed Result."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(settings: Settings) -> None:
    """Bring the schema to the newest revision; safe to run on every start."""
    command.upgrade(alembic_config(settings.effective_database_url), "head")

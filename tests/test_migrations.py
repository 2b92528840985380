"""The migrations build exactly the schema the models describe, on PostgreSQL and on SQLite, and undo it."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from core.db import alembic_config, make_engine
from schemas import tables  # noqa: F401  (registers the tables)
from tests.conftest import drop_pg_database, new_pg_database

TABLES = {"videos", "renditions", "transcode_jobs", "captions"}


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'streamify.db'}"
        return
    name, url = new_pg_database()
    yield url.replace("postgresql://", "postgresql+psycopg://")
    drop_pg_database(name)


def _diff(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)


def test_upgrade_matches_models_and_downgrade_removes_everything(database_url):
    cfg = alembic_config(database_url)
    engine = make_engine(database_url)
    try:
        command.upgrade(cfg, "head")
        assert set(inspect(engine).get_table_names()) >= TABLES
        assert _diff(engine) == []
        command.upgrade(cfg, "head")  # a second run (every `up` runs it) is a no-op
        command.downgrade(cfg, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        command.upgrade(cfg, "head")
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_videos_from_before_accounts_get_an_owner_that_cannot_sign_in(database_url):
    """Upgrading an install that already has videos keeps them, owned by a placeholder operator."""
    from sqlalchemy import text
    from sqlmodel import Session

    from core.accounts import authenticate

    cfg = alembic_config(database_url)
    engine = make_engine(database_url)
    try:
        command.upgrade(cfg, "0001")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO videos (id, title, status, progress, source_key, source_size, source_format,"
                    " has_video, has_audio, created_at, updated_at) VALUES ('0b0e2f5c9d8a4f0e8c1b2a3d4e5f6a7b',"
                    " 'old', 'ready', 1.0, 'k', 10, 'mov', true, true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT u.email, u.is_operator, v.visibility FROM videos v JOIN users u ON u.id = v.owner_id")
            ).one()
        assert tuple(row) == ("owner@localhost", True, "public")
        with Session(engine) as session:
            for guess in ("", "!", "password", "owner@localhost"):
                assert authenticate(session, "owner@localhost", guess) is None
    finally:
        engine.dispose()

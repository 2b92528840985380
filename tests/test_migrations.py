"""The migrations build exactly the schema the models describe, on PostgreSQL and on SQLite, and undo it."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel

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


@contextmanager
def _install(database_url: str, revision: str) -> Iterator[tuple]:
    """(alembic config, engine) of a database upgraded to `revision`: an install of that version."""
    cfg = alembic_config(database_url)
    engine = make_engine(database_url)
    try:
        command.upgrade(cfg, revision)
        yield cfg, engine
    finally:
        engine.dispose()


def _diff(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)


def test_upgrade_matches_models_and_downgrade_removes_everything(database_url):
    with _install(database_url, "head") as (cfg, engine):
        assert set(inspect(engine).get_table_names()) >= TABLES
        assert _diff(engine) == []
        command.upgrade(cfg, "head")  # a second run (every `up` runs it) is a no-op
        command.downgrade(cfg, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        command.upgrade(cfg, "head")
        assert _diff(engine) == []


def test_videos_from_before_accounts_get_an_owner_that_cannot_sign_in(database_url):
    """Upgrading an install that already has videos keeps them, owned by a placeholder operator."""
    from core.accounts import authenticate

    with _install(database_url, "0001") as (cfg, engine):
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


def test_failed_jobs_from_before_failure_kinds_keep_the_kind_metrics_gave_them(database_url):
    """Upgrading keeps /metrics' failure counts: each old failed job gets the kind its message was counted as."""
    from api.metrics import read_facts
    from schemas.tables import FailureKind

    old = {  # error written by the version before 0005 -> the label /metrics gave it
        "ffmpeg exited with status 1: Conversion failed!": "ffmpeg",
        "source is truncated or corrupt: only 2.9 s of its 8.0 s could be decoded": "corrupt_source",
        "Corrupt or truncated media file: Invalid data found": "corrupt_source",
        "encoded output is incomplete: [Errno 2] No such file": "incomplete_output",
        "master playlist invalid: no CODECS": "invalid_master",
        "thumbnails failed: sprite sheets: ffmpeg exited with status 1": "thumbnails",
        "worker lost 3 times; giving up": "worker_lost",
        "internal error: KeyError: 'x'": "internal",
        "no decodable video or audio: the file has no video or audio stream": "no_decodable_stream",
        "container format 'hls' is not accepted": "refused_format",
        "my_holiday_in_paris.mp4 did something odd": "other",
        None: "other",
    }
    with _install(database_url, "0004") as (cfg, engine):
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, display_name, password_hash, is_operator, created_at)"
                    " VALUES (:id, 'a@example.test', 'a', 'x', false, CURRENT_TIMESTAMP)"
                ),
                {"id": uuid.UUID(int=1).hex},
            )
            rows = [(error, "failed") for error in old] + [(None, "succeeded"), ("cancelled", "cancelled")]
            for i, (error, state) in enumerate(rows, start=2):
                ids = {"id": uuid.UUID(int=i).hex, "owner": uuid.UUID(int=1).hex}  # as SQLite stores them
                conn.execute(
                    text(
                        "INSERT INTO videos (id, owner_id, title, description, visibility, status, progress,"
                        " source_key, source_size, source_format, has_video, has_audio, created_at, updated_at)"
                        " VALUES (:id, :owner, 't', '', 'public', 'failed', 0, 'k', 1, 'mov', true, true,"
                        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    ids,
                )
                conn.execute(
                    text(
                        "INSERT INTO transcode_jobs (id, video_id, owner_id, state, priority, cancel_requested,"
                        " attempts, progress, error, created_at, queued_at) VALUES (:id, :id, :owner, :state, 0,"
                        " false, 1, 0, :error, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {**ids, "state": state, "error": error},
                )
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            kinds = dict(
                conn.execute(text("SELECT error, failure_kind FROM transcode_jobs WHERE state = 'failed'")).all()
            )
            others = conn.execute(text("SELECT failure_kind FROM transcode_jobs WHERE state <> 'failed'")).all()
        assert kinds == old
        assert set(kinds.values()) <= set(FailureKind)
        assert others == [(None,), (None,)]  # succeeded and cancelled jobs did not fail
        with Session(engine) as session:  # what the next scrape reports
            assert read_facts(session).failures == {"ffmpeg": 1, "corrupt_source": 2, "incomplete_output": 1,
                                                    "invalid_master": 1, "thumbnails": 1, "worker_lost": 1,
                                                    "internal": 1, "no_decodable_stream": 1, "refused_format": 1,
                                                    "other": 2}  # fmt: skip

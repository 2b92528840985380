"""A source blob stored by a node that died before recording its video is deleted by the periodic cleanup,
once older than the grace period; recorded videos' sources and keys that are not a video's are never touched."""

import contextlib
import io
import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import httpx
import psycopg
import pytest
from azure.storage.blob import BlobServiceClient
from sqlmodel import Session

from core.accounts import create_user
from core.blobs import make_stores
from core.db import make_engine, migrate
from core.media_keys import source_key
from core.settings import Settings
from ingest.housekeeping import sweep_orphaned_sources
from schemas.tables import Video
from tests.conftest import drop_pg_database, new_pg_database, start_api, stop, wait_for

FOREIGN_KEYS = ("backups/readme.txt", f"{str(uuid.uuid4()).upper()}/source")  # not as media_prefix writes ids


@pytest.fixture(params=["embedded", "azure"])
def install(request, tmp_path) -> Iterator[Settings]:
    """An embedded install (SQLite, blobs on disk), and one on PostgreSQL + Azurite with containers of its own."""
    if request.param == "embedded":
        settings = Settings(data_dir=tmp_path)
        migrate(settings)
        yield settings
        return
    azurite = request.getfixturevalue("azurite")
    name, url = new_pg_database()
    tag = secrets.token_hex(3)
    settings = Settings(
        data_dir=tmp_path,
        database_url=url.replace("postgresql://", "postgresql+psycopg://"),
        azure_connection_string=azurite.connection_string,
        azure_media_container=f"orphans-media-{tag}",
        azure_source_container=f"orphans-sources-{tag}",
        playback_secret=secrets.token_urlsafe(48),
    )
    migrate(settings)
    try:
        yield settings
    finally:
        drop_pg_database(name)


def recorded_video(settings: Settings) -> uuid.UUID:
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            owner = create_user(session, f"kept-{secrets.token_hex(3)}@example.test", "correct horse battery")
            video = Video(owner_id=owner.id, title="kept", source_key="", source_size=4, source_format="mp4")
            video.source_key = source_key(video.id)
            session.add(video)
            session.commit()
            return video.id
    finally:
        engine.dispose()


def test_only_old_sources_without_a_video_row_are_deleted(install):
    store = make_stores(install).sources
    store.ensure()
    kept, orphan = recorded_video(install), uuid.uuid4()
    for key in (source_key(kept), source_key(orphan), *FOREIGN_KEYS):
        store.put_stream(key, io.BytesIO(b"data"))
    everything = sorted([source_key(kept), source_key(orphan), *FOREIGN_KEYS])

    now = datetime.now(UTC)
    assert sweep_orphaned_sources(install, now) == 0  # younger than the grace period: maybe being recorded now
    assert store.list("") == everything
    grace = timedelta(seconds=install.orphan_source_grace_seconds)
    assert sweep_orphaned_sources(install, now + grace + timedelta(seconds=5)) == 1
    assert store.list("") == sorted([source_key(kept), *FOREIGN_KEYS])


def test_a_node_killed_between_storing_and_recording_leaves_no_orphan(stack, azurite, clips):
    """Real fault: PostgreSQL holds the video row's INSERT (a trigger sleeping for this creator only) after the
    node has stored the source; the node is SIGKILLed there, so the row never commits. Another node's startup
    cleanup (grace 1 s here, 1 h by default) deletes the blob; a recorded video's source stays."""
    container = f"orphans-{secrets.token_hex(4)}"
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    email, token = stack.new_user()
    pg = stack.database_url.replace("+psycopg", "")
    admin = psycopg.connect(pg, autocommit=True)
    owner = admin.execute("SELECT id FROM users WHERE email = %s", (email,)).fetchone()[0]
    fn = f"hold_{owner.hex[:12]}"
    admin.execute(
        f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.owner_id = '{owner}'::uuid THEN PERFORM pg_sleep(120); END IF; RETURN NEW; END $$"
    )
    admin.execute(f"CREATE TRIGGER {fn} BEFORE INSERT ON videos FOR EACH ROW EXECUTE FUNCTION {fn}()")
    env = {**stack.env, "STREAMIFY_AZURE_SOURCE_CONTAINER": container}
    held = "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query ILIKE 'INSERT INTO videos%%'"
    kept = None
    try:
        proc, url = start_api(env, stack.logs)
        try:
            data = clips["720p_short"].read_bytes()
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=180)
            uploading = threading.Thread(target=_post_ignoring_errors, args=(client, data), daemon=True)
            uploading.start()
            wait_for(lambda: admin.execute(held).fetchone(), "the video row's INSERT to be held", timeout=60)
            stored = [b.name for b in blobs.list_blobs()]
            assert len(stored) == 1 and stored[0].endswith("/source"), stored  # stored before it is recorded
        finally:
            proc.kill()
            proc.wait()
        # The dead node's transaction would sit in pg_sleep; end it as PostgreSQL would once it noticed.
        for (pid,) in admin.execute(held).fetchall():
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        uploading.join(timeout=30)
        admin.execute(f"DROP TRIGGER {fn} ON videos")
        assert admin.execute("SELECT count(*) FROM videos WHERE owner_id = %s", (owner,)).fetchone()[0] == 0
        orphan = stored[0]
        assert blobs.get_blob_client(orphan).exists()  # the leak this cleanup exists for

        kept = uuid.uuid4()
        admin.execute(
            "INSERT INTO videos (id, owner_id, title, description, visibility, status, progress, source_key,"
            " source_size, source_format, has_video, has_audio, created_at, updated_at) VALUES"
            " (%s, %s, 'kept', '', 'private', 'uploaded', 0, %s, 4, 'mp4', true, true, now(), now())",
            (kept, owner, source_key(kept)),
        )
        for key in (source_key(kept), *FOREIGN_KEYS):
            blobs.upload_blob(key, b"data")

        proc, url = start_api({**env, "STREAMIFY_ORPHAN_SOURCE_GRACE_SECONDS": "1"}, stack.logs)
        try:
            wait_for(lambda: not blobs.get_blob_client(orphan).exists(), "the orphaned source to go", timeout=30)
            log = stack.logs / f"api-{urlparse(url).port}.log"
            video_id = orphan.split("/", 1)[0]
            wait_for(lambda: f"deleted the source of video {video_id}" in log.read_text(), "the deletion logged", 10)
        finally:
            stop(proc)
        assert sorted(b.name for b in blobs.list_blobs()) == sorted([source_key(kept), *FOREIGN_KEYS])
    finally:
        admin.execute(f"DROP TRIGGER IF EXISTS {fn} ON videos")
        admin.execute(f"DROP FUNCTION IF EXISTS {fn}()")
        if kept:
            admin.execute("DELETE FROM videos WHERE id = %s", (kept,))
        admin.close()
        if blobs.exists():
            blobs.delete_container()


def _post_ignoring_errors(client: httpx.Client, data: bytes) -> None:
    with client, contextlib.suppress(httpx.HTTPError):  # its node is killed under it
        client.post("/api/v1/videos", files={"file": ("clip.mp4", data)})

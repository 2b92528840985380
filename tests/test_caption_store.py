"""Captions at rest, on a migrated SQLite database and a real local blob store: rows and files stay in step,
including when the database or the disk refuses a write halfway."""

import io
import uuid

import pytest
from sqlmodel import Session, select

from api.caption_store import MAX_TRACKS, attach_caption, list_captions, remove_caption
from api.errors import status_for
from core.blobs import LocalBlobStore
from core.db import alembic_config, make_engine
from core.errors import Refused
from schemas.tables import Caption, User, Video

VTT = "WEBVTT\n\n00:00.000 --> 00:01.000\n{}\n"


@pytest.fixture
def db(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.fixture
def store(tmp_path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "media", "/media")


@pytest.fixture
def video(db) -> Video:
    owner = User(email="o@example.test", display_name="o", password_hash="!")
    db.add(owner)
    db.flush()
    row = Video(owner_id=owner.id, title="t", source_key="k", source_size=1, source_format="mp4")
    db.add(row)
    db.commit()
    return row


def files(store: LocalBlobStore, video: Video) -> list[str]:
    return store.list(f"{video.id}/captions/")


def test_attach_replace_and_remove_keep_rows_and_files_in_step(db, store, video):
    en, clean = attach_caption(db, store, video, VTT.format("one").encode(), "en")
    assert clean.cue_count == 1 and files(store, video) == [en.blob_key]
    assert store.read_bytes(en.blob_key).decode() == clean.vtt

    replaced, _ = attach_caption(db, store, video, VTT.format("two").encode(), "EN")
    assert replaced.id == en.id and files(store, video) == [replaced.blob_key]
    assert "two" in store.read_bytes(replaced.blob_key).decode()

    same, _ = attach_caption(db, store, video, VTT.format("two").encode(), "en", label="Same file")
    assert same.blob_key == replaced.blob_key and same.label == "Same file"  # unchanged file: not rewritten
    assert files(store, video) == [same.blob_key]

    attach_caption(db, store, video, VTT.format("um").encode(), "pt-BR", default=True)
    attach_caption(db, store, video, VTT.format("one").encode(), "fr", default=True)
    assert [(c.language, c.is_default) for c in list_captions(db, video.id)] == [
        ("en", False),
        ("fr", True),
        ("pt-BR", False),
    ]
    assert attach_caption(db, store, video, VTT.format("one").encode(), "fr", default=True)[0].is_default

    remove_caption(db, store, video, "PT-br")
    assert [c.language for c in list_captions(db, video.id)] == ["en", "fr"] and len(files(store, video)) == 2
    with pytest.raises(Refused) as info:
        remove_caption(db, store, video, "pt-BR")
    assert status_for(info.value.reason) == 404


def test_a_refused_file_writes_nothing(db, store, video):
    with pytest.raises(Refused):
        attach_caption(db, store, video, b"not captions", "en")
    with pytest.raises(Refused):
        attach_caption(db, store, video, VTT.format("x").encode(), "not a language")
    assert list_captions(db, video.id) == [] and files(store, video) == []


def test_a_row_the_database_refuses_leaves_no_file(db, store, video):
    """The video is gone by the time the row is written (foreign key): the file just stored is removed."""
    ghost = Video(id=uuid.uuid4(), owner_id=video.owner_id, title="g", source_key="k", source_size=1, source_format="x")
    with pytest.raises(Refused) as info:
        attach_caption(db, store, ghost, VTT.format("x").encode(), "en")
    assert status_for(info.value.reason) == 409
    assert store.list(f"{ghost.id}/") == []
    assert db.exec(select(Caption)).all() == []


def test_a_file_the_store_refuses_leaves_no_row(db, store, video):
    """The disk refuses the write (a file sits where the language's folder must go): 503, no row."""
    store.put_stream(f"{video.id}/captions/en", io.BytesIO(b"in the way"))
    with pytest.raises(Refused) as info:
        attach_caption(db, store, video, VTT.format("x").encode(), "en")
    assert status_for(info.value.reason) == 503 and "storage unavailable" in info.value.detail
    assert list_captions(db, video.id) == []


def test_languages_per_video_are_bounded(db, store, video):
    languages = ["en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "fi", "pl", "cs", "sk", "hu", "ro", "bg", "el"]
    languages += ["tr", "ru", "uk", "ar", "he", "fa", "hi", "bn", "ta", "te", "th", "vi", "id", "ms", "ja", "ko"]
    languages += ["zh-Hans", "zh-Hant", "ca", "eu", "gl", "hr", "sr", "sl", "lt", "lv", "et", "is", "ga", "cy"]
    languages += ["mt", "sq", "mk"]
    assert len(set(languages)) == MAX_TRACKS
    for language in languages:
        attach_caption(db, store, video, VTT.format(language).encode(), language)
    with pytest.raises(Refused) as info:
        attach_caption(db, store, video, VTT.format("one more").encode(), "hy")
    assert status_for(info.value.reason) == 409 and str(MAX_TRACKS) in info.value.detail
    assert len(files(store, video)) == MAX_TRACKS
    attach_caption(db, store, video, VTT.format("replaced").encode(), "en")  # replacing still works

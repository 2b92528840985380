"""Captions at rest: one row per (video, language), the cleaned WebVTT in the media store beside the
renditions (under the video's media prefix, so deleting the video removes it; re-transcodes keep it).

A refused file leaves nothing behind: it is parsed before any write, a failed row write deletes the new
blob, and a replaced file's old blob is deleted only once the row points at the new one.
"""

import io
import logging
import uuid

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.captions import CleanCaptions, clean_label, normalize_language, parse_captions
from core.blobs import BlobStore
from core.errors import Refusal, Refused
from core.media_keys import caption_key
from schemas.tables import Caption, Video, utcnow

log = logging.getLogger(__name__)
MAX_TRACKS = 50  # languages per video


def list_captions(session: Session, video_id: uuid.UUID) -> list[Caption]:
    return list(session.exec(select(Caption).where(Caption.video_id == video_id).order_by(Caption.language)))


def find_caption(session: Session, video_id: uuid.UUID, language: str) -> Caption | None:
    """The row for a language given in any case or alias ("PT-br"); None when there is none."""
    try:
        language = normalize_language(language)
    except Refused:
        return None
    return session.exec(select(Caption).where(Caption.video_id == video_id, Caption.language == language)).first()


def _delete_blob(store: BlobStore, key: str) -> None:
    try:
        store.delete_prefix(key)  # the exact key: names end in "<digest>.vtt", so it prefixes no other blob
    except Exception:  # an orphan costs bytes, not correctness: the row no longer names it
        log.warning("could not delete caption blob %s", key, exc_info=True)


def attach_caption(
    session: Session,
    store: BlobStore,
    video: Video,
    data: bytes,
    language: str,
    label: str | None = None,
    default: bool = False,
) -> tuple[Caption, CleanCaptions]:
    """Store a caption file for one language, replacing that language's previous file if any."""
    language = normalize_language(language)
    label = clean_label(label, language)
    clean = parse_captions(data)
    existing = list_captions(session, video.id)
    row = next((c for c in existing if c.language == language), None)
    if row is None and len(existing) >= MAX_TRACKS:
        raise Refused(Refusal.conflict, f"this video already has {MAX_TRACKS} caption tracks: delete one first")
    old_key = row.blob_key if row else None
    key = caption_key(video.id, language, clean.digest)
    if key != old_key:
        try:
            store.put_stream(key, io.BytesIO(clean.vtt.encode()))
        except Exception as exc:  # the store's own message (account, host, request id) stays in the log
            log.exception("storing caption %s failed", key)
            raise Refused(Refusal.unavailable, "storage unavailable, caption not saved: try again later") from exc
    row = row or Caption(video_id=video.id, language=language, label=label, blob_key=key)
    row.label, row.is_default, row.blob_key, row.created_at = label, default, key, utcnow()
    try:
        if default:  # one default track per video
            others = (col(Caption.video_id) == video.id, col(Caption.language) != language)
            session.execute(update(Caption).where(*others).values(is_default=False))
        session.add(row)
        session.commit()
    except Exception as exc:
        session.rollback()
        if key != old_key:
            _delete_blob(store, key)
        if isinstance(exc, IntegrityError):  # another upload of this language won the race, or the video went
            raise Refused(
                Refusal.conflict, f"the {language} caption changed meanwhile, or the video was deleted"
            ) from exc
        raise
    session.refresh(row)
    if old_key and old_key != key:
        _delete_blob(store, old_key)
    return row, clean


def remove_caption(session: Session, store: BlobStore, video: Video, language: str) -> None:
    row = find_caption(session, video.id, normalize_language(language))
    if row is None:
        raise Refused(Refusal.not_found, f"video {video.id} has no {language[:40]!r} caption")
    key = row.blob_key
    session.delete(row)
    session.commit()
    _delete_blob(store, key)  # after the row: a player never gets a playlist naming a missing file

"""Webhook events the API itself emits: a video deleted by its owner, an upload refused. The workers emit the
others (ready, failed, playable) in the transactions that make them so (core/webhook_outbox.py)."""

import logging
import uuid
from collections.abc import Callable

from sqlmodel import Session, col, select

from core.errors import Refused
from core.webhook_outbox import emit, video_data
from schemas.tables import Rendition, Video, WebhookEventType

log = logging.getLogger(__name__)


def emit_deleted(session: Session, video: Video) -> int:
    """Into the transaction that deletes the video: the event says what it was."""
    renditions = list(session.execute(select(Rendition).where(col(Rendition.video_id) == video.id)).scalars())
    data = {**video_data(video, renditions), "status": "deleted"}
    return emit(session, WebhookEventType.video_deleted, video.owner_id, data, video_id=video.id)


def report_refused_upload(
    session: Session,
    bell: Callable[[str], None],
    owner_id: uuid.UUID,
    refusal: Refused,
    *,
    filename: str | None,
    title: str | None,
    upload_id: str | None = None,
) -> None:
    """`upload.refused` for an upload whose bytes were refused (nothing of it is kept, so the event is the only
    change: its own transaction). Never raises: the creator must get the refusal itself whatever happens here."""
    data = {
        "upload_id": upload_id,
        "filename": filename,
        "title": title,
        "reason": str(refusal.reason),
        "error": refusal.detail,
    }
    try:
        session.rollback()  # whatever the ingest left open
        if emit(session, WebhookEventType.upload_refused, owner_id, data):
            session.commit()
            bell("upload refused")
    except Exception:
        log.warning("could not record the upload.refused webhook event", exc_info=True)
        session.rollback()

"""Dependencies injected into routes with Depends."""

import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, HTTPException
from sqlmodel import Session

from core.blobs import Stores, make_stores
from core.db import get_session
from core.settings import Settings, get_settings
from schemas.tables import Video


@lru_cache
def _stores(settings_json: str) -> Stores:
    return make_stores(Settings.model_validate_json(settings_json))


def get_stores(settings: Annotated[Settings, Depends(get_settings)]) -> Stores:
    """One set of store clients per configuration (keeps Azure connection pools and SAS caches warm)."""
    return _stores(settings.model_dump_json(exclude={"effective_database_url", "effective_broker_url"}))


def get_enqueue() -> Callable[[uuid.UUID], None]:
    from workers.celery_app import enqueue_transcode

    return enqueue_transcode


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
StoresDep = Annotated[Stores, Depends(get_stores)]
EnqueueDep = Annotated[Callable[[uuid.UUID], None], Depends(get_enqueue)]


def get_video(video_id: uuid.UUID, session: SessionDep) -> Video:
    video = session.get(Video, video_id)
    if video is None:
        raise HTTPException(404, f"video {video_id} not found")
    return video


VideoDep = Annotated[Video, Depends(get_video)]

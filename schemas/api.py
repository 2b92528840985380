"""What the API returns: kept apart from the tables so storage details never leak to clients."""

import uuid
from datetime import datetime

from pydantic import BaseModel


class RenditionRead(BaseModel):
    name: str
    width: int | None
    height: int | None
    frame_rate: float | None
    bandwidth: int
    average_bandwidth: int
    codecs: str


class VideoRead(BaseModel):
    id: uuid.UUID
    title: str
    status: str
    progress: float
    error: str | None
    duration: float | None
    width: int | None
    height: int | None
    has_video: bool
    has_audio: bool
    created_at: datetime
    renditions: list[RenditionRead]
    playback_url: str | None
    watch_url: str


class VideoPage(BaseModel):
    items: list[VideoRead]
    total: int
    limit: int
    offset: int


class Problem(BaseModel):
    detail: str

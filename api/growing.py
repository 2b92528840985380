"""Playlists of a video still encoding: rendered per request from its parts (core.progressive), never cached.

The published prefix only grows by whole ranges, so a player polling an EVENT playlist never sees a segment
change or vanish; when the last part lands, the finished playlists (stored on the video) take over with the
same segments and ENDLIST.
"""

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException
from sqlmodel import Session, col, select

from core import hls
from core.media_keys import encode_prefix
from core.parts import parts_of
from core.progressive import PartView, Published, first_range_codecs, master_for, published
from schemas.tables import JobPart, JobState, TranscodeJob, Video


@dataclass(frozen=True)
class Growing:
    root: str  # the encode's folder in the media store
    plan: dict
    parts: list[JobPart]
    pub: Published

    def master(self) -> str:
        return master_for(self.plan, first_range_codecs(self.parts), self.pub)[0]

    def media(self, rendition: str, url: Callable[[str], str]) -> str:
        """The rendition's EVENT playlist, naming its files by `url(store key)` (signed for a private video)."""
        segments = self.pub.renditions.get(rendition)
        if not segments:  # names come from the database only: a path parameter never reaches storage
            raise HTTPException(404, f"rendition {rendition!r} not found")
        return hls.media_playlist(
            [s.duration for s in segments],
            target_duration=int(self.plan.get("target_duration", 4)),
            complete=False,
            init=url(self.root + self.pub.inits[rendition]),
            uris=[url(self.root + s.uri) for s in segments],
        )


def growing(session: Session, video: Video) -> Growing:
    """The encode in progress whose start plays; 404 when there is none (it just finished: the client retries)."""
    job = session.exec(
        select(TranscodeJob).where(
            col(TranscodeJob.video_id) == video.id,
            col(TranscodeJob.state) == JobState.running,
            col(TranscodeJob.planned_at).is_not(None),
        )
    ).first()
    if job is None or job.lease is None or job.plan is None:
        raise HTTPException(404, f"video {video.id} is not ready to play (status: {video.status})")
    parts = parts_of(session, job.id, job.lease)
    pub = published([PartView.of(p) for p in parts], video.duration or 0.0)
    return Growing(encode_prefix(video.id, job.lease), job.plan, parts, pub)

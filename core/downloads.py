"""Downloads (issue 15): an MP4 of one H.264 rung with the audio and an M4A of the audio, for whoever may watch.

The owner's choice is on the video (`downloads_enabled`, `download_rendition`); each wanted file is a Download
row. The files are made by a part of the job whose encode is published (PartKind.download, workers.download_part),
so the database queue, leases and the reaper that run every other part run this one too: a worker lost while
remuxing gives the part to another, and one lost too often fails the rows instead of leaving them pending.

Rows and part are (re)made together: when the owner turns downloads on or picks another rung on a ready video
(api.downloads), and when an encode becomes ready with downloads on (workers.parts.finish_if_complete): a
download asked for while the video encodes is made when it is ready, and a re-transcode makes them again.
"""

import uuid

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from core.errors import Refusal, Refused
from core.media_keys import encode_prefix
from core.progressive import AUDIO_RENDITION
from schemas.tables import (
    Download,
    DownloadKind,
    DownloadState,
    JobPart,
    JobState,
    PartKind,
    Rendition,
    TranscodeJob,
    Video,
    utcnow,
)

H264_CODECS = "avc1."  # RFC 6381 prefix of an H.264 rung's CODECS (AV1 twins are av01.)


def h264_rungs(renditions: list[Rendition]) -> list[str]:
    """The published H.264 rungs, best first (the audio rendition and AV1 twins are not rungs of an MP4)."""
    rungs = [r for r in renditions if r.name != AUDIO_RENDITION and r.codecs.startswith(H264_CODECS)]
    return [r.name for r in sorted(rungs, key=lambda r: ((r.height or 0), r.bandwidth), reverse=True)]


def planned_rungs(plan: dict | None) -> list[str] | None:
    """The H.264 rungs a planned encode will publish, best first; None before it is planned."""
    if not plan or "renditions" not in plan:
        return None
    rungs = [r for r in plan["renditions"] if r.get("codec", "h264") == "h264"]
    return [r["name"] for r in sorted(rungs, key=lambda r: (r.get("height") or 0, r.get("maxrate_kbps") or 0),
                                       reverse=True)]  # fmt: skip


def choose_rendition(requested: str | None, rungs: list[str] | None, *, has_video: bool) -> str | None:
    """The rung the MP4 is made of: the one asked for if the ladder has it, else the top H.264 rung. None when
    it is not known yet (the default asked for before the ladder is planned) or there is no picture.
    Refused (422) for a rung the ladder lacks; (409) for a named rung before the ladder is planned."""
    if not has_video:
        if requested is not None:
            raise Refused(Refusal.invalid, "this video has no picture: only its audio (M4A) can be downloaded")
        return None
    if rungs is None:
        if requested is not None:
            raise Refused(
                Refusal.conflict,
                "the video's ladder is not planned yet: turn downloads on without a rendition (the top rung), or "
                "choose one once it is encoding",
            )
        return None
    if requested is None:
        return rungs[0] if rungs else None
    if requested not in rungs:
        raise Refused(
            Refusal.invalid, f"this video has no H.264 rendition {requested!r}: choose one of {', '.join(rungs)}"
        )
    return requested


def wanted_rows(video: Video, rendition: str | None, rungs: list[str] | None) -> list[Download]:
    """The files a video with downloads on should have, all pending: the MP4 if it has a picture, the M4A if it
    has sound. With the ladder known and the owner's rung missing from it (a re-transcode dropped it), the MP4
    row is failed with the reason, never silently another rung."""
    rows: list[Download] = []
    if video.has_video:
        row = Download(video_id=video.id, kind=DownloadKind.video, rendition=rendition)
        if rungs is not None and rendition not in rungs:
            asked = video.download_rendition or "the top rung"
            row.state, row.error = DownloadState.failed, f"{asked} is not in this video's ladder"
        rows.append(row)
    if video.has_audio:
        rows.append(Download(video_id=video.id, kind=DownloadKind.audio, rendition=AUDIO_RENDITION))
    return rows


def replace_rows(session: Session, video: Video, rows: list[Download]) -> None:
    """The video's Download rows become `rows`; any download part of it stops (an attempt running one finds it
    gone at its next beat and removes its own files). The caller commits."""
    session.execute(delete(JobPart).where(col(JobPart.video_id) == video.id, col(JobPart.kind) == PartKind.download))
    session.execute(delete(Download).where(col(Download.video_id) == video.id))
    session.flush()
    for row in rows:
        session.add(row)


def published_job(session: Session, video: Video) -> TranscodeJob | None:
    """The succeeded job whose encode the video shows (its lease names the folder): the job a download part
    belongs to. None for an encode from before per-attempt folders (migration 0006)."""
    if video.media_root is None:
        return None
    jobs = session.execute(
        select(TranscodeJob).where(
            col(TranscodeJob.video_id) == video.id,
            col(TranscodeJob.state) == JobState.succeeded,
            col(TranscodeJob.lease).is_not(None),
        )
    ).scalars()
    return next((j for j in jobs if j.lease and encode_prefix(video.id, j.lease) == video.media_root), None)


def download_part(job: TranscodeJob) -> JobPart:
    """The part that makes the video's pending downloads from the job's published encode."""
    assert job.lease is not None
    return JobPart(job_id=job.id, video_id=job.video_id, generation=job.lease, kind=PartKind.download)


def fail_pending(engine: Engine, job_id: uuid.UUID, reason: str) -> None:
    """The download part of this job was given up (its worker lost too often): its rows say so, never pending."""
    with Session(engine) as s:
        video_id = s.execute(select(col(TranscodeJob.video_id)).where(col(TranscodeJob.id) == job_id)).scalar()
        if video_id is not None:
            s.execute(
                update(Download)
                .where(col(Download.video_id) == video_id, col(Download.state) == DownloadState.pending)
                .values(state=DownloadState.failed, error=reason, finished_at=utcnow())
            )
        s.commit()

"""The quality part of a job (PartKind.quality): once the video is ready, VMAF of every rung against the source,
stored on its rendition row. Planned by workers.quality; fetched and run here.

It never holds a video back and never fails one: it is queued after `ready` and claimed after every other
part (core.parts), and a rung it cannot measure (the source gone from the store, a segment missing, libvmaf
failing) keeps a null score, with a note on the job saying why (core.notes).
"""

import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, col, select

from core.blobs import BlobNotFound, BlobStore, Stores
from core.db import affected, get_engine
from core.ffmpeg import ffmpeg_exe
from core.media_keys import encode_prefix
from core.media_limits import MediaLimits
from core.notes import add_note
from core.parts import ClaimedPart, part_held, parts_of
from core.progressive import PartView, Published, published
from core.settings import Settings
from schemas.tables import JobPart, NoteKind, PartKind, PartState, Rendition, Video, utcnow
from workers.job import Stop
from workers.ladder import VideoRendition
from workers.pipeline import BACKGROUND_NICE, Prepared, Stopped, TranscodeError, run_ffmpeg, watchdog_for
from workers.quality import Score, build_vmaf_argv, parse_vmaf_log, plan_windows, pooled
from workers.sources import local_source

log = logging.getLogger(__name__)
VMAF_THREADS = 2  # libvmaf's threads per run: the part runs beside encodes, one per core


@dataclass(frozen=True)
class Encoded:
    """The published encode the scores are for: its folder and the segments its playlists list."""

    root: str
    pub: Published


def run_quality(part: ClaimedPart, settings: Settings, stores: Stores, work: Path, stop: Stop, started: float) -> str:
    """Measure every rung; record the scores (and why any is missing) if this attempt still holds the part."""
    from workers.parts import _prepared  # noqa: PLC0415 (workers.parts dispatches here)

    engine = get_engine(settings)
    scores: dict[str, Score] = {}
    problems: list[str] = []
    rungs: tuple[VideoRendition, ...] = ()
    try:
        encoded = _published_encode(engine, part)
        if encoded is None:
            raise Stopped  # a newer encode replaced this one: its own quality part measures it
        prepared = _prepared(engine, part, settings)
        rungs = prepared.plan.renditions
        src = local_source(settings, stores.sources, part.source_key, part.video_id, part.generation)
        for rung in rungs:
            try:
                scores[rung.name] = measure_rung(rung, prepared, encoded, src, stores.media, work, settings, stop)
            except Stopped:
                raise
            except Exception as exc:
                problems.append(f"{rung.name}: {_why(exc)}")
    except Stopped:
        raise
    except Exception as exc:
        problems.append(f"every rung: {_why(exc)}")
    _record(engine, part, rungs, scores, problems, stop, time.monotonic() - started)
    if problems:
        add_note(engine, part.job_id, NoteKind.vmaf_failed, "VMAF not measured for " + "; ".join(problems))
    return PartState.succeeded if scores else PartState.failed


def _why(exc: Exception) -> str:
    """The cause in a sentence: ffmpeg's reason, a file missing from a store, or the exception."""
    if isinstance(exc, TranscodeError):
        return exc.reason
    if isinstance(exc, BlobNotFound):
        return f"{exc.args[0]} is missing from the store"
    return f"{type(exc).__name__}: {exc}"


def _published_encode(engine, part: ClaimedPart) -> Encoded | None:
    """The segments of the encode this part belongs to, if the video still shows it."""
    root = encode_prefix(part.video_id, part.generation)
    with Session(engine) as s:
        video = s.get(Video, part.video_id)
        if video is None or video.media_root != root:
            return None
        rows = parts_of(s, part.job_id, part.generation)
        return Encoded(root, published([PartView.of(p) for p in rows], video.duration or 0.0))


def measure_rung(
    rung: VideoRendition,
    prepared: Prepared,
    encoded: Encoded,
    src: Path,
    store: BlobStore,
    work: Path,
    settings: Settings,
    stop: Stop | None = None,
) -> Score:
    """One rung, window by window (workers.quality.plan_windows): each window's segments are fetched from the
    store behind the rung's init segment, as a player's buffer holds them, and compared with the source."""
    segments = encoded.pub.renditions.get(rung.name)
    init_key = encoded.pub.inits.get(rung.name)
    if not segments or init_key is None:
        raise ValueError("the rung has no published segments")
    windows = plan_windows(
        [s.duration for s in segments],
        [r.start for r in prepared.ranges],
        rung.fps,
        full_seconds=settings.vmaf_full_seconds,
        sample_seconds=settings.vmaf_sample_seconds,
    )
    init = store.read_bytes(encoded.root + init_key)
    limits = MediaLimits.from_settings(settings)
    scores = []
    for i, window in enumerate(windows):
        name = f"{rung.name}.{i}"
        rung_file = work / f"{name}.mp4"
        with rung_file.open("wb") as f:
            f.write(init)
            for seg in segments[window.first : window.first + window.count]:
                f.write(store.read_bytes(encoded.root + seg.uri))
        log_path = work / f"{name}.vmaf.json"
        argv = build_vmaf_argv(
            prepared.plan, rung, window, src, prepared.info.demuxer, rung_file, log_path,
            n_threads=VMAF_THREADS, max_pixels=limits.max_pixels, ffmpeg_exe=ffmpeg_exe(settings),
        )  # fmt: skip
        run_ffmpeg(argv, window.length, work / f"{name}.log", should_stop=stop,
                   watchdog=watchdog_for(window.length, settings), nice=BACKGROUND_NICE)  # fmt: skip
        scores.append(parse_vmaf_log(log_path.read_text()))
        rung_file.unlink()
    return pooled(scores)


def _record(
    engine,
    part: ClaimedPart,
    rungs: tuple[VideoRendition, ...],
    scores: dict[str, Score],
    problems: list[str],
    stop: Stop,
    seconds: float,
) -> None:
    """The part's end and the rungs' scores in one transaction, fenced by the part's lease; scores only onto the
    rendition rows of the encode they were measured on (a re-transcode may have replaced it meanwhile)."""
    root = encode_prefix(part.video_id, part.generation)
    fps = {r.name: float(r.fps) for r in rungs}
    with Session(engine) as s:
        done = update(JobPart).where(*part_held(part)).values(
            state=PartState.succeeded if scores else PartState.failed, progress=1.0, finished_at=utcnow(),
            encode_seconds=round(seconds, 3), error="; ".join(problems)[:2000] or None,
        )  # fmt: skip
        if not affected(s.execute(done)):
            s.rollback()
            stop.lost.set()
            raise Stopped
        shown = s.execute(
            select(col(Video.id)).where(col(Video.id) == part.video_id, col(Video.media_root) == root)
        ).first()
        if shown is not None:
            for name, score in scores.items():
                s.execute(
                    update(Rendition)
                    .where(col(Rendition.video_id) == part.video_id, col(Rendition.name) == name)
                    .values(vmaf=round(score.mean, 2), vmaf_seconds=round(score.frames / fps[name], 3))
                )
        s.commit()
    log.info("video %s: VMAF %s", part.video_id, {n: round(s.mean, 2) for n, s in scores.items()} or "none")


def quality_part(job_id: uuid.UUID, video_id: uuid.UUID, generation: uuid.UUID) -> JobPart:
    """The row that queues the measurement (workers.parts.finish_if_complete adds it with `ready`)."""
    return JobPart(job_id=job_id, video_id=video_id, generation=generation, kind=PartKind.quality)

"""The download part of a job (PartKind.download): the video's pending downloads, remuxed from its published
segments (workers.remux: init + segments of a rung and of the audio, copied, never encoded again) and stored in
the encode's downloads folder (core.media_keys.downloads_prefix).

Like every part it holds a lease: its files carry the attempt's tag, its record is fenced by the lease, and an
attempt that lost its part (the owner turned downloads off or chose another rung; a frozen worker woken up)
removes its own files only (workers.parts._end). It never touches the video's status: a failure is written on
the Download rows, which the owner reads and retries by turning downloads on again.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, col, select

from core.blobs import BlobNotFound, BlobStore, Stores
from core.db import affected, get_engine
from core.ffmpeg import ffmpeg_exe
from core.media_keys import download_key, downloads_prefix, encode_prefix
from core.parts import ClaimedPart, part_held
from core.progressive import AUDIO_RENDITION, attempt_tag
from core.settings import Settings
from core.transient import PUBLIC_REASONS, transient_kind
from schemas.tables import (
    Download,
    DownloadKind,
    DownloadState,
    FailureKind,
    JobPart,
    PartState,
    Rendition,
    Video,
    utcnow,
)
from workers.job import Stop
from workers.pipeline import BACKGROUND_NICE, Stopped, TranscodeError, run_ffmpeg, watchdog_for
from workers.remux import BadPlaylist, build_remux_argv, rendition_files

log = logging.getLogger(__name__)
EXTENSIONS = {DownloadKind.video: "mp4", DownloadKind.audio: "m4a"}


@dataclass(frozen=True)
class Made:
    """One file this attempt stored, for its row."""

    kind: DownloadKind
    key: str
    size: int


def run_download(part: ClaimedPart, settings: Settings, stores: Stores, work: Path, stop: Stop, started: float) -> str:
    """Make every pending download of the video from the encode this part belongs to; record the files (or why
    they could not be made) if this attempt still holds the part."""
    engine = get_engine(settings)
    root = encode_prefix(part.video_id, part.generation)
    with Session(engine) as s:
        video = s.get(Video, part.video_id)
        if video is None or video.media_root != root:  # the encode is no longer shown (a failed re-transcode):
            _record(engine, part, [], None, stop, 0.0)  # nothing to make from it; a new encode queues its own part
            return PartState.succeeded
        rows = list(
            s.exec(select(Download).where(Download.video_id == part.video_id, Download.state == DownloadState.pending))
        )
        renditions = {r.name: r for r in s.exec(select(Rendition).where(Rendition.video_id == part.video_id))}
        duration = video.duration or 0.0
    made: list[Made] = []
    error: str | None = None
    try:
        made = make_downloads(part, rows, renditions, duration, root, stores.media, work, settings, stop)
    except Stopped:
        raise
    except Exception as exc:
        error = _why(exc)
        log.warning("video %s: downloads not made: %s", part.video_id, error)
        _remove(stores.media, _own_files(stores.media, root, part))
    before = _listed(stores.media, root)  # before the record: a newer part's files cannot exist yet
    _record(engine, part, made, error, stop, time.monotonic() - started)
    _remove_unlisted(engine, stores.media, part, before)
    return PartState.failed if error else PartState.succeeded


def make_downloads(
    part: ClaimedPart,
    rows: list[Download],
    renditions: dict[str, Rendition],
    duration: float,
    root: str,
    store: BlobStore,
    work: Path,
    settings: Settings,
    stop: Stop | None = None,
) -> list[Made]:
    """Fetch the renditions the rows need into local files, remux them in one ffmpeg run, store the outputs."""
    kinds = {DownloadKind(r.kind): r for r in rows}
    if not kinds:
        return []
    video_row = kinds.get(DownloadKind.video)
    video_in = audio_in = mp4 = m4a = None
    if video_row is not None:
        if video_row.rendition not in renditions:
            raise ValueError(f"the rendition {video_row.rendition!r} is not published")
        video_in = _fetch(store, renditions[video_row.rendition], work / "video.mp4")
        mp4 = work / "download.mp4"
    if AUDIO_RENDITION in renditions:
        audio_in = _fetch(store, renditions[AUDIO_RENDITION], work / "audio.mp4")
        if DownloadKind.audio in kinds:
            m4a = work / "download.m4a"
    elif DownloadKind.audio in kinds:
        raise ValueError("the audio rendition is not published")
    argv = build_remux_argv(video_in, audio_in, mp4, m4a, ffmpeg_exe=ffmpeg_exe(settings))
    run_ffmpeg(argv, duration, work / "remux.log", should_stop=stop,
               watchdog=watchdog_for(duration, settings), nice=BACKGROUND_NICE)  # fmt: skip
    if stop is not None and stop():
        raise Stopped
    tag = attempt_tag(part.lease)
    made: list[Made] = []
    for kind, path in ((DownloadKind.video, mp4), (DownloadKind.audio, m4a)):
        if path is None:
            continue
        if not path.is_file() or path.stat().st_size == 0:
            raise TranscodeError(f"ffmpeg wrote no {EXTENSIONS[kind].upper()}", kind=FailureKind.incomplete_output)
        key = download_key(root, tag, kinds[kind].rendition or kind.value, EXTENSIONS[kind])
        store.put_file(key, path)
        made.append(Made(kind, key, path.stat().st_size))
    return made


def _fetch(store: BlobStore, rendition: Rendition, dest: Path) -> Path:
    """The rendition as one fragmented MP4: its init segment, then its segments as its playlist lists them."""
    text = rendition.playlist if rendition.playlist is not None else store.read_bytes(rendition.playlist_key).decode()
    folder = rendition.playlist_key.rpartition("/")[0] + "/"
    with dest.open("wb") as out:
        for name in rendition_files(text).names:
            out.write(store.read_bytes(folder + name))
    return dest


def _why(exc: Exception) -> str:
    """What the owner reads: ffmpeg's reason or a missing segment; anything else in a fixed sentence (a store's
    error may name hosts), the detail in the worker's log."""
    if isinstance(exc, TranscodeError):
        return f"the remux failed: {exc.reason}"
    if isinstance(exc, BlobNotFound):
        return "a segment of the video is missing from the store"
    if isinstance(exc, BadPlaylist):
        return f"the published playlist is not one downloads can be made from: {exc}"
    log.warning("download remux failed", exc_info=exc)
    kind = transient_kind(exc)
    internal = "internal error while making the download; an operator can see the details in the worker's log"
    return PUBLIC_REASONS.get(kind, internal) if kind is not None else internal


def _own_files(store: BlobStore, root: str, part: ClaimedPart) -> list[str]:
    tag = attempt_tag(part.lease)
    return [k for k in store.list(downloads_prefix(root)) if k.rpartition("/")[2].startswith(tag + ".")]


def _remove(store: BlobStore, keys: list[str]) -> None:
    try:
        for key in keys:
            store.delete_prefix(key)
    except Exception:
        log.warning("could not remove download files %s", keys, exc_info=True)


def _record(engine, part: ClaimedPart, made: list[Made], error: str | None, stop: Stop, seconds: float) -> None:
    """The part's end and the rows in one transaction, fenced by the part's lease: the files onto the rows that
    wanted them, or the reason onto every pending row."""
    now = utcnow()
    with Session(engine) as s:
        done = update(JobPart).where(*part_held(part)).values(
            state=PartState.failed if error else PartState.succeeded, progress=1.0, finished_at=now,
            encode_seconds=round(seconds, 3), error=error,
        )  # fmt: skip
        if not affected(s.execute(done)):
            s.rollback()
            stop.lost.set()
            raise Stopped  # workers.parts._end removes this attempt's files
        pending = (col(Download.video_id) == part.video_id, col(Download.state) == DownloadState.pending)
        for m in made:
            s.execute(
                update(Download)
                .where(*pending, col(Download.kind) == m.kind)
                .values(state=DownloadState.ready, blob_key=m.key, size=m.size, error=None, finished_at=now)
            )
        if error:
            s.execute(update(Download).where(*pending).values(state=DownloadState.failed, error=error, finished_at=now))
        s.commit()
    log.info("video %s: downloads %s", part.video_id, error or [m.key for m in made])


def _listed(store: BlobStore, root: str) -> list[str]:
    try:
        return store.list(downloads_prefix(root))
    except Exception:
        log.warning("could not list %s", downloads_prefix(root), exc_info=True)
        return []


def _remove_unlisted(engine, store: BlobStore, part: ClaimedPart, before: list[str]) -> None:
    """Files of the encode's downloads folder that no row names (an earlier rung's, a dead attempt's), once this
    part's record is in. Only files listed before the record: a newer download part (the owner changed the rung
    right after it) exists only after it, so its files are never among them."""
    with Session(engine) as s:
        named = {k for k in s.exec(select(Download.blob_key).where(Download.video_id == part.video_id)) if k}
    _remove(store, [key for key in before if key not in named])

"""One part of a planned job (core.parts): encode it, publish its files, record it, and finish the video when it
was the last one.

Video ranges publish every rung of their range at once; the audio part publishes each segment as it lands, so
the video plays as soon as the first range and two audio segments are in. The part whose record completes the
set makes the video ready in the same transaction (the job row is locked, so exactly one part does), and
queues the storyboard, which never holds publishing back.
"""

import contextvars
import hashlib
import io
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from core.blobs import BlobStore, Stores
from core.db import affected, get_engine
from core.downloads import download_part, fail_pending, h264_rungs, replace_rows, wanted_rows
from core.errors import Refused
from core.logs import job_context
from core.media_keys import (
    MASTER_NAME,
    MEDIA_PLAYLIST,
    POSTER_NAME,
    STORYBOARD_VTT,
    TILES_DIR,
    encode_prefix,
    media_prefix,
)
from core.notes import add_note
from core.parts import (
    AFTER_READY,
    ClaimedPart,
    Generation,
    describe,
    generation_live,
    part_heartbeat,
    part_held,
    parts_of,
)
from core.progressive import (
    AUDIO_RENDITION,
    PartView,
    attempt_tag,
    first_range_codecs,
    init_file,
    media_playlist,
    published,
    segment_file,
)
from core.settings import Settings
from core.timeutil import aware
from core.transient import PUBLIC_REASONS, retry_delay, transient_kind
from core.webhook_outbox import emit_for_video
from schemas.tables import (
    DownloadState,
    FailureKind,
    JobPart,
    JobState,
    NoteKind,
    PartKind,
    PartState,
    Rendition,
    TranscodeJob,
    Video,
    VideoStatus,
    WebhookEventType,
    utcnow,
)
from workers.download_part import run_download
from workers.job import Stop, beating_with, clear_encodes, end_generation
from workers.pipeline import Progress, Stopped, TranscodeError
from workers.quality_part import quality_part, run_quality
from workers.sources import local_source

log = logging.getLogger(__name__)
PART_FAILURES = 2  # a range that fails on its own twice fails the video (a worker lost is counted apart)
PROGRESS_INTERVAL = 1.0


def run_part(part: ClaimedPart, worker: str, settings: Settings, stores: Stores, ring: Callable[[str], None]) -> str:
    with job_context(part.job_id, part.video_id):
        return _run(part, worker, settings, stores, ring)


def part_scratch(settings: Settings, part: ClaimedPart) -> Path:
    """Named like a job attempt's folder (`<id>.<lease>`), so the supervisor's sweep treats both alike."""
    return settings.tmp_dir / "jobs" / f"{part.part_id}.{part.lease.hex}"


def _run(part: ClaimedPart, worker: str, settings: Settings, stores: Stores, ring: Callable[[str], None]) -> str:

    engine = get_engine(settings)
    work = part_scratch(settings, part)
    work.mkdir(parents=True)
    started = time.monotonic()
    log.info("job %s: %s (part %s, attempt %s) started on %s", part.job_id, part.kind, part.part_id, part.lease, worker)
    stop = Stop()
    root = encode_prefix(part.video_id, part.generation)
    try:
        with beating_with(lambda: part_heartbeat(engine, part), stop, f"part-{part.part_id}"):
            if part.kind == PartKind.quality:  # after ready: measures, never fails the video (a note instead)
                return run_quality(part, settings, stores, work, stop, started)
            if part.kind == PartKind.download:  # after ready: a remux, its failure is on the Download rows
                return run_download(part, settings, stores, work, stop, started)
            src = local_source(settings, stores.sources, part.source_key, part.video_id, part.generation)
            prepared = _prepared(engine, part, settings)
            out = work / "out"
            if part.kind == PartKind.video:
                _video(part, prepared, src, out, settings, stores.media, root, stop, started)
            elif part.kind == PartKind.audio:
                _audio(part, prepared, src, out, settings, stores.media, root, stop, started)
            else:
                _storyboard(part, prepared, out, settings, stores.media, root, stop, started)
                return PartState.succeeded
        if finish_if_complete(engine, part, stores, ring, measure_vmaf=settings.measure_vmaf):
            log.info("video %s ready", part.video_id)
        return PartState.succeeded
    except Exception as exc:
        return _end(exc, part, stop, settings, stores, root)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prepared(engine, part: ClaimedPart, settings: Settings):
    """The encode as the planner saw it: its probe, this worker's settings; refused if they plan another ladder."""
    from core.probe import SourceInfo  # noqa: PLC0415
    from workers.pertitle import Trial  # noqa: PLC0415
    from workers.pipeline import plan_encode  # noqa: PLC0415

    with Session(engine) as s:
        row = s.execute(
            select(col(TranscodeJob.plan), col(TranscodeJob.plan_digest)).where(*generation_live(part))
        ).first()
    if row is None or row[0] is None:
        raise Stopped  # the job is gone or re-planned: this attempt has nothing to do
    trial = Trial.from_json(row[0]["trial"]) if row[0].get("trial") else None  # measured once, by the planner
    prepared = plan_encode(SourceInfo.from_json(row[0]["source"]), settings, trial)
    if row[1] != plan_digest(prepared):
        raise TranscodeError(
            "this worker's ladder settings differ from the worker that planned the job: its ranges would not "
            "stitch (give every worker the same STREAMIFY_* encoding settings)",
            kind=FailureKind.internal,
        )
    return prepared


def plan_digest(prepared) -> str:
    """What every part of a job must agree on: the ladder and the ranges (the repr of frozen dataclasses)."""
    return hashlib.sha256(repr((prepared.plan, prepared.ranges, prepared.thumbnails)).encode()).hexdigest()


class PartProgress:
    """ffmpeg progress of one part -> the part row, and the video's overall progress, at most once a second."""

    def __init__(self, engine, part: ClaimedPart) -> None:
        self.engine, self.part = engine, part
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        with Session(self.engine) as s:
            if affected(s.execute(update(JobPart).where(*part_held(self.part)).values(progress=min(p.fraction, 0.99)))):
                _update_video_progress(s, self.part)
            s.commit()


def _update_video_progress(s: Session, part: ClaimedPart) -> None:
    """The share of the source's duration encoded, over every video range (or the audio, for audio only)."""
    rows = parts_of(s, part.job_id, part.generation)
    video = s.get(Video, part.video_id)
    if video is None or not video.duration:
        return
    ranges = [p for p in rows if p.kind == PartKind.video] or [p for p in rows if p.kind == PartKind.audio]
    done = 0.0
    for p in ranges:
        length = (p.end_seconds if p.end_seconds is not None else video.duration) - p.start_seconds
        done += length * (1.0 if p.state == PartState.succeeded else p.progress if p.state == PartState.running else 0)
    fraction = round(min(done / video.duration, 0.99), 4)
    s.execute(update(Video).where(col(Video.id) == part.video_id).values(progress=fraction, updated_at=utcnow()))
    s.execute(update(TranscodeJob).where(*generation_live(part)).values(progress=fraction))


def _upload(store: BlobStore, files: list[tuple[str, Path]]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:  # each upload logs with the job's ids (contextvars)
        for done in [pool.submit(contextvars.copy_context().run, store.put_file, k, p) for k, p in files]:
            done.result()


def _video(part: ClaimedPart, prepared, src: Path, out: Path, settings, store, root, stop, started) -> None:
    from workers.pipeline import encode_range  # noqa: PLC0415

    engine = get_engine(settings)
    rng = prepared.ranges[part.index]
    result = encode_range(src, prepared, rng, out, settings, on_progress=PartProgress(engine, part), should_stop=stop)
    if stop():
        raise Stopped
    tag = attempt_tag(part.lease)
    files: list[tuple[str, Path]] = []
    digests: dict[str, str] = {}
    for name, segments in result.segments.items():
        for seg in segments:
            files.append(
                (f"{root}{name}/{segment_file(tag, seg.sequence)}", out / name / f"seg_{seg.sequence:05d}.m4s")
            )
        init = out / name / "init.mp4"
        digests[name] = hashlib.sha256(init.read_bytes()).hexdigest()
        if part.index == 0:  # one init per rung: the ranges' are byte-identical (checked on finishing)
            files.append((f"{root}{name}/{init_file(tag)}", init))
    if result.poster:
        files.append((root + POSTER_NAME, out / POSTER_NAME))
    files += [(f"{root}{TILES_DIR}/{p.name}", p) for p in sorted((out / TILES_DIR).glob("*.jpg"))]
    _upload(store, files)
    published = {n: [[s.duration, s.size] for s in segs] for n, segs in result.segments.items()}
    _record_part(engine, part, published, result.codecs, digests, time.monotonic() - started)


def _audio(part: ClaimedPart, prepared, src: Path, out: Path, settings, store, root, stop, started) -> None:
    """Measure the loudness (workers.pipeline.level_audio: a failure is a note, the audio keeps its level), encode
    at the planned level publishing each segment as it lands, and record the part with the job's loudness."""
    from workers.pipeline import encode_audio, level_audio  # noqa: PLC0415

    engine = get_engine(settings)
    level = level_audio(src, prepared, out, settings, should_stop=stop)
    if level.failure is not None:
        add_note(engine, part.job_id, NoteKind.loudness_failed, level.failure)
    tag = attempt_tag(part.lease)
    published_rows: list[list[float]] = []
    folder = out / AUDIO_RENDITION

    def on_segment(seg) -> None:
        """Each audio segment goes out as soon as it is complete: the video is playable with the first two."""
        if published_rows == []:
            store.put_file(f"{root}{AUDIO_RENDITION}/{init_file(tag)}", folder / "init.mp4")
        store.put_file(
            f"{root}{AUDIO_RENDITION}/{segment_file(tag, seg.sequence)}", folder / f"seg_{seg.sequence:05d}.m4s"
        )
        published_rows.append([seg.duration, seg.size])
        with Session(engine) as s:
            mine = update(JobPart).where(*part_held(part)).values(segments={AUDIO_RENDITION: list(published_rows)})
            if not affected(s.execute(mine)):
                stop.lost.set()
                raise Stopped
            _update_edge(s, part)
            s.commit()

    encode_audio(src, prepared, out, settings, on_segment=on_segment, should_stop=stop, level=level.plan)
    if stop():
        raise Stopped
    loudness = level.plan.to_json() if level.plan is not None else None
    _record_part(
        engine, part, {AUDIO_RENDITION: published_rows}, {AUDIO_RENDITION: "mp4a.40.2"}, {}, time.monotonic() - started,
        job_values={"loudness": loudness},
    )  # fmt: skip


def _storyboard(part: ClaimedPart, prepared, out: Path, settings, store: BlobStore, root: str, stop, started) -> None:
    """After the video is ready: the ranges' tiles -> sprite sheets and the track. A failure leaves the video
    ready without scrub previews (logged), never unplayable."""
    from workers.pipeline import make_storyboard  # noqa: PLC0415

    engine = get_engine(settings)
    tiles = out / TILES_DIR
    tiles.mkdir(parents=True)
    for key in store.list(f"{root}{TILES_DIR}/"):
        store.download_to(key, tiles / key.rpartition("/")[2])
    make_storyboard(prepared, tiles, out, settings, should_stop=stop)
    shutil.rmtree(tiles)
    sheets = sorted(p for p in out.glob("storyboard_*.jpg"))
    _upload(store, [(root + p.name, p) for p in sheets])
    track = (out / STORYBOARD_VTT).read_text()
    store.put_file(root + STORYBOARD_VTT, out / STORYBOARD_VTT)
    with Session(engine) as s:
        if not affected(
            s.execute(
                update(JobPart)
                .where(*part_held(part))
                .values(state=PartState.succeeded, progress=1.0, finished_at=utcnow(),
                        encode_seconds=time.monotonic() - started)
            )
        ):  # fmt: skip
            s.rollback()
            stop.lost.set()
            raise Stopped
        s.execute(
            update(Video)
            .where(col(Video.id) == part.video_id, col(Video.media_root) == root)
            .values(storyboard_track=track, updated_at=utcnow())
        )
        s.commit()
    store.delete_prefix(f"{root}{TILES_DIR}/")


def _record_part(
    engine, part: ClaimedPart, segments, codecs, digests, seconds: float, job_values: dict | None = None
) -> None:
    """The part succeeded, fenced by its lease; `job_values` go on its job row in the same transaction (only
    while this attempt holds the part, like everything it writes)."""
    with Session(engine) as s:
        done = update(JobPart).where(*part_held(part)).values(
            state=PartState.succeeded, progress=1.0, segments=segments, codecs=codecs, init_digests=digests,
            encode_seconds=round(seconds, 3), finished_at=utcnow(),
        )  # fmt: skip
        if not affected(s.execute(done)):
            s.rollback()
            raise _Lost
        if job_values:
            s.execute(update(TranscodeJob).where(*generation_live(part)).values(**job_values))
        _update_video_progress(s, part)
        _update_edge(s, part)
        s.commit()


class _Lost(Stopped):
    """The part was taken from this attempt while it encoded."""


def _update_edge(s: Session, part: ClaimedPart) -> None:
    """How much plays now; the first time the video becomes playable is kept on the job (time to first play)."""
    video = s.get(Video, part.video_id)
    if video is None or video.status != VideoStatus.processing:
        return
    pub = published([PartView.of(p) for p in parts_of(s, part.job_id, part.generation)], video.duration or 0.0)
    if not pub.playable(video.has_video, video.has_audio):
        return
    seconds = round(pub.seconds(video.has_video, video.has_audio), 3)
    s.execute(update(Video).where(col(Video.id) == part.video_id).values(playable_seconds=seconds))
    first = s.execute(
        update(TranscodeJob)
        .where(*generation_live(part), col(TranscodeJob.first_playable_at).is_(None))
        .values(first_playable_at=utcnow())
    )
    if affected(first):  # the first time this encode plays: its webhook commits with it (the outbox)
        emit_for_video(s, WebhookEventType.video_playable, part.video_id)


def finish_if_complete(
    engine,
    part: ClaimedPart | Generation,
    stores: Stores,
    ring: Callable[[str], None],
    *,
    measure_vmaf: bool = False,
) -> bool:
    """If every video and audio part is in: the final playlists, renditions and `ready`, in one transaction
    under the job's row lock (two parts finishing at once: one of them does it). Then the parts that come after
    `ready`: the storyboard, and the rungs' VMAF when `measure_vmaf` (workers.quality_part)."""
    root = encode_prefix(part.video_id, part.generation)
    with Session(engine) as s:
        job = s.execute(
            select(TranscodeJob).where(*generation_live(part), col(TranscodeJob.state) == JobState.running)
            .with_for_update()
        ).scalar_one_or_none()  # fmt: skip
        video = s.get(Video, part.video_id, with_for_update=True)
        if job is None or video is None or job.plan is None:
            return False
        rows = parts_of(s, part.job_id, part.generation)
        pub = published([PartView.of(p) for p in rows], video.duration or 0.0)
        if not pub.complete:
            return False
        mismatch = _init_mismatch(rows)
        if mismatch:
            s.rollback()
            reason = f"ranges were encoded differently ({mismatch}): their segments would not play on"
            end_generation(engine, stores, part.job_id, part.generation, JobState.failed, reason,
                           FailureKind.incomplete_output)  # fmt: skip
            return False
        playlists, master, renditions = final_playlists(job.plan, rows, pub)
        s.execute(delete(Rendition).where(col(Rendition.video_id) == part.video_id))
        for r in renditions:
            r.video_id = part.video_id
            r.playlist_key = f"{root}{r.name}/{MEDIA_PLAYLIST}"
            r.playlist = playlists[r.name]
            s.add(r)
        now = utcnow()
        video.status, video.progress, video.error, video.media_root = VideoStatus.ready, 1.0, None, root
        video.master_playlist, video.playable_seconds, video.updated_at = master, video.duration, now
        video.storyboard_track = None
        job.state, job.progress, job.finished_at, job.encoded_seconds = JobState.succeeded, 1.0, now, video.duration
        wall = (now - aware(job.started_at)).total_seconds() if job.started_at else 0.0
        job.speed = round(video.duration / wall, 3) if video.duration and wall > 0 else None  # x real time
        job.error = job.failure_kind = None
        first_playable = job.first_playable_at is None  # too short to play before it was whole
        if first_playable:
            job.first_playable_at = now
        storyboard = (job.plan or {}).get("storyboard", False)
        if storyboard:
            s.add(JobPart(job_id=job.id, video_id=video.id, generation=part.generation, kind=PartKind.storyboard))
        quality = measure_vmaf and bool(job.plan.get("renditions"))
        if quality:
            s.add(quality_part(job.id, video.id, part.generation))
        downloads = video.downloads_enabled and _queue_downloads(s, video, job, renditions)
        if first_playable:  # a subscriber to `video.playable` alone is told too
            emit_for_video(s, WebhookEventType.video_playable, video.id)
        emit_for_video(s, WebhookEventType.video_ready, video.id)  # committed with `ready`, or not at all
        s.commit()
    if storyboard:
        ring(f"storyboard {part.job_id}")
    if downloads:
        ring(f"download {part.job_id}")
    if quality:
        ring(f"quality {part.job_id}")
    _after_ready(stores.media, part, root, playlists, master)
    return True


def _queue_downloads(s: Session, video: Video, job: TranscodeJob, renditions: list[Rendition]) -> bool:
    """Downloads are on: their rows for this encode, pending, and the part that makes them (core.downloads).
    Asked for while encoding, or made from the encode this one replaces: made (again) now."""
    rungs = h264_rungs(renditions)
    # The owner's rung, even if this ladder lacks it: its row then says so (core.downloads.wanted_rows).
    rendition = video.download_rendition or (rungs[0] if rungs else None)
    rows = wanted_rows(video, rendition, rungs)
    replace_rows(s, video, rows)
    if not any(r.state == DownloadState.pending for r in rows):
        return False
    s.add(download_part(job))
    return True


def _after_ready(
    store: BlobStore, part: ClaimedPart | Generation, root: str, playlists: dict[str, str], master: str
) -> None:
    """Copies of the final playlists beside the segments (for a CDN, or whoever copies the folder), then the
    encodes this one replaces, and any file of an attempt that died before it could remove its own."""
    for name, text in playlists.items():
        store.put_stream(f"{root}{name}/{MEDIA_PLAYLIST}", io.BytesIO(text.encode()))
    store.put_stream(root + MASTER_NAME, io.BytesIO(master.encode()))  # last: it names the others
    clear_encodes(store, part.video_id, keep=root)
    referenced = {f"{root}{name}/{uri}" for name, text in playlists.items() for uri in _uris(text)}
    for key in store.list(root):
        name, _, rest = key[len(root) :].partition("/")
        if name in playlists and rest != MEDIA_PLAYLIST and key not in referenced:
            store.delete_prefix(key)


def _uris(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:URI="):
            out.append(line.split('"')[1])
        elif line and not line.startswith("#"):
            out.append(line)
    return out


def _init_mismatch(rows: list[JobPart]) -> str:
    seen: dict[str, str] = {}
    for p in sorted((r for r in rows if r.kind == PartKind.video), key=lambda r: r.index):
        for name, digest in (p.init_digests or {}).items():
            if seen.setdefault(name, digest) != digest:
                return f"{name}: {describe(p)} differs from the first"
    return ""


def final_playlists(plan: dict, rows: list[JobPart], pub) -> tuple[dict[str, str], str, list[Rendition]]:
    """Media playlists, master and rendition rows of a complete encode (measured bandwidths)."""
    from core.progressive import master_for  # noqa: PLC0415

    codecs = first_range_codecs(rows)
    target = int(plan.get("target_duration", 4))
    playlists = {
        name: media_playlist(segs, pub.inits[name], target_duration=target, complete=True)
        for name, segs in pub.renditions.items()
    }
    master, renditions = master_for(plan, codecs, pub)
    return playlists, master, renditions


def _wait_out(s: Session, part: ClaimedPart, settings: Settings, reason: str, kind: FailureKind):
    """An outage is the job's, not one part's: the first part to meet it makes the whole job wait (retries
    counted on the job, as core.jobqueue.retry_later counts them, with the same growing delay); parts that meet
    the same outage meanwhile wait with it instead of spending retries. Returns (retry?, not before)."""
    job = s.execute(select(TranscodeJob).where(*generation_live(part)).with_for_update()).scalar_one_or_none()
    if job is None:
        return False, None
    now = utcnow()
    if job.not_before is not None and aware(job.not_before) > now:
        return True, job.not_before
    if job.transient_failures >= settings.transient_retries:
        return False, None
    job.transient_failures += 1
    job.not_before = now + timedelta(seconds=retry_delay(job.transient_failures, settings.transient_retry_base_seconds))
    job.error, job.failure_kind = reason, kind  # what operators see while it waits
    return True, job.not_before


def _recorded(engine, part: ClaimedPart) -> bool | None:
    """Whether this attempt's part is on record as succeeded (its lease stays on the row); None when the
    database cannot say."""
    try:
        with Session(engine) as s:
            row = s.execute(
                select(col(JobPart.id)).where(col(JobPart.id) == part.part_id, col(JobPart.lease) == part.lease,
                                              col(JobPart.state) == PartState.succeeded)
            ).first()  # fmt: skip
    except Exception:
        return None
    return row is not None


def _video_deleted(engine, part: ClaimedPart) -> bool:
    """Whether the part's video row is gone; False when the database cannot say (its files then stay)."""
    try:
        with Session(engine) as s:
            return s.execute(select(col(Video.id)).where(col(Video.id) == part.video_id)).first() is None
    except Exception:
        return False


def _end(exc: Exception, part: ClaimedPart, stop: Stop, settings: Settings, stores: Stores, root: str) -> str:
    """A part attempt that did not succeed: remove what it wrote (unless its output is on record), then retry the
    part, or end the job."""
    engine = get_engine(settings)
    if _video_deleted(engine, part):
        # Deleted while this attempt ran: what it wrote after the deletion's sweep is named by no row, and the
        # storyboard's files carry no attempt tag, so the video's whole folder goes (nothing can be using it).
        try:
            stores.media.delete_prefix(media_prefix(part.video_id))
        except Exception:  # an orphan costs bytes; logged for the operator
            log.warning("could not remove the files of deleted video %s", part.video_id, exc_info=True)
        log.warning("video %s was deleted while its %s ran; the attempt's output is dropped", part.video_id, part.kind)
        return "lost"
    tag = attempt_tag(part.lease)
    recorded = _recorded(engine, part)
    if recorded is not False:
        # Its output is (or may be) on record: playlists may name these files, so they stay. An attempt's
        # leftovers that no playlist names are swept when the video is ready (_after_ready) or its encode ends.
        log.warning("part %s attempt %s failed %s; its files stay", part.part_id, part.lease,
                    "after recording its output" if recorded else "and the database cannot say whether its output "
                    "is on record", exc_info=exc)  # fmt: skip
        if recorded:
            return PartState.succeeded
    else:
        try:
            for key in stores.media.list(root):
                if key.rpartition("/")[2].startswith(tag + "."):  # this attempt's files, never another's
                    stores.media.delete_prefix(key)
        except Exception:
            log.warning("could not remove part attempt %s's files", part.lease, exc_info=True)
    if stop.lost.is_set() or isinstance(exc, _Lost):
        log.warning("part %s was taken from attempt %s; its output is dropped", part.part_id, part.lease)
        return "lost"
    if isinstance(exc, Stopped) and not stop.cancelled.is_set():
        return "lost"
    if stop.cancelled.is_set():
        end_generation(
            engine, stores, part.job_id, part.generation, JobState.cancelled, "cancelled by an operator", None
        )
        return JobState.cancelled
    kind: FailureKind
    tail = ""
    if isinstance(exc, TranscodeError):
        reason, kind, tail = exc.reason, exc.kind, exc.log_tail
    elif isinstance(exc, Refused) and exc.kind is not None:
        reason, kind = exc.detail, exc.kind
    elif (transient := transient_kind(exc)) is not None:
        reason, kind = f"{transient}: {type(exc).__name__}: {exc}"[:2000], transient
    else:
        log.exception("part %s crashed", part.part_id)
        reason, kind = f"internal error: {type(exc).__name__}: {exc}", FailureKind.internal
    outage = transient_kind(exc) is not None
    with Session(engine) as s:
        row = s.execute(select(JobPart).where(*part_held(part)).with_for_update()).scalar_one_or_none()
        if row is None:
            return "lost"
        what = describe(row)
        row.error, row.failure_kind, row.log_tail = reason, kind, tail or None
        row.lease, row.worker, row.heartbeat_at, row.finished_at = None, None, None, utcnow()
        if outage:  # the store or database is down: wait and retry, without counting it against the range
            again, row.not_before = _wait_out(s, part, settings, reason, kind)
            row.transient_failures += 1
        else:
            row.failures += 1
            again = row.failures < PART_FAILURES
        again = again and row.kind not in AFTER_READY
        row.state = PartState.queued if again else PartState.failed
        s.commit()
    if again:
        log.warning("job %s: %s failed (%s); it runs again", part.job_id, what, reason)
        return "retrying"
    if part.kind in AFTER_READY:
        log.warning("video %s: %s failed: %s (it stays ready without it)", part.video_id, part.kind, reason)
        if part.kind == PartKind.download:  # its rows say why, never pending for ever
            fail_pending(engine, part.job_id, PUBLIC_REASONS.get(kind, "internal error while making the download"))
        return PartState.failed
    # An outage says so in the words creators read (no hosts or ports); the job keeps the details.
    public = PUBLIC_REASONS.get(kind, reason) if outage else f"{what} failed: {reason}"
    end_generation(engine, stores, part.job_id, part.generation, JobState.failed, f"{what} failed: {reason}", kind,
                   tail, public=public)  # fmt: skip
    return JobState.failed

"""Run the parts of a chunked encode into a directory: prepare (probe, plan the ladder, the time ranges and the
thumbnails), encode a time range of every video rung, encode the audio, lay out the storyboard; transcode()
runs them all here and writes the playlists (core.hls).

Shared by the Celery tasks and `streamify transcode`; knows nothing of databases or blob stores.
"""

import errno
import logging
import math
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import av
import av.error
import m3u8

from core.ffmpeg import ffmpeg_exe
from core.hls import AudioEntry, VariantEntry, bandwidths, master_playlist, master_problems, media_playlist
from core.media_keys import (
    AUDIO_NAME,
    INIT_NAME,
    MASTER_NAME,
    MEDIA_PLAYLIST,
    POSTER_NAME,
    STORYBOARD_VTT,
    TILE_PATTERN,
    TILES_DIR,
    segment_name,
)
from core.media_limits import MediaLimits
from core.probe import SourceInfo, probe
from core.processes import die_with_parent
from core.settings import Settings
from schemas.tables import FailureKind
from workers.chunks import TimeRange, plan_ranges, range_label
from workers.command import (
    AUDIO_FFMPEG_PLAYLIST,
    TRIAL_REFERENCE,
    av1_trial_encoder,
    av1_trial_file,
    build_audio_argv,
    build_loudness_argv,
    build_range_argv,
    build_reference_trial_argv,
    build_sheets_argv,
    build_trial_argv,
    h264_trial_encoder,
    range_playlist,
    trial_file,
)
from workers.ladder import LadderPlan, plan_ladder, with_av1
from workers.loudness import LevelPlan, Measurement, measure_windows, parse_ebur128, plan_level
from workers.measure import VariantFacts, codec_string
from workers.pertitle import (
    AV1_TRIAL_CRFS,
    TRIAL_SECONDS_LIMIT,
    Av1Point,
    Av1Trial,
    LadderDecision,
    Trial,
    TrialSize,
    TrialWindow,
    av1_rates,
    av1_top_size,
    decide,
    fixed_decision,
    h264_reference_rate,
    trial_sizes,
    trial_windows,
)
from workers.quality import build_trial_vmaf_argv, parse_vmaf_log
from workers.thumbnails import ThumbnailPlan, fit_tiles, jpeg_size, plan_thumbnails, storyboard_vtt

log = logging.getLogger(__name__)
LOG_TAIL_LINES = 40
GENERIC_FAILURE = "Conversion failed!"
_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")  # "[out#1/image2 @ 0x5648] "
# Lines of an ffmpeg log that say what went wrong with the input (its decoder's and demuxer's complaints).
_COMPLAINT = re.compile(r"error|invalid|corrupt|partial file|truncat|missing|non-monoton", re.IGNORECASE)


@dataclass
class Progress:
    fraction: float  # 0..1 of the source duration
    speed: float | None  # x real time
    out_time: float
    fps: float | None = None  # frames decoded per second


@dataclass
class TranscodeResult:
    source: SourceInfo
    plan: LadderPlan
    variants: list[VariantFacts]
    elapsed: float
    files: list[Path] = field(default_factory=list)
    ladder: LadderDecision | None = None  # which rungs and why (per-title or fixed)
    trial_failure: str | None = None  # why per-title fell back to the fixed ladder
    loudness: dict | None = None  # what the audio's level was measured at and given (LevelPlan.to_json)


class TranscodeError(Exception):
    """A failed transcode: `reason` in words for people, `kind` for /metrics and the dashboard (never parsed
    out of the words, so rewording a reason changes nothing an operator's alerts rely on)."""

    def __init__(self, reason: str, log_tail: str = "", *, kind: FailureKind) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail
        self.kind = kind


class Stopped(Exception):
    """should_stop() said so: ffmpeg was killed on purpose, which is no failure (the job is cancelled)."""


# A rendition shorter than the source by more than this means ffmpeg hit unreadable data.
DURATION_TOLERANCE = 0.5


def parse_progress(block: dict[str, str], duration: float) -> Progress:
    """One `-progress` block (key=value lines up to `progress=`) -> fraction done and speed."""
    raw = block.get("out_time_us") or block.get("out_time_ms") or "0"
    try:
        out_time = max(0.0, int(raw) / 1_000_000)
    except ValueError:
        out_time = 0.0
    speed_text = block.get("speed", "").strip().rstrip("x")
    try:
        speed = float(speed_text) if speed_text not in ("", "N/A") else None
    except ValueError:
        speed = None
    try:
        fps = float(block.get("fps", "")) or None
    except ValueError:
        fps = None
    done = block.get("progress") == "end"
    fraction = 1.0 if done else (min(out_time / duration, 0.999) if duration > 0 else 0.0)
    return Progress(fraction=fraction, speed=speed, out_time=out_time, fps=fps)


def plan_for(info: SourceInfo, settings: Settings) -> LadderPlan:
    """The fixed H.264 ladder this install's settings ask for (per-title and the AV1 twins come after it)."""
    plan = plan_ladder(
        info,
        max_height=settings.ladder_max_height,
        segment_seconds=settings.segment_seconds,
        gop_seconds=settings.gop_seconds,
        crf=settings.x264_crf,
        preset=settings.x264_preset,
    )
    return plan


@dataclass(frozen=True)
class Watchdog:
    """Bounds on one ffmpeg run: it is killed when its output stops growing for `stall_seconds` (stopped,
    deadlocked, or spinning on a hostile input) or when it runs longer than `budget_seconds` in all."""

    stall_seconds: float
    budget_seconds: float


def watchdog_for(duration: float, settings: Settings) -> Watchdog:
    budget = max(settings.encode_time_floor_seconds, settings.encode_time_factor * max(duration, 0.0))
    return Watchdog(stall_seconds=settings.ffmpeg_stall_seconds, budget_seconds=budget)


class DiskFull(OSError):
    """The scratch disk filled up under ffmpeg: transient (core.transient), the job is retried later."""

    def __init__(self, where: Path) -> None:
        super().__init__(errno.ENOSPC, "no space left on the worker's scratch disk", str(where))


POLL_SECONDS = 0.25  # how often the watchdog and a cancel are checked, whatever ffmpeg is doing
MIN_FREE_BYTES = 16 * 1024**2  # below this after a failed run, the disk (not the source) is the cause


def _decoders_capped(argv: list[str], limits: MediaLimits) -> list[str]:
    """The source's decoders refuse a frame over the pixel limit: probe() saw the first frame, a later one may
    switch to 16000x16000 (a new SPS mid-stream), which ffmpeg would decode and scale at gigabytes."""
    at = argv.index("-i")
    return [*argv[:at], "-max_pixels", str(limits.max_pixels), *argv[at:]]


# The first range makes a video playable: on a machine that also runs later ranges, the audio or the storyboard,
# those run at a lower CPU priority, so they fill the cores the first range leaves idle instead of slowing it.
BACKGROUND_NICE = 10


def run_ffmpeg(
    argv: list[str],
    duration: float,
    log_path: Path,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    watchdog: Watchdog | None = None,
    nice: int = 0,
) -> None:
    """Run ffmpeg with `-progress pipe:1`. Its pipes are read on threads, so this loop never blocks on
    ffmpeg: a cancel and the watchdog act within POLL_SECONDS even when ffmpeg is stopped or stuck.
    `nice` lowers its CPU priority (work that must not slow down a video's first range)."""
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    first_error: list[str] = []  # ffmpeg 7+ ends every failure with "Conversion failed!": keep the cause
    log_failed: list[OSError] = []
    progress: queue.Queue[tuple[Progress, tuple[str, ...]]] = queue.Queue()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL, nice),  # a worker killed outright leaves no ffmpeg behind
        )

        def drain_stderr() -> None:  # read stderr concurrently so neither pipe can fill and block ffmpeg
            assert proc.stderr
            for line in proc.stderr:
                tail.append(line.rstrip())
                if not first_error and ("Error" in line or "Could not" in line):
                    first_error.append(_LOG_PREFIX.sub("", line.strip()))
                if not log_failed:
                    try:  # a full disk must not stop the draining (ffmpeg would block on a full pipe)
                        log.write(line)
                    except OSError as exc:
                        log_failed.append(exc)

        def read_progress() -> None:
            assert proc.stdout
            block: dict[str, str] = {}
            for line in proc.stdout:
                key, _, value = line.strip().partition("=")
                block[key] = value
                if key == "progress":
                    marker = (block.get("out_time_us", ""), block.get("frame", ""), block.get("total_size", ""))
                    progress.put((parse_progress(block, duration), marker))
                    block = {}

        readers = [threading.Thread(target=f, daemon=True) for f in (drain_stderr, read_progress)]
        for reader in readers:
            reader.start()
        try:
            _watch(proc, readers[1], progress, on_progress, should_stop, watchdog)
        finally:
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
            for reader in readers:
                reader.join(timeout=5)
    if code != 0:
        if log_failed or shutil.disk_usage(log_path.parent).free < MIN_FREE_BYTES:
            raise DiskFull(log_path.parent)
        last = next((t for t in reversed(tail) if t and not t.startswith("[")), tail[-1] if tail else "")
        if last == GENERIC_FAILURE and first_error:
            last = first_error[0]
        raise TranscodeError(
            f"ffmpeg exited with status {code}: {last}".strip(), "\n".join(tail), kind=FailureKind.ffmpeg
        )


def _stop_if_asked(proc: subprocess.Popen, should_stop: Callable[[], bool] | None) -> None:
    if should_stop and should_stop():
        proc.kill()
        raise Stopped


def _watch(
    proc: subprocess.Popen,
    reader: threading.Thread,
    progress: "queue.Queue[tuple[Progress, tuple[str, ...]]]",
    on_progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
    watchdog: Watchdog | None,
) -> None:
    """Until ffmpeg exits and its last progress is read: pass progress on, and kill ffmpeg on a cancel, a stall
    or an exhausted budget."""
    started = last_advance = time.monotonic()
    last_marker: tuple[str, ...] = ()
    while True:
        exited = proc.poll() is not None and not reader.is_alive()
        until = time.monotonic() + (0 if exited else POLL_SECONDS)  # a steady stream must not starve the checks
        try:
            while (left := until - time.monotonic()) > 0 or exited:
                update, marker = progress.get(timeout=max(left, 0))
                if marker != last_marker:
                    last_marker, last_advance = marker, time.monotonic()
                if on_progress:
                    on_progress(update)
                _stop_if_asked(proc, should_stop)
        except queue.Empty:
            pass
        if exited:
            return
        _stop_if_asked(proc, should_stop)
        if watchdog is None:
            continue
        now = time.monotonic()
        if now - last_advance > watchdog.stall_seconds:
            proc.kill()
            raise TranscodeError(
                f"ffmpeg made no progress for {watchdog.stall_seconds:.0f} s and was stopped "
                "(the source may be malformed)",
                kind=FailureKind.stalled,
            )
        if now - started > watchdog.budget_seconds:
            proc.kill()
            raise TranscodeError(
                f"encoding took longer than its limit of {watchdog.budget_seconds:.0f} s and was stopped",
                kind=FailureKind.too_long,
            )


def log_excerpt(text: str, limit: int = LOG_TAIL_LINES) -> str:
    """An ffmpeg log that ended well but whose output is wrong: its complaints first, then its last lines."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    complaints = list(dict.fromkeys(line for line in lines if _COMPLAINT.search(line)))[: limit // 2]
    last = lines[-(limit - len(complaints)) :]
    return "\n".join([*complaints, "...", *last] if complaints else last)


@dataclass(frozen=True)
class Segment:
    sequence: int  # global: seg_<sequence>.m4s
    duration: float
    size: int


@dataclass(frozen=True)
class RangeOutput:
    segments: dict[str, list[Segment]]  # per video rung, in order
    codecs: dict[str, str]  # per video rung, from its init segment: "avc1.64001f"
    poster: bool  # this range wrote poster.jpg
    tiles: int  # storyboard tiles this range wrote


@dataclass(frozen=True)
class Prepared:
    """What every part of one encode agrees on, computed once from the source (the same on every worker)."""

    info: SourceInfo
    plan: LadderPlan
    ranges: tuple[TimeRange, ...]  # empty for an audio-only source
    thumbnails: ThumbnailPlan | None
    ladder: LadderDecision | None = None  # which rungs with what rate control, and why (plan["ladder"])
    trial: Trial | None = None  # what the per-title trial measured (plan["trial"]): the parts decide from it
    trial_failure: str | None = None  # why per-title fell back to the fixed ladder (a note on the job)


def prepare(src: Path, settings: Settings) -> Prepared:
    """Probe the source (within the media limits), run the per-title trial, and plan its encode. A trial that
    fails never fails the video: the fixed ladder, and trial_failure says why."""
    limits = MediaLimits.from_settings(settings)
    info = probe(src, limits=limits)  # the API checked too; a source may come another way
    if not (settings.per_title and info.has_video):
        return plan_encode(info, settings)
    try:
        trial = run_trial(src, info, plan_for(info, settings), settings)
    except (TranscodeError, OSError, ValueError, av.error.FFmpegError) as exc:
        reason = exc.reason if isinstance(exc, TranscodeError) else f"{type(exc).__name__}: {exc}"
        log.warning("per-title trial of %s failed, fixed ladder: %s", src.name, reason)
        return replace(plan_encode(info, settings), trial_failure=f"the per-title trial encode failed: {reason}")
    prepared = plan_encode(info, settings, trial)
    if settings.av1 and trial.av1 is None:  # the H.264 ladder is per-title all the same
        return replace(prepared, trial_failure=AV1_TRIAL_FAILED)
    return prepared


AV1_TRIAL_FAILED = (
    "the AV1 trial failed (the worker's log says why): the AV1 rungs use the CRF mapped from x264's and the H.264 "
    "rungs' caps"
)


FIXED_BY_SETTING = "Kept: per-title is off, so every source gets the fixed ladder."
FIXED_WITHOUT_TRIAL = "Kept: the fixed ladder, as no trial encode measured the source (the job's notes say why)."


def plan_encode(info: SourceInfo, settings: Settings, trial: Trial | None = None) -> Prepared:
    """The encode of a probed source and its per-title trial: pure, so every part of a job rebuilds it from the
    planner's probe and trial, stored on the job."""
    plan = plan_for(info, settings)
    if not settings.per_title:
        ladder = fixed_decision(plan, FIXED_BY_SETTING)
    elif trial is None:
        ladder = fixed_decision(plan, FIXED_WITHOUT_TRIAL)
    else:
        plan, ladder = decide(plan, trial, info.video_bitrate // 1000)
    if settings.av1 and not plan.audio_only:  # twins of the rungs as finally chosen, with their rate control
        if trial is not None and trial.av1 is not None and settings.per_title:
            plan = with_av1(plan, settings.svtav1_preset, av1_rates(trial))
        else:
            plan = with_av1(plan, settings.svtav1_preset)
    ranges = (
        ()
        if plan.audio_only
        else plan_ranges(
            info.duration,
            segment_seconds=plan.segment_seconds,
            gop_seconds=plan.gop_seconds,
            first_range_seconds=settings.first_range_seconds,
            range_seconds=settings.range_seconds,
        )
    )
    return Prepared(info, plan, ranges, plan_thumbnails(info, plan), ladder, trial if settings.per_title else None)


def run_trial(src: Path, info: SourceInfo, plan: LadderPlan, settings: Settings) -> Trial:
    """Encode the per-title trial (workers.command.build_trial_argv) of the fixed plan and count its bytes.
    On the first range's critical path: a few short windows at small sizes, about a second for a 1080p source
    whatever its length, and given up after TRIAL_SECONDS_LIMIT."""
    started = time.monotonic()
    windows, sizes = trial_windows(info.duration), trial_sizes(plan)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trial-", dir=settings.tmp_dir) as tmp:
        out = Path(tmp)
        argv = build_trial_argv(
            plan, src, info.demuxer, out, windows=windows, sizes=sizes, crf=plan.crf, ffmpeg_exe=ffmpeg_exe(settings),
            max_pixels=MediaLimits.from_settings(settings).max_pixels, reference=settings.av1,
        )  # fmt: skip
        watchdog = _trial_watchdog(settings)
        run_ffmpeg(argv, sum(w.seconds for w in windows), out / "trial.log", watchdog=watchdog)
        measured = tuple(_trial_size(out / trial_file(w, h), w, h) for w, h in sizes)
        av1 = av1_top = None
        if settings.av1:
            fps = float(plan.renditions[0].fps)
            shape = Trial(plan.crf, fps, plan.gop_seconds, windows, measured)
            top = av1_top_size(plan, sizes[-1])
            try:
                av1 = _av1_trial(out, plan, windows, sizes[-1], h264_reference_rate(plan, shape), settings)
                if top is not None:
                    top_rate = h264_reference_rate(plan, shape, top=True)
                    av1_top = _av1_top_trial(src, info, out / "top", plan, windows, top, top_rate, settings)
            except (TranscodeError, OSError, ValueError, av.error.FFmpegError) as exc:
                reason = exc.reason if isinstance(exc, TranscodeError) else f"{type(exc).__name__}: {exc}"
                log.warning("AV1 trial of %s failed, AV1 CRF mapped from x264's: %s", src.name, reason)
                av1 = av1_top = None
    fps = float(plan.renditions[0].fps)
    wall = round(time.monotonic() - started, 3)
    return Trial(plan.crf, fps, plan.gop_seconds, windows, measured, wall, av1, av1_top)


def _trial_watchdog(settings: Settings) -> Watchdog:
    """Every trial encode is given up after TRIAL_SECONDS_LIMIT (the fixed ladder, a note), stalled or not."""
    return Watchdog(min(settings.ffmpeg_stall_seconds, TRIAL_SECONDS_LIMIT), TRIAL_SECONDS_LIMIT)


def _av1_top_trial(
    src: Path, info: SourceInfo, out: Path, plan: LadderPlan, windows: tuple[TrialWindow, ...], size: tuple[int, int],
    h264: tuple[str, int], settings: Settings,
) -> Av1Trial:  # fmt: skip
    """The AV1 trial at the top rung's size (workers.pertitle.av1_top_size), on the middle window alone: a 1080p
    picture costs SVT-AV1 about five times a 480p one. Its reference pictures come from the source as the trial's
    do (the x264 trial encode beside them, about a second of veryfast work, is not read)."""
    out.mkdir()
    middle = (windows[len(windows) // 2],)
    argv = build_trial_argv(
        plan, src, info.demuxer, out, windows=middle, sizes=(size,), crf=plan.crf, ffmpeg_exe=ffmpeg_exe(settings),
        max_pixels=MediaLimits.from_settings(settings).max_pixels, reference=True,
    )  # fmt: skip
    watchdog = _trial_watchdog(settings)
    run_ffmpeg(argv, middle[0].seconds, out / "trial.log", watchdog=watchdog)
    return _av1_trial(out, plan, middle, size, h264, settings)


def _av1_trial(
    out: Path, plan: LadderPlan, windows: tuple[TrialWindow, ...], size: tuple[int, int], h264: tuple[str, int],
    settings: Settings,
) -> Av1Trial:  # fmt: skip
    """The trial's reference pictures (`size`) encoded by x264 as per-title encodes the rungs (`h264`: preset and
    CRF) and by SVT-AV1 at AV1_TRIAL_CRFS, each scored against those pictures (workers.pertitle.av1_match reads
    them). Only with AV1 on: a few seconds more before the first range, which AV1's own encode time dwarfs."""
    exe, fps = ffmpeg_exe(settings), plan.renditions[0].fps
    seconds = sum(w.seconds for w in windows)
    watchdog = _trial_watchdog(settings)

    def encoded(name: str, encoder: dict[str, object]) -> tuple[float, int]:
        """(VMAF, bytes) of the reference encoded with `encoder` into out/name."""
        argv = build_reference_trial_argv(plan, out, name, windows=windows, encoder=encoder, ffmpeg_exe=exe)
        run_ffmpeg(argv, seconds, out / f"{name}.log", watchdog=watchdog)
        log_path = out / f"{name}.vmaf.json"
        argv = build_trial_vmaf_argv(out / name, out / TRIAL_REFERENCE, log_path, fps=fps, n_threads=2, ffmpeg_exe=exe)
        run_ffmpeg(argv, seconds, out / f"{name}.vmaf.log", watchdog=watchdog)
        return parse_vmaf_log(log_path.read_text()).mean, (out / name).stat().st_size

    preset, crf = h264
    h264_vmaf, h264_bytes = encoded("h264_reference.mp4", h264_trial_encoder(crf, preset))
    points = []
    for av1_crf in AV1_TRIAL_CRFS:
        vmaf, weight = encoded(av1_trial_file(av1_crf), av1_trial_encoder(av1_crf, settings.svtav1_preset))
        points.append(Av1Point(av1_crf, round(vmaf, 3), weight))
    return Av1Trial(round(h264_vmaf, 3), h264_bytes, tuple(points), *size)


def _trial_size(path: Path, width: int, height: int) -> TrialSize:
    """Frame sizes of a trial output, keyframes apart (demuxed, not decoded)."""
    frames = key_frames = key_bytes = other_bytes = 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if not packet.size:
                continue  # the demuxer's end-of-stream marker
            frames += 1
            if packet.is_keyframe:
                key_frames, key_bytes = key_frames + 1, key_bytes + packet.size
            else:
                other_bytes += packet.size
    if not key_frames:
        raise ValueError(f"the trial at {width}x{height} encoded no keyframe")
    return TrialSize(width, height, frames, key_frames, key_bytes, other_bytes)


def _log_path(out_dir: Path, what: str) -> Path:
    """Beside the encode folder: logs are never published."""
    return out_dir.parent / f"{out_dir.name}.{what}.log"


def _raise_if_disk_full(out_dir: Path, exc: Exception) -> None:
    """Output short or missing while the scratch disk is full: the disk is the cause (transient), not the source.
    The HLS muxer may drop a segment it cannot write and still exit 0."""
    if shutil.disk_usage(out_dir).free < MIN_FREE_BYTES:
        raise DiskFull(out_dir) from exc


def _with_log(log_path: Path, exc: TranscodeError) -> TranscodeError:
    """ffmpeg said it was fine but its output is wrong: what it logged on the way tells the operator why."""
    if not exc.log_tail and log_path.exists():
        exc.log_tail = log_excerpt(log_path.read_text(errors="replace"))
    return exc


def encode_range(
    src: Path,
    prepared: Prepared,
    rng: TimeRange,
    out_dir: Path,
    settings: Settings,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RangeOutput:
    """One time range of every video rung into out_dir (<rung>/init.mp4 and its seg_<n>.m4s, plus its tiles and
    the poster if they fall in it), checked: a range short of its length fails naming its time span."""
    info, plan = prepared.info, prepared.plan
    out_dir.mkdir(parents=True, exist_ok=True)
    if prepared.thumbnails is not None:
        (out_dir / TILES_DIR).mkdir(exist_ok=True)  # the image2 muxer makes no folders
    exe = ffmpeg_exe(settings)
    argv = build_range_argv(
        plan, rng, src, info.demuxer, out_dir, ffmpeg_exe=exe, thumbnails=prepared.thumbnails, duration=info.duration
    )
    length = rng.length(info.duration)
    log_path = _log_path(out_dir, f"range{rng.index}")
    limits = MediaLimits.from_settings(settings)
    run_ffmpeg(
        _decoders_capped(argv, limits), length, log_path, on_progress, should_stop, watchdog_for(length, settings),
        nice=0 if rng.index == 0 else BACKGROUND_NICE,
    )  # fmt: skip
    try:
        return _check_range(prepared, rng, out_dir)
    except TranscodeError as exc:
        _raise_if_disk_full(out_dir, exc)
        raise _with_log(log_path, exc) from None


def _read_segments(playlist_path: Path) -> list[Segment]:
    """The complete segments ffmpeg lists in its own playlist, with their sizes on disk."""
    playlist = m3u8.load(str(playlist_path))
    segments = []
    for i, seg in enumerate(playlist.segments):
        sequence = playlist.media_sequence + i
        if seg.uri != segment_name(sequence):
            raise ValueError(f"{playlist_path.parent.name}: segment {seg.uri} where {segment_name(sequence)} was due")
        segments.append(Segment(sequence, float(seg.duration), (playlist_path.parent / seg.uri).stat().st_size))
    return segments


def _short(covered: float, expected: float) -> bool:
    return expected - covered > DURATION_TOLERANCE


def _check_range(prepared: Prepared, rng: TimeRange, out_dir: Path) -> RangeOutput:
    duration = prepared.info.duration
    label = range_label(rng, duration)
    segments: dict[str, list[Segment]] = {}
    codecs: dict[str, str] = {}
    for i, r in enumerate(prepared.plan.renditions):
        rung_dir = out_dir / r.name
        own = rung_dir / range_playlist(rng)
        try:
            got = _read_segments(own)
            numbered = rung_dir / f"init_{i}.mp4"  # what the HLS muxer names it with several variants
            if numbered.exists():
                numbered.replace(rung_dir / INIT_NAME)
            codecs[r.name] = codec_string(rung_dir / INIT_NAME)[0]
        except (OSError, ValueError, av.error.FFmpegError) as exc:
            raise TranscodeError(
                f"encoded output is incomplete between {label}: {exc}", kind=FailureKind.incomplete_output
            ) from exc
        own.unlink()
        covered = sum(s.duration for s in got)
        if _short(covered, rng.length(duration)):
            raise TranscodeError(
                f"source is truncated or corrupt between {label}: only {covered:.1f} s of "
                f"{rng.length(duration):.1f} s could be decoded",
                kind=FailureKind.corrupt_source,
            )
        sequences = [s.sequence for s in got]
        due = list(range(rng.first_segment, rng.first_segment + rng.segment_count(duration)))
        if sequences != due and (rng.end is not None or sequences[:1] != due[:1]):
            raise TranscodeError(
                f"encoded output is incomplete between {label}: {r.name} has segments {sequences}, not {due}",
                kind=FailureKind.incomplete_output,
            )
        segments[r.name] = got
    poster = tiles = 0
    if prepared.thumbnails is not None:
        poster = _check_poster(prepared.thumbnails, rng, out_dir)
        tiles = _check_tiles(prepared.thumbnails, rng, out_dir)
    return RangeOutput(segments, codecs, bool(poster), tiles)


def _check_poster(plan: ThumbnailPlan, rng: TimeRange, out_dir: Path) -> bool:
    if not (rng.start <= plan.poster_at and (rng.end is None or plan.poster_at < rng.end)):
        return False
    _check_jpeg(out_dir / POSTER_NAME, (plan.poster_width, plan.poster_height))
    return True


def _check_tiles(plan: ThumbnailPlan, rng: TimeRange, out_dir: Path) -> int:
    """Tiles the range wrote; a stream that ends early writes fewer (fit_tiles copes), a wrong size is an error."""
    sb = plan.storyboard
    written = 0
    for k in range(math.ceil(rng.start / sb.interval - 1e-9), sb.tiles):
        path = out_dir / TILES_DIR / (TILE_PATTERN % k)
        if not path.exists():
            break
        _check_jpeg(path, (sb.tile_width, sb.tile_height))
        written += 1
    return written


def _check_jpeg(path: Path, size: tuple[int, int]) -> None:
    """A picture of the planned size, or a thumbnails failure (a cue box outside its sprite shows garbage)."""
    failed = FailureKind.thumbnails
    try:
        got = jpeg_size(path.read_bytes())
    except FileNotFoundError as exc:
        raise TranscodeError(f"thumbnails failed: ffmpeg wrote no {path.name}", kind=failed) from exc
    except ValueError as exc:
        raise TranscodeError(f"thumbnails failed: {path.name} is unreadable: {exc}", kind=failed) from exc
    if got != size:
        raise TranscodeError(
            f"thumbnails failed: {path.name} is {got[0]}x{got[1]}, expected {size[0]}x{size[1]}", kind=failed
        )


def measure_loudness(
    src: Path, prepared: Prepared, out_dir: Path, settings: Settings, should_stop: Callable[[], bool] | None = None
) -> Measurement:
    """EBU R128 loudness of the audio as it will be encoded: the whole file, or windows of a long one
    (workers.loudness.measure_windows: the time it takes is bounded, because the audio waits for it).
    TranscodeError or ValueError when ffmpeg fails or prints no summary."""
    info, plan = prepared.info, prepared.plan
    windows = measure_windows(info.duration)
    seconds = info.duration if windows is None else sum(w.length for w in windows)
    argv = build_loudness_argv(plan, src, info.demuxer, windows, ffmpeg_exe=ffmpeg_exe(settings))
    log_path = _log_path(out_dir, "loudness")
    limits = MediaLimits.from_settings(settings)
    run_ffmpeg(
        _decoders_capped(argv, limits), seconds, log_path, should_stop=should_stop,
        watchdog=watchdog_for(seconds, settings), nice=BACKGROUND_NICE,
    )  # fmt: skip
    return parse_ebur128(log_path.read_text(errors="replace"), sampled=windows is not None)


_WATCHDOG_KILLS = (FailureKind.stalled, FailureKind.too_long)


@dataclass(frozen=True)
class AudioLevel:
    """The loudness normalization an audio encode gets: a plan, or none with the reason when measuring failed."""

    plan: LevelPlan | None  # None: the audio keeps the source's level
    failure: str | None = None  # why it could not be measured (a note on the job); None when it was, or not asked


def level_audio(
    src: Path, prepared: Prepared, out_dir: Path, settings: Settings, should_stop: Callable[[], bool] | None = None
) -> AudioLevel:
    """Measure the source's loudness and plan the gain to the configured target (settings.loudness_*). A failed
    measurement never fails the video: the audio keeps its level and the failure is returned for a note. A stop,
    a full disk or a lost part go on up (they are not the source's fault), and so does a watchdog kill: a source
    that hangs ffmpeg would hang the encode the same way, after a second wait as long."""
    if not settings.loudness_normalize or prepared.plan.audio_kbps is None:
        return AudioLevel(None)
    try:
        measured = measure_loudness(src, prepared, out_dir, settings, should_stop)
    except TranscodeError as exc:
        if exc.kind in _WATCHDOG_KILLS:
            raise
        return AudioLevel(None, f"loudness measurement failed, the audio keeps its level: {exc.reason}")
    except ValueError as exc:
        return AudioLevel(None, f"loudness measurement failed, the audio keeps its level: {exc}")
    return AudioLevel(plan_level(measured, settings.loudness_target_lufs, settings.true_peak_dbtp))


def encode_audio(
    src: Path,
    prepared: Prepared,
    out_dir: Path,
    settings: Settings,
    on_segment: Callable[[Segment], None],
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    level: LevelPlan | None = None,
) -> list[Segment]:
    """The one audio rendition, whole file, into out_dir/audio, at the level `level` plans (level_audio; None:
    as the source is). Each segment goes to on_segment as soon as ffmpeg lists it in its growing playlist (then
    the file is complete: temp_file renames it first), so the first seconds of audio can be published while the
    rest encodes."""
    info, plan = prepared.info, prepared.plan
    audio_dir = out_dir / AUDIO_NAME
    audio_dir.mkdir(parents=True, exist_ok=True)
    own = audio_dir / AUDIO_FFMPEG_PLAYLIST
    exe = ffmpeg_exe(settings)
    argv = build_audio_argv(plan, src, info.demuxer, out_dir, ffmpeg_exe=exe, level=level)
    log_path = _log_path(out_dir, "audio")
    done: list[Segment] = []

    def report_new() -> None:
        if not own.exists():
            return
        for seg in _read_segments(own)[len(done) :]:
            done.append(seg)
            on_segment(seg)

    def progress(p: Progress) -> None:
        report_new()
        if on_progress:
            on_progress(p)

    limits = MediaLimits.from_settings(settings)
    watchdog = watchdog_for(info.duration, settings)
    run_ffmpeg(
        _decoders_capped(argv, limits), info.duration, log_path, progress, should_stop, watchdog, nice=BACKGROUND_NICE
    )
    try:
        report_new()
        codec_string(audio_dir / INIT_NAME)
    except (OSError, ValueError, av.error.FFmpegError) as exc:
        _raise_if_disk_full(out_dir, exc)
        raise _with_log(
            log_path, TranscodeError(f"encoded audio is incomplete: {exc}", kind=FailureKind.incomplete_output)
        ) from exc
    covered = sum(s.duration for s in done)
    if _short(covered, info.duration):
        _raise_if_disk_full(out_dir, ValueError("short audio"))
        raise _with_log(
            log_path,
            TranscodeError(
                f"source is truncated or corrupt: only {covered:.1f} s of its {info.duration:.1f} s of audio "
                "could be decoded",
                kind=FailureKind.corrupt_source,
            ),
        )
    own.unlink()
    return done


def _tile_count(tiles_dir: Path) -> int:
    """Tiles present from tile 0 on, without a gap (a gap would shift every later cue)."""
    k = 0
    while (tiles_dir / (TILE_PATTERN % k)).exists():
        k += 1
    return k


def make_storyboard(
    prepared: Prepared,
    tiles_dir: Path,
    out_dir: Path,
    settings: Settings,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Every range's tiles -> sprite sheets in out_dir, each JPEG checked, and the storyboard.vtt track."""
    if prepared.thumbnails is None:
        return
    failed = FailureKind.thumbnails
    try:
        plan = fit_tiles(prepared.thumbnails, _tile_count(tiles_dir))
    except ValueError as exc:
        raise TranscodeError(f"thumbnails failed: {exc}", kind=failed) from exc
    storyboard = plan.storyboard
    argv = build_sheets_argv(storyboard, tiles_dir, out_dir, ffmpeg_exe=ffmpeg_exe(settings))
    try:
        watchdog = watchdog_for(0, settings)
        log_path = _log_path(out_dir, "sheets")
        run_ffmpeg(argv, storyboard.tiles, log_path, should_stop=should_stop, watchdog=watchdog)
    except TranscodeError as exc:
        raise TranscodeError(f"thumbnails failed: sprite sheets: {exc.reason}", exc.log_tail, kind=failed) from exc
    for name in storyboard.sheet_names:
        _check_jpeg(out_dir / name, storyboard.sheet_size)
    (out_dir / STORYBOARD_VTT).write_text(storyboard_vtt(storyboard))


def transcode(
    src: Path,
    out_dir: Path,
    settings: Settings,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TranscodeResult:
    """Every part of a chunked encode, here, one after the other, into a finished VOD folder (master, media
    playlists, poster, storyboard): `streamify transcode`, with no database or queue."""
    started = time.monotonic()
    prepared = prepare(src, settings)
    info, plan = prepared.info, prepared.plan
    out_dir.mkdir(parents=True, exist_ok=True)
    # Progress over the whole job: the video ranges, then the audio (fast: counted as a tenth of the work).
    video_share = 0.9 if plan.renditions and plan.audio_kbps is not None else (1.0 if plan.renditions else 0.0)

    def part(offset: float, share: float, length: float) -> Callable[[Progress], None] | None:
        if on_progress is None:
            return None
        report = on_progress
        total = max(info.duration, 1e-9)
        return lambda p: report(replace(p, fraction=min(0.999, offset + share * p.fraction * length / total)))

    outputs: list[RangeOutput] = []
    for rng in prepared.ranges:
        length = rng.length(info.duration)
        progress = part(video_share * rng.start / max(info.duration, 1e-9), video_share, length)
        outputs.append(encode_range(src, prepared, rng, out_dir, settings, progress, should_stop))
    audio: list[Segment] = []
    level = AudioLevel(None)
    if plan.audio_kbps is not None:
        level = level_audio(src, prepared, out_dir, settings, should_stop)
        if level.failure is not None:
            log.warning("%s: %s", src.name, level.failure)
        progress = part(video_share, 1 - video_share, info.duration)
        audio = encode_audio(src, prepared, out_dir, settings, lambda _: None, progress, should_stop, level.plan)
    if prepared.thumbnails is not None:
        make_storyboard(prepared, out_dir / TILES_DIR, out_dir, settings, should_stop)
        shutil.rmtree(out_dir / TILES_DIR)
    variants = write_playlists(out_dir, plan, outputs, audio)
    if on_progress:
        on_progress(Progress(fraction=1.0, speed=None, out_time=info.duration))
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    return TranscodeResult(
        source=info, plan=plan, variants=variants, elapsed=time.monotonic() - started, files=files,
        ladder=prepared.ladder, trial_failure=prepared.trial_failure,
        loudness=level.plan.to_json() if level.plan is not None else None,
    )  # fmt: skip


def write_playlists(
    out_dir: Path, plan: LadderPlan, ranges: list[RangeOutput], audio: list[Segment]
) -> list[VariantFacts]:
    """The finished VOD playlists of every rendition and the master (core.hls), from the parts' segments."""
    facts: list[VariantFacts] = []
    entries: list[VariantEntry] = []
    for r in plan.renditions:
        segments = [s for out in ranges for s in out.segments[r.name]]
        fact = _write_media(out_dir / r.name, segments, plan.segment_seconds)
        codecs = ranges[0].codecs[r.name]
        entry = VariantEntry(r.name, fact[0], fact[1], codecs, r.width, r.height, round(float(r.fps), 3))
        entries.append(entry)
        facts.append(VariantFacts(r.name, entry.bandwidth, entry.average_bandwidth, codecs, r.width, r.height,
                                  entry.frame_rate, fact[2]))  # fmt: skip
    audio_entry = None
    if plan.audio_kbps is not None:
        peak, average, covered = _write_media(out_dir / AUDIO_NAME, audio, plan.segment_seconds)
        codecs = codec_string(out_dir / AUDIO_NAME / INIT_NAME)[0]
        audio_entry = AudioEntry(peak, average, codecs)
        facts.append(VariantFacts(AUDIO_NAME, peak, average, codecs, duration=covered))
    master = master_playlist(entries, audio_entry)
    problems = master_problems(master)
    if problems:
        raise TranscodeError("master playlist invalid: " + "; ".join(problems), kind=FailureKind.invalid_master)
    (out_dir / MASTER_NAME).write_text(master)
    return facts


def _write_media(folder: Path, segments: list[Segment], target: int) -> tuple[int, int, float]:
    """Write <folder>/index.m3u8 (VOD) from its segments, numbered from 0 without a gap; (peak, average, seconds)."""
    if [s.sequence for s in segments] != list(range(len(segments))) or not segments:
        raise TranscodeError(
            f"encoded output is incomplete: {folder.name} lacks segments", kind=FailureKind.incomplete_output
        )
    durations = [s.duration for s in segments]
    (folder / MEDIA_PLAYLIST).write_text(media_playlist(durations, target_duration=target, complete=True))
    peak, average = bandwidths([s.size for s in segments], durations)
    return peak, average, sum(durations)

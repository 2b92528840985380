"""Run one transcode into a directory: probe, plan, ffmpeg, measure, fix the master, lay out the storyboard.

Shared by the Celery task and `streamify transcode`; knows nothing of databases or blob stores.
"""

import errno
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error

from core.ffmpeg import ffmpeg_exe
from core.media_keys import MASTER_NAME, STORYBOARD_VTT
from core.media_limits import MediaLimits
from core.probe import SAFE_INPUT_OPTIONS, SourceInfo, probe
from core.processes import die_with_parent
from core.settings import Settings
from schemas.tables import FailureKind
from workers.command import build_sheets_argv, build_transcode_argv
from workers.ladder import LadderPlan, plan_ladder
from workers.master import VariantFacts, finalize_master, master_problems
from workers.measure import measure_variant
from workers.thumbnails import (
    ThumbnailPlan,
    fit_tiles,
    jpeg_size,
    plan_thumbnails,
    storyboard_vtt,
    tiles_path,
)

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
    """The ladder this install's settings ask for."""
    return plan_ladder(
        info,
        max_height=settings.ladder_max_height,
        segment_seconds=settings.segment_seconds,
        gop_seconds=settings.gop_seconds,
        crf=settings.x264_crf,
        preset=settings.x264_preset,
    )


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


def run_ffmpeg(
    argv: list[str],
    duration: float,
    log_path: Path,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    watchdog: Watchdog | None = None,
) -> None:
    """Run ffmpeg with `-progress pipe:1`. Its pipes are read on threads, so this loop never blocks on
    ffmpeg: a cancel and the watchdog act within POLL_SECONDS even when ffmpeg is stopped or stuck."""
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
            preexec_fn=die_with_parent(signal.SIGKILL),  # a worker killed outright leaves no ffmpeg behind
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


def count_frames(path: Path) -> int:
    """Video frames in a file this pipeline wrote (the storyboard tiles)."""
    with av.open(str(path), format="nut", options=SAFE_INPUT_OPTIONS) as container:
        return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)


def make_thumbnails(
    plan: ThumbnailPlan,
    out_dir: Path,
    exe: str,
    should_stop: Callable[[], bool] | None = None,
    watchdog: Watchdog | None = None,
) -> None:
    """Tiles -> sprite sheets, check every JPEG (a cue box outside its sprite shows garbage), write the track."""
    tiles = tiles_path(out_dir)
    failed = FailureKind.thumbnails
    try:
        plan = fit_tiles(plan, count_frames(tiles))
    except (OSError, ValueError, IndexError, av.error.FFmpegError) as exc:
        raise TranscodeError(f"thumbnails failed: storyboard tiles unreadable: {exc}", kind=failed) from exc
    storyboard = plan.storyboard
    argv = build_sheets_argv(storyboard, tiles, out_dir, ffmpeg_exe=exe)
    try:
        log_path = out_dir.parent / f"{out_dir.name}.sheets.log"
        run_ffmpeg(argv, storyboard.duration_ms / 1000, log_path, should_stop=should_stop, watchdog=watchdog)
    except TranscodeError as exc:
        raise TranscodeError(f"thumbnails failed: sprite sheets: {exc.reason}", exc.log_tail, kind=failed) from exc
    tiles.unlink()
    for name, (width, height) in plan.image_sizes.items():
        try:
            got = jpeg_size((out_dir / name).read_bytes())
        except FileNotFoundError as exc:
            raise TranscodeError(f"thumbnails failed: ffmpeg wrote no {name}", kind=failed) from exc
        except ValueError as exc:
            raise TranscodeError(f"thumbnails failed: {name} is unreadable: {exc}", kind=failed) from exc
        if got != (width, height):
            raise TranscodeError(
                f"thumbnails failed: {name} is {got[0]}x{got[1]}, expected {width}x{height}", kind=failed
            )
    (out_dir / STORYBOARD_VTT).write_text(storyboard_vtt(storyboard))


def transcode(
    src: Path,
    out_dir: Path,
    settings: Settings,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TranscodeResult:
    started = time.monotonic()
    limits = MediaLimits.from_settings(settings)
    info = probe(src, limits=limits)  # the API checked too, but a source may reach storage another way
    plan = plan_for(info, settings)
    thumbnails = plan_thumbnails(info, plan)
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = ffmpeg_exe(settings)
    argv = build_transcode_argv(
        plan,
        src,
        info.demuxer,
        out_dir,
        ffmpeg_exe=exe,
        has_audio=info.has_audio,
        thumbnails=thumbnails,
    )
    log_path = out_dir.parent / f"{out_dir.name}.ffmpeg.log"
    watchdog = watchdog_for(info.duration, settings)
    run_ffmpeg(_decoders_capped(argv, limits), info.duration, log_path, on_progress, should_stop, watchdog)
    try:
        return _check_and_finish(out_dir, info, plan, thumbnails, exe, started, should_stop, watchdog)
    except TranscodeError as exc:  # ffmpeg said it was fine: what it logged on the way tells the operator why not
        if not exc.log_tail:
            exc.log_tail = log_excerpt(log_path.read_text(errors="replace"))
        raise


def _check_and_finish(
    out_dir: Path,
    info: SourceInfo,
    plan: LadderPlan,
    thumbnails: ThumbnailPlan | None,
    exe: str,
    started: float,
    should_stop: Callable[[], bool] | None = None,
    watchdog: Watchdog | None = None,
) -> TranscodeResult:
    """Measure what ffmpeg wrote, refuse a short or broken ladder, write the fixed master (and thumbnails)."""
    rates = {r.name: float(r.fps) for r in plan.renditions}
    try:
        variants = [measure_variant(out_dir / name, rates.get(name)) for name in plan.variant_names]
        master_path = out_dir / MASTER_NAME
        fixed = finalize_master(master_path.read_text(), variants)
    except (OSError, ValueError, KeyError) as exc:
        raise TranscodeError(f"encoded output is incomplete: {exc}", kind=FailureKind.incomplete_output) from exc
    short = [v for v in variants if info.duration - v.duration > DURATION_TOLERANCE]
    if short:
        got = min(v.duration for v in short)
        raise TranscodeError(
            f"source is truncated or corrupt: only {got:.1f} s of its {info.duration:.1f} s could be decoded",
            kind=FailureKind.corrupt_source,
        )
    problems = master_problems(fixed)
    if problems:
        raise TranscodeError("master playlist invalid: " + "; ".join(problems), kind=FailureKind.invalid_master)
    if thumbnails is not None:
        make_thumbnails(thumbnails, out_dir, exe, should_stop, watchdog)
    master_path.write_text(fixed)
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    return TranscodeResult(source=info, plan=plan, variants=variants, elapsed=time.monotonic() - started, files=files)

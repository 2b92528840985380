"""Run one transcode into a directory: probe, plan, ffmpeg, measure, fix the master.

Shared by the Celery task and `streamify transcode`; knows nothing of databases or blob stores.
"""

import ctypes
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.ffmpeg import ffmpeg_exe
from core.settings import Settings
from ingest.probe import SourceInfo, probe
from workers.command import MASTER_NAME, build_transcode_argv
from workers.ladder import LadderPlan, plan_ladder
from workers.master import VariantFacts, finalize_master, master_problems
from workers.measure import measure_variant

LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1


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
    def __init__(self, reason: str, log_tail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


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


def _die_with_parent() -> None:
    """A worker killed outright must not leave its ffmpeg encoding for nobody (Linux; no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def run_ffmpeg(
    argv: list[str],
    duration: float,
    log_path: Path,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only a prctl call: safe between fork and exec
        )

        def drain_stderr() -> None:  # read stderr concurrently so neither pipe can fill and block ffmpeg
            assert proc.stderr
            for line in proc.stderr:
                log.write(line)
                tail.append(line.rstrip())

        reader = threading.Thread(target=drain_stderr, daemon=True)
        reader.start()
        block: dict[str, str] = {}
        assert proc.stdout
        try:
            for line in proc.stdout:
                key, _, value = line.strip().partition("=")
                block[key] = value
                if key == "progress":
                    if on_progress:
                        on_progress(parse_progress(block, duration))
                    block = {}
                    if should_stop and should_stop():
                        proc.kill()
                        raise TranscodeError("transcode stopped", "\n".join(tail))
        finally:
            code = proc.wait()
            reader.join(timeout=5)
    if code != 0:
        last = next((t for t in reversed(tail) if t and not t.startswith("[")), tail[-1] if tail else "")
        raise TranscodeError(f"ffmpeg exited with status {code}: {last}".strip(), "\n".join(tail))


def transcode(
    src: Path,
    out_dir: Path,
    settings: Settings,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TranscodeResult:
    started = time.monotonic()
    info = probe(src)
    plan = plan_for(info, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = build_transcode_argv(
        plan, src, info.demuxer, out_dir, ffmpeg_exe=ffmpeg_exe(settings), has_audio=info.has_audio
    )
    run_ffmpeg(argv, info.duration, out_dir.parent / f"{out_dir.name}.ffmpeg.log", on_progress, should_stop)

    rates = {r.name: float(r.fps) for r in plan.renditions}
    try:
        variants = [measure_variant(out_dir / name, rates.get(name)) for name in plan.variant_names]
        master_path = out_dir / MASTER_NAME
        fixed = finalize_master(master_path.read_text(), variants)
    except (OSError, ValueError, KeyError) as exc:
        raise TranscodeError(f"encoded output is incomplete: {exc}") from exc
    short = [v for v in variants if info.duration - v.duration > DURATION_TOLERANCE]
    if short:
        got = min(v.duration for v in short)
        raise TranscodeError(
            f"source is truncated or corrupt: only {got:.1f} s of its {info.duration:.1f} s could be decoded"
        )
    problems = master_problems(fixed)
    if problems:
        raise TranscodeError("master playlist invalid: " + "; ".join(problems))
    master_path.write_text(fixed)
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    return TranscodeResult(source=info, plan=plan, variants=variants, elapsed=time.monotonic() - started, files=files)

"""Ladder benchmark: the pipeline's one ffmpeg process against one ffmpeg process per rendition.

A) pipeline: what a worker runs for a time range (workers.pipeline.encode_range -> build_range_argv), here
   with ONE range covering the whole clip (plan_ranges(..., range_seconds=0)): one ffmpeg decodes the source
   once, `split`s it, scales/encodes every video rung and muxes them all with the HLS muxer's var_stream_map.
B) naive:    one ffmpeg per rung, run one after the other, each decoding the whole source again. Each is the
   same encode_range fed a one-rung plan, so x264 preset/CRF/maxrate/bufsize/keyframes and the HLS
   segmenting are the pipeline's own; only the decode-once-and-split differs.

Video only: audio is its own rendition encoded once by build_audio_argv whichever way the video goes, so it
is neither timed nor counted in the rungs' rates; no poster or storyboard tiles either. Both use the same
source, probe, plan (workers.pipeline.plan_for with default Settings) and range. Wall time is
time.perf_counter around the encodes; CPU time is the RUSAGE_CHILDREN delta. Quality: VMAF of every rung of
both outputs against the source (rung read from its HLS playlist, written by workers.pipeline.write_playlists,
scaled back to the source size with bicubic, over the first --vmaf-seconds).

    .venv/bin/python -m bench.ladder [--seconds 20] [--height 1080] [--source FILE] [--vmaf-seconds 10]
                                     [--repeat 1] [--json FILE]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

from bench.rungs import vmaf
from core.ffmpeg import ffmpeg_exe
from core.media_keys import MEDIA_PLAYLIST
from core.probe import SourceInfo, probe
from core.settings import Settings
from tests.media import make_clip
from workers.chunks import plan_ranges
from workers.measure import VariantFacts
from workers.pipeline import Prepared, RangeOutput, encode_range, plan_for, write_playlists

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
WAYS = ("pipeline", "naive")


@dataclass
class Timing:
    wall: float  # seconds
    cpu: float  # user + system seconds of the ffmpeg children
    others_cpu: float | None  # CPU seconds the rest of the machine used meanwhile (contention), Linux only


@dataclass
class RungOutput:
    bytes: int  # init + segments on disk
    kbps: float  # segment bytes * 8 / playlist duration (video only), as the master's AVERAGE-BANDWIDTH
    vmaf: float
    vmaf_frames: int


@dataclass
class RungRow:
    name: str
    width: int
    height: int
    cap_kbps: int  # the plan's video maxrate (audio is its own rendition)
    pipeline: RungOutput
    naive: RungOutput


# --- source -------------------------------------------------------------------------------------------


def cached_source(seconds: int, height: int) -> Path:
    """testsrc2 + noise, 16:9 at 30 fps with a stereo tone (tests.media.make_clip), generated once."""
    width = round(height * 16 / 9 / 2) * 2
    path = CACHE_DIR / f"testsrc2-{width}x{height}p30-{seconds}s.mp4"
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.stem}.part.mp4")
        make_clip(part, size=f"{width}x{height}", rate=30, seconds=seconds, channels=2)
        part.replace(path)
    return path


# --- encodes --------------------------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_busy() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all processes), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_idle(max_wait: float, window: float = 5.0, threshold: float = 0.2) -> bool:
    """Wait (at most max_wait s) for a window in which other processes used under threshold of a core."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        before = _machine_busy()
        time.sleep(window)
        after = _machine_busy()
        if before is None or after is None or (after - before) / window < threshold:
            return True
    return False


def _run_timed(encodes: list[Callable[[], RangeOutput]]) -> tuple[Timing, list[RangeOutput]]:
    """Run the encodes one after the other; each is the worker's own encode_range (its ffmpeg runner and checks)."""
    busy0, cpu0, t0 = _machine_busy(), _children_cpu(), time.perf_counter()
    outputs = [encode() for encode in encodes]
    wall, cpu, busy1 = time.perf_counter() - t0, _children_cpu() - cpu0, _machine_busy()
    others = max(0.0, busy1 - busy0 - cpu) if busy0 is not None and busy1 is not None else None
    return Timing(wall=wall, cpu=cpu, others_cpu=others), outputs


def one_range(src: Path, settings: Settings) -> Prepared:
    """The source probed and planned as a worker would, in ONE time range (chunking off), without thumbnails."""
    info = probe(src)
    plan = plan_for(info, settings)
    if plan.audio_only:
        raise SystemExit(f"{src}: no video, nothing to compare")
    ranges = plan_ranges(
        info.duration,
        segment_seconds=plan.segment_seconds,
        gop_seconds=plan.gop_seconds,
        first_range_seconds=settings.first_range_seconds,
        range_seconds=0,
    )
    return Prepared(info, plan, ranges, thumbnails=None)


def ways(prepared: Prepared) -> dict[str, list[Prepared]]:
    """A: the whole ladder in one process. B: one process per rung, each writing out/<rung>/ like A."""
    rungs = prepared.plan.renditions
    return {
        "pipeline": [prepared],
        "naive": [replace(prepared, plan=replace(prepared.plan, renditions=(r,))) for r in rungs],
    }


def encode(parts: list[Prepared], src: Path, out: Path, settings: Settings) -> tuple[Timing, list[VariantFacts]]:
    """Time the encodes, then write the rungs' playlists (untimed) as the worker does at the end."""
    (rng,) = parts[0].ranges
    timing, outputs = _run_timed([partial(encode_range, src, p, rng, out, settings) for p in parts])
    merged = RangeOutput(
        segments={k: v for o in outputs for k, v in o.segments.items()},
        codecs={k: v for o in outputs for k, v in o.codecs.items()},
        poster=False,
        tiles=0,
    )
    video_only = replace(parts[0].plan, renditions=tuple(r for p in parts for r in p.plan.renditions), audio_kbps=None)
    return timing, write_playlists(out, video_only, [merged], [])


# --- quality --------------------------------------------------------------------------------------------


def rung_output(
    facts: VariantFacts, variant_dir: Path, src: Path, info: SourceInfo, seconds: float, ffmpeg: str, log: Path
) -> RungOutput:
    on_disk = sum(p.stat().st_size for p in variant_dir.iterdir() if p.name != MEDIA_PLAYLIST)
    score, frames = vmaf(variant_dir / MEDIA_PLAYLIST, src, info, seconds, ffmpeg, log)
    return RungOutput(bytes=on_disk, kbps=facts.average_bandwidth / 1000, vmaf=score, vmaf_frames=frames)


# --- report ---------------------------------------------------------------------------------------------


def ffmpeg_version(ffmpeg: str) -> str:
    out = subprocess.run([ffmpeg, "-hide_banner", "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].removeprefix("ffmpeg version ").split(" Copyright")[0]


def medians(runs: dict[str, list[Timing]], field: str) -> dict[str, float]:
    return {w: statistics.median(v for t in ts if (v := getattr(t, field)) is not None) for w, ts in runs.items()}


def render(info: SourceInfo, settings: Settings, rows: list[RungRow], runs: dict[str, list[Timing]]) -> str:
    n = len(runs["pipeline"])
    wall, cpu = medians(runs, "wall"), medians(runs, "cpu")
    lines = [
        f"source {info.display_width}x{info.display_height} {info.fps:g} fps {info.duration:.1f} s; "
        f"x264 {settings.x264_preset} crf {settings.x264_crf}; {len(rows)} rungs; median of {n} run(s)",
        f"{'':26}{'-------- pipeline --------':>28}  {'--------- naive ----------':>26}",
        f"{'rung':<6}{'size':>10}{'cap kb/s':>10}  {'MB':>7}{'kb/s':>8}{'VMAF':>8}{'frames':>7}"
        f"  {'MB':>7}{'kb/s':>8}{'VMAF':>8}{'frames':>7}",
    ]
    for r in rows:
        cells = "  ".join(
            f"{o.bytes / 1e6:>7.2f}{o.kbps:>8.0f}{o.vmaf:>8.2f}{o.vmaf_frames:>7}" for o in (r.pipeline, r.naive)
        )
        lines.append(f"{r.name:<6}{f'{r.width}x{r.height}':>10}{r.cap_kbps:>10}  {cells}")
    total = {w: sum(getattr(r, w).bytes for r in rows) / 1e6 for w in WAYS}
    lines += [
        f"total MB      pipeline {total['pipeline']:7.2f}   naive {total['naive']:7.2f}",
        f"wall s        pipeline {wall['pipeline']:7.1f}   naive {wall['naive']:7.1f}   "
        f"naive/pipeline {wall['naive'] / wall['pipeline']:.2f}x",
        f"cpu s         pipeline {cpu['pipeline']:7.1f}   naive {cpu['naive']:7.1f}   "
        f"naive/pipeline {cpu['naive'] / cpu['pipeline']:.2f}x",
        f"speed (x realtime)  pipeline {info.duration / wall['pipeline']:.2f}   "
        f"naive {info.duration / wall['naive']:.2f}",
    ]
    if all(t.others_cpu is not None for ts in runs.values() for t in ts):
        others = medians(runs, "others_cpu")
        lines.append(
            f"other processes on the machine meanwhile: {others['pipeline']:.1f} / {others['naive']:.1f} cpu s "
            f"(pipeline / naive; 0 = the benchmark had the machine to itself)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="clip to encode (default: a generated, cached one)")
    parser.add_argument("--seconds", type=int, default=20, help="length of the generated clip (default 20)")
    parser.add_argument("--height", type=int, default=1080, help="height of the generated 16:9 clip (default 1080)")
    parser.add_argument("--vmaf-seconds", type=float, default=10.0, help="VMAF over the first N s (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="encode each way N times, order alternating; median")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, metavar="S",
        help="before each timed encode, wait up to S s for the machine to be idle (shared machines)",
    )  # fmt: skip
    args = parser.parse_args()

    settings = Settings()
    ffmpeg = ffmpeg_exe(settings)
    src = (args.source or cached_source(args.seconds, args.height)).resolve()
    prepared = one_range(src, settings)
    info, plan = prepared.info, prepared.plan
    parts = ways(prepared)

    work = Path(tempfile.mkdtemp(prefix="streamify-bench-"))
    try:
        logs = work / "logs"
        logs.mkdir()
        runs: dict[str, list[Timing]] = {w: [] for w in WAYS}
        facts: dict[str, dict[str, VariantFacts]] = {}
        for i in range(args.repeat):
            for way in WAYS if i % 2 == 0 else reversed(WAYS):  # A,B then B,A: neither always goes first
                if args.wait_idle > 0 and not wait_for_idle(args.wait_idle):
                    print(f"machine still busy after {args.wait_idle:g} s; measuring anyway")
                timing, variants = encode(parts[way], src, work / f"{way}-{i}", settings)
                runs[way].append(timing)
                if i == 0:
                    facts[way] = {v.name: v for v in variants}
                others = "?" if timing.others_cpu is None else f"{timing.others_cpu:.1f}"
                print(
                    f"run {i + 1}/{args.repeat} {way:<8} wall {timing.wall:6.1f} s  cpu {timing.cpu:6.1f} s  "
                    f"(other processes meanwhile: {others} cpu s)"
                )

        rows: list[RungRow] = []
        for r in plan.renditions:
            out = {
                w: rung_output(
                    facts[w][r.name],
                    work / f"{w}-0" / r.name,
                    src,
                    info,
                    args.vmaf_seconds,
                    ffmpeg,
                    logs / f"{w}-{r.name}.json",
                )
                for w in WAYS
            }
            rows.append(RungRow(r.name, r.width, r.height, r.maxrate_kbps, out["pipeline"], out["naive"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(render(info, settings, rows, runs))
    wall, cpu = medians(runs, "wall"), medians(runs, "cpu")
    if args.json:
        result = {
            "machine": {"nproc": os.cpu_count(), "ffmpeg": ffmpeg_version(ffmpeg)},
            "source": {"path": str(src), **asdict(info), "sample_aspect": str(info.sample_aspect)},
            "plan": {
                "preset": plan.preset,
                "crf": plan.crf,
                "segment_seconds": plan.segment_seconds,
                "gop_seconds": plan.gop_seconds,
            },
            "vmaf_seconds": args.vmaf_seconds,
            "runs": {w: [asdict(t) for t in ts] for w, ts in runs.items()},
            "wall": wall,
            "cpu": cpu,
            "wall_ratio_naive_over_pipeline": wall["naive"] / wall["pipeline"],
            "cpu_ratio_naive_over_pipeline": cpu["naive"] / cpu["pipeline"],
            "rungs": [asdict(r) for r in rows],
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

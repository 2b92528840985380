"""Ladder benchmark: this pipeline's one ffmpeg process against one ffmpeg per rendition.

Both encodes use the same plan, the same x264 settings and the same HLS muxing (the naive side is the
project's own argv builder, fed one rung at a time), so the only difference is decoding the source
once versus once per rung. Quality is checked with VMAF per rung against the source.

    .venv/bin/python -m bench.ladder [--seconds 20] [--size 1920x1080] [--source FILE] [--repeat 1]
"""

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import m3u8

from core.ffmpeg import ffmpeg_exe
from core.settings import Settings
from ingest.probe import SourceInfo, probe
from workers.command import MEDIA_PLAYLIST, build_transcode_argv
from workers.ladder import LadderPlan
from workers.pipeline import plan_for, run_ffmpeg


@dataclass
class Run:
    wall: float
    cpu: float


@dataclass
class RungResult:
    name: str
    size: str
    kbps_pipeline: float
    kbps_naive: float
    vmaf_pipeline: float
    vmaf_naive: float


def generate_source(path: Path, seconds: int, size: str, ffmpeg: str) -> Path:
    """testsrc2 with temporal noise (so the encoder has real work) and a stereo tone, as NOTES.md uses."""
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30,noise=alls=6:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "6M", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-ac", "2", "-b:a", "192k", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argvs: list[list[str]], duration: float, log_dir: Path) -> Run:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    for i, argv in enumerate(argvs):
        run_ffmpeg(argv, duration, log_dir / f"ffmpeg-{i}.log")
    return Run(time.perf_counter() - t0, _children_cpu() - cpu0)


def encode_pipeline(plan: LadderPlan, src: Path, info: SourceInfo, out: Path, ffmpeg: str) -> Run:
    out.mkdir(parents=True)
    argv = build_transcode_argv(plan, src, info.demuxer, out, ffmpeg_exe=ffmpeg, has_audio=info.has_audio)
    return _timed([argv], info.duration, out)


def encode_naive(plan: LadderPlan, src: Path, info: SourceInfo, out: Path, ffmpeg: str) -> Run:
    """One ffmpeg per rung, each decoding the whole source again: what most self-hosted platforms do."""
    out.mkdir(parents=True)
    argvs = []
    for rung in plan.renditions:  # each writes out/<rung>/, like the pipeline's %v directories
        one = replace(plan, renditions=(rung,))
        argvs.append(build_transcode_argv(one, src, info.demuxer, out, ffmpeg_exe=ffmpeg, has_audio=info.has_audio))
    return _timed(argvs, info.duration, out)


def rendition_file(variant_dir: Path, dest: Path) -> tuple[Path, float]:
    """init + segments as one MP4, and the rendition's bitrate in kb/s."""
    playlist = m3u8.load(str(variant_dir / MEDIA_PLAYLIST))
    init = variant_dir / playlist.segment_map[0].uri
    with dest.open("wb") as out:
        out.write(init.read_bytes())
        for seg in playlist.segments:
            out.write((variant_dir / seg.uri).read_bytes())
    media_bytes = sum((variant_dir / s.uri).stat().st_size for s in playlist.segments)
    seconds = sum(s.duration for s in playlist.segments)
    return dest, media_bytes * 8 / seconds / 1000


def vmaf(distorted: Path, source: Path, width: int, height: int, seconds: float, ffmpeg: str, log: Path) -> float:
    graph = (
        f"[0:v]scale={width}:{height}:flags=bicubic,setpts=PTS-STARTPTS[d];"
        f"[1:v]setpts=PTS-STARTPTS[r];[d][r]libvmaf=n_threads=2:log_fmt=json:log_path={log}"
    )
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-t", str(seconds), "-i", str(distorted),
         "-t", str(seconds), "-i", str(source), "-lavfi", graph, "-f", "null", "-"],
        check=True,
    )  # fmt: skip
    return float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="clip to encode (default: a generated one)")
    parser.add_argument("--seconds", type=int, default=20, help="length of the generated clip")
    parser.add_argument("--size", default="1920x1080", help="size of the generated clip")
    parser.add_argument("--vmaf-seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1, help="encode each way N times, alternating; median")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    settings = Settings()
    ffmpeg = ffmpeg_exe(settings)
    work = Path(tempfile.mkdtemp(prefix="streamify-bench-"))
    try:
        src = args.source or generate_source(work / "source.mp4", args.seconds, args.size, ffmpeg)
        info = probe(src)
        plan = plan_for(info, settings)
        runs: dict[str, list[Run]] = {"pipeline": [], "naive": []}
        for i in range(args.repeat):
            for way, encode in (("pipeline", encode_pipeline), ("naive", encode_naive)):
                out = work / f"{way}-{i}"
                runs[way].append(encode(plan, src, info, out, ffmpeg))
        rungs = []
        for r in plan.renditions:
            facts = {}
            for way in ("pipeline", "naive"):
                mp4, kbps = rendition_file(work / f"{way}-0" / r.name, work / f"{way}-{r.name}.mp4")
                score = vmaf(mp4, src, info.display_width, info.display_height, args.vmaf_seconds, ffmpeg,
                             work / f"{way}-{r.name}.json")  # fmt: skip
                facts[way] = (kbps, score)
            rungs.append(RungResult(r.name, f"{r.width}x{r.height}", *(facts["pipeline"][0], facts["naive"][0]),
                                    facts["pipeline"][1], facts["naive"][1]))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)

    wall = {w: statistics.median(r.wall for r in rs) for w, rs in runs.items()}
    cpu = {w: statistics.median(r.cpu for r in rs) for w, rs in runs.items()}
    print(f"source: {info.display_width}x{info.display_height} {info.fps:g} fps, {info.duration:.1f} s; "
          f"preset {settings.x264_preset}, crf {settings.x264_crf}; {len(plan.renditions)} rungs")  # fmt: skip
    print(f"{'rung':<6} {'size':>10} {'kb/s pipe':>10} {'kb/s naive':>10} {'VMAF pipe':>10} {'VMAF naive':>10}")
    for r in rungs:
        print(f"{r.name:<6} {r.size:>10} {r.kbps_pipeline:>10.0f} {r.kbps_naive:>10.0f} "
              f"{r.vmaf_pipeline:>10.2f} {r.vmaf_naive:>10.2f}")  # fmt: skip
    print(f"wall  pipeline {wall['pipeline']:.1f} s   naive {wall['naive']:.1f} s   "
          f"naive/pipeline = {wall['naive'] / wall['pipeline']:.2f}x")  # fmt: skip
    print(f"cpu   pipeline {cpu['pipeline']:.1f} s   naive {cpu['naive']:.1f} s   "
          f"naive/pipeline = {cpu['naive'] / cpu['pipeline']:.2f}x")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"wall": wall, "cpu": cpu, "rungs": [asdict(r) for r in rungs]}, indent=2))


if __name__ == "__main__":
    main()

"""Quality per bit (issue 14): today's fixed ladder vs the per-title ladder vs the AV1 ladder, on varied clips.

Each clip is generated once with the workers' FFmpeg build from lavfi sources (bench.sources: kept in
<data dir>/bench-cache) and encoded three times by `workers.pipeline.transcode` (what `streamify transcode` runs:
every part of a chunked encode, no services), with Settings overrides only:

- fixed:     per_title=False, av1=False (today's ladder: the same rungs and caps for every source);
- per-title: per_title=True,  av1=False (the ladder fitted to the source);
- AV1:       per_title=True,  av1=True  (the AV1 rungs beside the H.264 ones in the same master).

measure_vmaf=False in all three: the encode CPU figure is the encode's (resource.getrusage of this process and its
waited-for ffmpeg children around transcode()), and VMAF is measured here instead, the same way for every rung
(bench.rungs: rung read through the HLS demuxer, upscaled bicubic to the source's size, libvmaf against the source,
whole clip). A rung planned exactly like one measured before (same size, codec, CRF and caps) reuses that
measurement.

Comparisons (pure, tests/test_bench_quality.py):
- per-title vs fixed, rung by rung (same name): bytes saved and VMAF difference; a rung the per-title ladder
  dropped saves all its bytes (said so in the table). Goals: over the easy clips (slides, talking head,
  animation, static image) >= 25 % fewer bytes with no rung's VMAF more than 1 point below the fixed one's; on the
  hard clips (noise, grain) no rung's VMAF more than 1 point below.
- AV1 vs its H.264 twin (same size) of the same ladder: bytes saved and VMAF difference. Goal: on the top rungs
  (the TOP_RUNGS highest of each clip) >= 30 % fewer bytes at equal VMAF (within 1 point either way); a pair
  published further apart is counted with its AV1 rung encoded again to its twin's VMAF (bench.equal_vmaf), and
  fails the goal when no such encode (or bound) was found, instead of claiming a saving at another quality.
- encode CPU seconds of each ladder (reported, no goal).

While a branch has no per-title or AV1 behaviour (the per-title plan is the fixed one on every clip; no AV1 rung
anywhere), its rows say "not built yet" (n/a) instead of a figure. Exit status 1 when a goal FAILs.

    .venv/bin/python -m bench.quality [--quick] [--clips slides,noise] [--ladders fixed,per-title] [--seconds 10]
                                      [--json FILE] [--keep]
"""

import argparse
import hashlib
import json
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from bench.equal_vmaf import Attempt, encode_rung, search
from bench.rungs import RungQuality, count_frames, rung_quality
from bench.sources import DEFAULT_CACHE, generated_once
from bench.verdicts import Row, render
from core.encoding import VideoCodec

if TYPE_CHECKING:
    from workers.ladder import LadderPlan, VideoRendition

console = Console(width=160)

VMAF_TOLERANCE = 1.0  # points: "no more than 1 point lower", "equal VMAF (±1)"
PER_TITLE_EASY_SAVING = 0.25  # fewer bytes summed over the easy clips
AV1_SAVING = 0.30  # fewer bytes than the H.264 twin, on the top rungs
TOP_RUNGS = 2  # the highest rungs of each clip, where most bytes go, that the AV1 goal is judged on
FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)


# -- the clips ------------------------------------------------------------------------------------------------


def _slides(w: int, h: int, rate: int, seconds: float) -> str:
    """A slide deck as a screen recording: white slides of text that change every third of the clip, a header
    bar, a bar chart on the second slide, a small cursor wandering over them."""
    font = next((f for f in FONTS if f.exists()), None)
    if font is None:
        raise SystemExit(f"the slides clip draws text with DejaVu Sans: install fonts-dejavu-core ({FONTS[0]})")
    decks = (
        ("Quarterly review", ("Revenue grew in every region", "Churn is down to two per month",
                              "Support tickets answered within a day", "Three new enterprise customers")),
        ("Roadmap for next year", ("Per-title encoding of every upload", "Loudness normalized to one target",
                                   "An AV1 ladder beside H.264", "Measured quality on every rendition")),
        ("Questions and next steps", ("Send feedback to the product team", "Slides are in the shared folder",
                                      "Next review in three months", "Thank you for watching")),
    )  # fmt: skip
    period = seconds / len(decks)
    title, body = h // 14, h // 24
    chain = [f"drawbox=x=0:y=0:w=iw:h={h * 14 // 100}:color=0x1f4e79:t=fill"]
    for i, (heading, bullets) in enumerate(decks):
        on = f"enable='between(t,{i * period:.3f},{(i + 1) * period - 0.001:.3f})'"
        chain.append(f"drawtext=fontfile={font}:text='{heading}':fontsize={title}:fontcolor=white:"
                     f"x={w // 20}:y={h * 4 // 100}:{on}")  # fmt: skip
        for j, line in enumerate(bullets):
            chain.append(f"drawtext=fontfile={font}:text='- {line}':fontsize={body}:fontcolor=0x202020:"
                         f"x={w // 14}:y={h * 22 // 100 + j * body * 2}:{on}")  # fmt: skip
        if i == 1:
            for k, (height, colour) in enumerate(((30, "0x4472c4"), (45, "0xed7d31"), (60, "0x70ad47"))):
                chain.append(f"drawbox=x={w * 62 // 100 + k * w // 12}:y={h * 90 // 100 - h * height // 100}:"
                             f"w={w // 16}:h={h * height // 100}:color={colour}:t=fill:{on}")  # fmt: skip
    cursor = f"color=c=black:s={max(2, w // 160)}x{max(2, h // 60)}:r={rate}"
    move = f"x='{w * 0.4:.0f}+{w * 0.3:.0f}*sin(0.7*t)':y='{h * 0.5:.0f}+{h * 0.25:.0f}*sin(1.1*t+1)'"
    return f"color=c=white:s={w}x{h}:r={rate},{','.join(chain)}[deck];{cursor}[cursor];[deck][cursor]overlay={move}"


def _still(source: str, rate: int) -> str:
    """The first frame of `source`, repeated at `rate` frames a second."""
    return f"{source},trim=end_frame=1,loop=loop=-1:size=1,setpts=N/({rate}*TB)"


def _talking_head(w: int, h: int, rate: int, seconds: float) -> str:
    """A still, soft background (a blurred frame) and a face-sized region of mild moving detail that sways a
    little; a webcam's faint sensor noise over everything."""
    fw, fh = w * 28 // 100 // 2 * 2, h * 60 // 100 // 2 * 2
    background = _still(f"testsrc2=s={w}x{h}:r={rate}", rate) + f",gblur=sigma={h / 60:.1f},eq=saturation=0.5"
    face = f"mandelbrot=s={fw}x{fh}:r={rate}:maxiter=200,gblur=sigma=1.5"
    sway = f"x='{(w - fw) // 2}+{w * 0.03:.0f}*sin(2*PI*t/4)':y='{h // 4}+{h * 0.015:.0f}*sin(2*PI*t/2.3)'"
    return f"{background}[bg];{face}[face];[bg][face]overlay={sway},noise=alls=3:allf=t"


def _animation(w: int, h: int, rate: int, seconds: float) -> str:
    """Flat colours, sharp edges and motion, like a cartoon: testsrc2 (moving shapes over colour bars)."""
    return f"testsrc2=s={w}x{h}:r={rate}"


def _noise(w: int, h: int, rate: int, seconds: float) -> str:
    """High motion and noise: a coloured Game of Life that changes every frame, panning, under strong grain."""
    return (f"life=s={w // 4}x{h // 4}:r={rate}:ratio=0.35:mold=25:random_seed=7:life_color=0xe0c040:"
            f"death_color=0x203060:mold_color=0xb04030,scale={w}:{h}:flags=bicubic,"
            f"scroll=horizontal=0.01:vertical=0.004,noise=alls=16:allf=t+u")  # fmt: skip


def _grain(w: int, h: int, rate: int, seconds: float) -> str:
    """A dark film scene: soft, low-luma, low-saturation pictures under temporal film grain."""
    return (f"testsrc2=s={w}x{h}:r={rate},gblur=sigma=2,eq=brightness=-0.28:contrast=0.55:saturation=0.5,"
            f"noise=c0s=16:c0f=t+u:c1s=5:c1f=t:c2s=5:c2f=t")  # fmt: skip


def _static_image(w: int, h: int, rate: int, seconds: float) -> str:
    """A still picture for the whole clip, as music uploads are: one detailed frame of the Mandelbrot set."""
    return _still(f"mandelbrot=s={w}x{h}:r={rate}:maxiter=300", rate)


SPEECH = "0.25*sin(2*PI*(150+40*sin(2*PI*0.7*t))*t)*(0.6+0.4*sin(2*PI*3*t))+0.02*(random(0)-0.5)"
MUSIC = ("0.12*sin(2*PI*220*t)+0.1*sin(2*PI*277.18*t)+0.1*sin(2*PI*329.63*t)"
         "+0.25*sin(2*PI*55*t)*exp(-8*mod(t,0.5))")  # fmt: skip


@dataclass(frozen=True)
class Clip:
    name: str
    easy: bool  # the per-title ladder must save bytes on it (easy) or only not lose quality (hard)
    width: int
    height: int
    rate: int
    video: Callable[[int, int, int, float], str]  # (w, h, rate, seconds) -> a lavfi graph of sources and filters
    audio: str = SPEECH  # an aevalsrc expression (the audio is encoded once, the same in every ladder)

    @property
    def what(self) -> str:
        return (self.video.__doc__ or "").split("\n")[0]


CLIPS: tuple[Clip, ...] = (
    Clip("slides", True, 1920, 1080, 30, _slides),
    Clip("talking-head", True, 1280, 720, 30, _talking_head),
    Clip("animation", True, 1280, 720, 24, _animation),
    Clip("static-image", True, 1280, 720, 30, _static_image, MUSIC),
    Clip("noise", False, 1280, 720, 30, _noise),
    Clip("grain", False, 1280, 720, 24, _grain),
)
QUICK = ("slides", "talking-head", "noise")


def source_kbps(clip: Clip) -> int:
    """A recorder's constant bit rate for the clip's size: 8 Mb/s at 1080p, in proportion below (5 Mb/s at 720p)."""
    return max(1000, round(8000 * (clip.width * clip.height / (1920 * 1080)) ** 0.6 / 100) * 100)


def clip_argv(ffmpeg: str, clip: Clip, seconds: float, out: Path) -> list[str]:
    """The clip as an upload would be: H.264 at a screen or camera recorder's constant bit rate (x264 CBR with
    filler, as OBS records) with stereo AAC. Constant, because the fixed ladder caps every rung at the source's bit
    rate: a slide deck stored at a quality CRF is a few hundred kb/s, and the cap, not the ladder, would decide."""
    video = clip.video(clip.width, clip.height, clip.rate, seconds)
    graph = f"{video}[v];aevalsrc=exprs='{clip.audio}':s=48000:c=stereo[a]"
    rate = source_kbps(clip)
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-filter_complex", graph,
            "-map", "[v]", "-map", "[a]", "-t", f"{seconds:g}",
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", f"{rate}k", "-minrate", f"{rate}k",
            "-maxrate", f"{rate}k", "-bufsize", f"{2 * rate}k", "-x264-params", "nal-hrd=cbr", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", str(out)]  # fmt: skip


def cached_clip(cache: Path, clip: Clip, seconds: float, ffmpeg: str) -> Path:
    """Generated once; the name carries a digest of the generating command, so changing a clip makes a new file."""
    digest = hashlib.sha256(" ".join(clip_argv("ffmpeg", clip, seconds, Path("out"))).encode()).hexdigest()[:10]
    path = cache / f"quality-{clip.name}-{clip.width}x{clip.height}-{seconds:g}s-{digest}.mp4"
    return generated_once(path, lambda part: clip_argv(ffmpeg, clip, seconds, part), console.print)


# -- the ladders ----------------------------------------------------------------------------------------------


class Ladder(StrEnum):
    fixed = "fixed"
    per_title = "per-title"
    av1 = "av1"


OVERRIDES: dict[Ladder, tuple[bool, bool]] = {  # (per_title, av1)
    Ladder.fixed: (False, False),
    Ladder.per_title: (True, False),
    Ladder.av1: (True, True),
}


@dataclass
class Rung:
    """One video rendition of an encoded ladder, as planned and as measured."""

    name: str
    codec: VideoCodec
    width: int
    height: int
    crf: int
    maxrate_kbps: int
    bytes: int  # init + segments
    kbps: float
    vmaf: float
    frames: int


@dataclass
class LadderRun:
    ladder: Ladder
    cpu: float  # CPU seconds of the encode: this process and its ffmpeg children
    wall: float
    plan: list[dict]  # the plan's video renditions and CRF: equal plans = the same ladder
    rungs: list[Rung] = field(default_factory=list)


@dataclass
class ClipRun:
    clip: str
    easy: bool
    frames: int  # of the source
    runs: dict[Ladder, LadderRun] = field(default_factory=dict)
    # AV1 rungs of the top pairs not within VMAF_TOLERANCE of their twin, encoded again (bench.equal_vmaf): by the
    # AV1 rung's name, every attempt, and the attempt at equal VMAF as a Rung when one was found
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)
    at_equal: dict[str, Rung] = field(default_factory=dict)
    bounds: list[str] = field(default_factory=list)  # of at_equal: upper bounds of the bytes (bench.equal_vmaf.search)


def _cpu() -> float:
    """CPU seconds so far of this process and of every child it waited for (the encode's ffmpeg processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def encode(src: Path, out: Path, ladder: Ladder) -> tuple[LadderRun, list[tuple[Path, dict]], "LadderPlan"]:
    """One ladder of `src` into `out` by the pipeline's own transcode(); the run, each rung's folder and plan, and
    the plan itself."""
    from core.settings import Settings
    from workers.pipeline import transcode

    per_title, av1 = OVERRIDES[ladder]
    settings = Settings(per_title=per_title, av1=av1, measure_vmaf=False)
    cpu0, t0 = _cpu(), time.monotonic()
    result = transcode(src, out, settings)
    wall, cpu = time.monotonic() - t0, _cpu() - cpu0
    plan = result.plan
    rungs: list[dict[str, Any]] = [
        {"name": r.name, "codec": r.codec, "width": r.width, "height": r.height, "fps": str(r.fps),
         "crf": plan.crf if r.crf is None else r.crf, "maxrate_kbps": r.maxrate_kbps, "bufsize_kbps": r.bufsize_kbps,
         "preset": plan.svtav1_preset if r.codec == VideoCodec.av1 else plan.preset}
        for r in plan.renditions
    ]  # fmt: skip
    return LadderRun(ladder, cpu, wall, rungs), [(out / r["name"], r) for r in rungs], plan


def measure(folders: list[tuple[Path, dict]], src: Path, seconds: float, ffmpeg: str, logs: Path,
            measured: dict[str, RungQuality]) -> list[Rung]:  # fmt: skip
    """Every rung's bytes, bit rate, frames and VMAF. `measured` holds the clip's rungs measured so far by their
    plan: a rung planned exactly like one measured before (the fixed ladder's rung that per-title kept as it was,
    the H.264 twins of the AV1 ladder) is the same encode and reuses that measurement (x264 repeats itself only to
    within a fraction of a VMAF point between runs; measuring it again would report that noise as a difference
    and cost a VMAF run)."""
    rungs = []
    for folder, planned in folders:
        key = json.dumps(planned, sort_keys=True, default=str)
        if key not in measured:
            log = logs / f"{folder.parent.parent.name}-{folder.parent.name}-{folder.name}.json"
            measured[key] = q = rung_quality(folder, src, seconds, ffmpeg, log)
            console.print(f"    {folder.name}: VMAF {q.vmaf:.2f}, {q.kbps:.0f} kb/s")
        q = measured[key]
        rungs.append(Rung(planned["name"], planned["codec"], planned["width"], planned["height"], planned["crf"],
                          planned["maxrate_kbps"], q.bytes, q.kbps, q.vmaf, q.frames))  # fmt: skip
    return rungs


def equalize(run: ClipRun, plan: "LadderPlan", src: Path, out: Path, seconds: float, ffmpeg: str, logs: Path) -> None:
    """The AV1 rungs of the clip's top pairs published more than VMAF_TOLERANCE from their twin, encoded again
    until they score what the twin does (bench.equal_vmaf): run.attempts, run.at_equal."""
    pairs = top(av1_pairs(run.clip, run.easy, run.runs[Ladder.av1].rungs))
    for p in pairs:
        if p.base is None or p.other is None or p.equal:
            continue
        other, rendition = p.other, next(r for r in plan.renditions if r.name == p.other.name)

        def attempt(crf: int, cap: int, other: Rung = other, rendition: "VideoRendition" = rendition) -> Attempt:
            folder = encode_rung(src, out / f"{other.name}-{crf}-{cap}", plan, rendition, crf, cap)
            q = rung_quality(folder, src, seconds, ffmpeg, logs / f"{run.clip}-equal-{other.name}-{crf}-{cap}.json")
            console.print(f"    {other.name} again at CRF {crf}, cap {cap} kb/s: VMAF {q.vmaf:.2f}, {q.kbps:.0f} kb/s")
            return Attempt(crf, cap, q.kbps, q.vmaf, q.bytes, q.frames)

        first = Attempt(other.crf, other.maxrate_kbps, other.kbps, other.vmaf, other.bytes, other.frames)
        found, bound, attempts = search(first, p.base.vmaf, VMAF_TOLERANCE, attempt)
        run.attempts[other.name] = attempts
        if bound:
            run.bounds.append(other.name)
        if found is not None:
            run.at_equal[other.name] = replace(other, crf=found.crf, maxrate_kbps=found.cap_kbps, bytes=found.bytes,
                                               kbps=found.kbps, vmaf=found.vmaf, frames=found.frames)  # fmt: skip


# -- comparisons (pure) ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """A rung of the baseline beside its counterpart in the ladder compared with it; None: missing there (a rung
    dropped by the per-title ladder, or one it added)."""

    clip: str
    easy: bool
    base: Rung | None
    other: Rung | None
    at_equal: Rung | None = None  # the other rung encoded again to the base's VMAF (bench.equal_vmaf), if it was
    bound: bool = False  # at_equal scores above the base: its bytes bound those at equal VMAF from above

    @property
    def name(self) -> str:
        return (self.base or self.other).name  # type: ignore[union-attr]

    @property
    def height(self) -> int:
        return (self.base or self.other).height  # type: ignore[union-attr]

    @property
    def saved(self) -> int:
        """Bytes the other ladder saves on this rung (negative: it spends more)."""
        return (self.base.bytes if self.base else 0) - (self.other.bytes if self.other else 0)

    @property
    def dvmaf(self) -> float | None:
        """The other rung's VMAF minus the baseline's; None when either is missing."""
        return None if self.base is None or self.other is None else self.other.vmaf - self.base.vmaf

    @property
    def not_lower(self) -> bool:
        """No more than VMAF_TOLERANCE below the baseline (or nothing to compare: a rung dropped or added)."""
        return self.dvmaf is None or self.dvmaf >= -VMAF_TOLERANCE

    @property
    def equal(self) -> bool:
        """Both present and within VMAF_TOLERANCE of each other either way: a byte saving means something."""
        return self.dvmaf is not None and abs(self.dvmaf) <= VMAF_TOLERANCE

    @property
    def equal_bytes(self) -> int | None:
        """The other rung's bytes at the base's VMAF (±VMAF_TOLERANCE): as published when it is there, else as
        encoded again to it; None when neither is."""
        if self.other is None or self.base is None:
            return None
        if self.equal:
            return self.other.bytes
        if self.at_equal is not None and abs(self.at_equal.vmaf - self.base.vmaf) <= VMAF_TOLERANCE:
            return self.at_equal.bytes
        if self.at_equal is not None and self.bound and self.at_equal.vmaf > self.base.vmaf:
            return self.at_equal.bytes
        return None

    def describe(self) -> str:
        if self.other is None:
            return f"dropped: saves {self.saved / 1000:.0f} kB"
        if self.base is None:
            return f"added: costs {-self.saved / 1000:.0f} kB"
        share = -self.saved / self.base.bytes * 100 if self.base.bytes else 0.0
        quality = "equal-or-better VMAF" if self.not_lower else "LOWER VMAF"
        return f"{share:+.1f} % bytes, VMAF {self.dvmaf:+.2f} ({quality})"


def h264(rungs: Sequence[Rung]) -> list[Rung]:
    return [r for r in rungs if r.codec == VideoCodec.h264]


def per_title_pairs(clip: str, easy: bool, fixed: Sequence[Rung], per_title: Sequence[Rung]) -> list[Pair]:
    """The H.264 rungs of both ladders matched by name, highest first; a rung in one ladder only is paired with
    None."""
    mine = {r.name: r for r in h264(per_title)}
    pairs = [Pair(clip, easy, r, mine.pop(r.name, None)) for r in h264(fixed)]
    pairs += [Pair(clip, easy, None, r) for r in mine.values()]
    return sorted(pairs, key=lambda p: -p.height)


def av1_pairs(
    clip: str, easy: bool, rungs: Sequence[Rung], at_equal: dict[str, Rung] | None = None, bounds: Sequence[str] = ()
) -> list[Pair]:
    """Each AV1 rung beside its H.264 twin of the same ladder (the same picture size), highest first; `at_equal`:
    AV1 rungs encoded again to their twin's VMAF, by name (`bounds`: those that are upper bounds)."""
    twins = {(r.width, r.height): r for r in h264(rungs)}
    found = at_equal or {}
    pairs = [
        Pair(clip, easy, twins.get((r.width, r.height)), r, found.get(r.name), r.name in bounds)
        for r in rungs
        if r.codec == VideoCodec.av1
    ]
    return sorted(pairs, key=lambda p: -p.height)


def top(pairs: Sequence[Pair], n: int = TOP_RUNGS) -> list[Pair]:
    """The n highest pairs of each clip."""
    out: list[Pair] = []
    for clip in dict.fromkeys(p.clip for p in pairs):
        out += sorted((p for p in pairs if p.clip == clip), key=lambda p: -p.height)[:n]
    return out


def saved_share(pairs: Sequence[Pair]) -> float | None:
    """Bytes saved over the pairs, as a share of the baseline's bytes; None with no baseline bytes."""
    base = sum(p.base.bytes for p in pairs if p.base)
    return sum(p.saved for p in pairs) / base if base else None


def _worst(pairs: Sequence[Pair]) -> Pair | None:
    scored = [p for p in pairs if p.dvmaf is not None]
    return min(scored, key=lambda p: p.dvmaf or 0.0) if scored else None


def _worst_text(pairs: Sequence[Pair]) -> str:
    worst = _worst(pairs)
    return "no rung in both" if worst is None else f"worst rung VMAF {worst.dvmaf:+.2f} ({worst.clip} {worst.name})"


def per_title_easy_row(pairs: Sequence[Pair], built: bool) -> Row:
    """>= 25 % fewer bytes summed over the easy clips, no rung's VMAF more than 1 point lower."""
    what, goal = "per-title vs fixed, easy clips: bytes", f">= {PER_TITLE_EASY_SAVING:.0%} fewer, VMAF >= -1/rung"
    easy = [p for p in pairs if p.easy]
    share = saved_share(easy)
    if not built or share is None:
        return Row(what, "not built yet" if not built else "no easy clip measured", goal, None)
    dropped = sum(1 for p in easy if p.other is None)
    figure = (f"{share:.1%} fewer ({sum(p.saved for p in easy) / 1e6:.2f} of "
              f"{sum(p.base.bytes for p in easy if p.base) / 1e6:.2f} MB; {dropped} rungs dropped); "
              f"{_worst_text(easy)}")  # fmt: skip
    return Row(what, figure, goal, share >= PER_TITLE_EASY_SAVING and all(p.not_lower for p in easy))


def per_title_hard_row(pairs: Sequence[Pair], built: bool) -> Row:
    """No worse on the hard clips: no rung's VMAF more than 1 point lower than the fixed ladder's."""
    what, goal = "per-title vs fixed, hard clips: VMAF", "no rung > 1 lower"
    hard = [p for p in pairs if not p.easy]
    if not built or not hard:
        return Row(what, "not built yet" if not built else "no hard clip measured", goal, None)
    share = saved_share(hard) or 0.0
    dropped = sum(1 for p in hard if p.other is None)
    figure = f"{_worst_text(hard)}; bytes {-share:+.1%}, {dropped} rungs dropped"
    return Row(what, figure, goal, all(p.not_lower for p in hard))


def av1_row(pairs: Sequence[Pair], built: bool) -> Row:
    """AV1 >= 30 % fewer bytes than its H.264 twin at equal VMAF (±1), over the top rungs of every clip: a pair
    published further apart counts with its AV1 rung encoded again to its twin's VMAF (bench.equal_vmaf), and fails
    the goal when no such encode was found."""
    what, goal = f"AV1 vs H.264 twin, top {TOP_RUNGS} rungs: bytes", f">= {AV1_SAVING:.0%} fewer at VMAF ±1"
    judged = [p for p in top(pairs) if p.base is not None]
    published = saved_share(judged)
    if not built or published is None:
        return Row(what, "not built yet" if not built else "no AV1 rung with an H.264 twin", goal, None)
    missing = [p for p in judged if p.equal_bytes is None]
    if missing:
        names = ", ".join(f"{p.clip} {p.name} {p.dvmaf:+.2f}" for p in missing)
        return Row(what, f"{published:.1%} fewer but NOT at equal quality: VMAF {names}", goal, False)
    base = sum(p.base.bytes for p in judged if p.base)
    share = sum((p.base.bytes if p.base else 0) - (p.equal_bytes or 0) for p in judged) / base
    again = [p for p in judged if not p.equal]
    figure = f"{share:.1%} fewer at equal VMAF"
    if again:
        moved = ", ".join(
            f"{p.clip} {p.name} {p.dvmaf:+.2f} -> {(p.at_equal.vmaf - p.base.vmaf):+.2f}"  # type: ignore[union-attr]
            + (" (no encode within 1: the cheapest above, an upper bound of the bytes)" if p.bound else "")
            for p in again
        )
        figure += (f" ({len(again)} of {len(judged)} pairs encoded again to their twin's VMAF: {moved}); "
                   f"as published {published:.1%} fewer")  # fmt: skip
    else:
        figure += f"; {_worst_text(judged)}"
    return Row(what, figure, goal, share >= AV1_SAVING)


def cpu_rows(clips: Sequence[ClipRun], per_title_built: bool, av1_built: bool) -> list[Row]:
    """The encode-time cost of each ladder, summed over the clips (no goal: reported)."""

    def total(ladder: Ladder) -> float | None:
        runs = [c.runs[ladder] for c in clips if ladder in c.runs]
        return sum(r.cpu for r in runs) if runs and len(runs) == len(clips) else None

    fixed = total(Ladder.fixed)
    rows = [Row("encode CPU s, fixed ladder (all clips)", "not measured" if fixed is None else f"{fixed:.1f}",
                "", None)]  # fmt: skip
    for ladder, built in ((Ladder.per_title, per_title_built), (Ladder.av1, av1_built)):
        value = total(ladder)
        if value is None:
            figure = "not measured"
        elif not built:
            figure = f"not built yet ({value:.1f})"
        else:
            figure = f"{value:.1f} ({value / fixed:.2f}x fixed)" if fixed else f"{value:.1f}"
        rows.append(Row(f"encode CPU s, {ladder} ladder (all clips)", figure, "reported", None))
    return rows


def frames_row(clips: Sequence[ClipRun]) -> Row:
    """Every rung of every ladder carries every frame of its source (a short rung would flatter its bytes)."""
    short = [f"{c.clip} {r.ladder} {g.name}: {g.frames}/{c.frames}"
             for c in clips for r in c.runs.values() for g in r.rungs if g.frames != c.frames]  # fmt: skip
    short += [f"{c.clip} {g.name} at equal VMAF: {g.frames}/{c.frames}"
              for c in clips for g in c.at_equal.values() if g.frames != c.frames]  # fmt: skip
    figure = "all equal" if not short else "; ".join(short)
    return Row("frames of every rung = the source's", figure, "all equal", not short)


@dataclass
class Summary:
    per_title_built: bool
    av1_built: bool
    per_title: list[Pair]
    av1: list[Pair]
    rows: list[Row]


def summarize(clips: Sequence[ClipRun]) -> Summary:
    """The pairs and the verdicts. Per-title counts as built when its plan differs from the fixed one on at least
    one clip; AV1 when any ladder has an AV1 rung."""
    per_title_built = any(Ladder.per_title in c.runs and c.runs[Ladder.per_title].plan != c.runs[Ladder.fixed].plan
                          for c in clips)  # fmt: skip
    av1_built = any(r.codec == VideoCodec.av1 for c in clips if Ladder.av1 in c.runs for r in c.runs[Ladder.av1].rungs)
    pt = [
        p
        for c in clips
        if Ladder.per_title in c.runs
        for p in per_title_pairs(c.clip, c.easy, c.runs[Ladder.fixed].rungs, c.runs[Ladder.per_title].rungs)
    ]
    av = [
        p
        for c in clips
        if Ladder.av1 in c.runs
        for p in av1_pairs(c.clip, c.easy, c.runs[Ladder.av1].rungs, c.at_equal, c.bounds)
    ]
    goals = [per_title_easy_row(pt, per_title_built), per_title_hard_row(pt, per_title_built), av1_row(av, av1_built)]
    ran = [any(ladder in c.runs for c in clips) for ladder in (Ladder.per_title, Ladder.per_title, Ladder.av1)]
    rows = [
        *(
            row if r else Row(row.what, "not run (--ladders)", row.goal, None)
            for row, r in zip(goals, ran, strict=True)
        ),
        *cpu_rows(clips, per_title_built, av1_built),
        frames_row(clips),
    ]
    return Summary(per_title_built, av1_built, pt, av, rows)


# -- the report -----------------------------------------------------------------------------------------------


def _kb(rung: Rung | None) -> str:
    return "—" if rung is None else f"{rung.bytes / 1000:,.0f}"


def _score(rung: Rung | None) -> str:
    return "—" if rung is None else f"{rung.vmaf:.2f}"


def _delta(pair: Pair | None) -> tuple[str, str]:
    """(bytes change, VMAF change) of a pair's other rung against its base, coloured by the goals."""
    if pair is None:
        return "", ""
    if pair.other is None:
        return "[green]dropped[/]", ""
    if pair.base is None:
        return "[yellow]added[/]", ""
    share = -pair.saved / pair.base.bytes * 100 if pair.base.bytes else 0.0
    dv = pair.dvmaf or 0.0
    colour = "green" if pair.not_lower else "red"
    return f"{share:+.1f} %", f"[{colour}]{dv:+.2f}[/]"


def _cells(ran: bool, built: bool, pair: Pair | None) -> list[str]:
    """A rung's four cells for the compared ladder: its kB and VMAF, then the change against its base."""
    if not ran:
        return ["not run", "", "", ""]
    if not built:
        return ["not built yet", "", "", ""]
    other = pair.other if pair else None
    return [_kb(other), _score(other), *_delta(pair)]


def _total(ran: bool, built: bool, pairs: Sequence[Pair], equal: Callable[[Pair], bool], what: str) -> list[str]:
    """A clip's four total cells for the compared ladder: its kB, blank, the bytes change, the rungs off goal."""
    if not ran or not built or not pairs:
        return ["", "", "", ""]
    share = saved_share(pairs)
    off = sum(1 for p in pairs if not equal(p))
    flag = f"[green]all {what}[/]" if not off else f"[red]{off} not {what}[/]"
    kb = sum(p.other.bytes for p in pairs if p.other) / 1000
    return [f"{kb:,.0f}", "", "" if share is None else f"{-share * 100:+.1f} %", flag]


def ladder_table(clips: Sequence[ClipRun], summary: Summary) -> Table:
    table = Table(title="Quality per bit: each clip's rungs, fixed vs per-title vs AV1 (kB = the rung's bytes, "
                        "VMAF against the source, whole clip)")  # fmt: skip
    for name in ("clip", "rung", "fixed kB", "VMAF", "per-title kB", "VMAF", "Δ bytes", "Δ VMAF",
                 "AV1 kB", "VMAF", "vs H.264 twin", "Δ VMAF"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("clip", "rung") else "right")
    for c in clips:
        fixed = h264(c.runs[Ladder.fixed].rungs)
        pts = [p for p in summary.per_title if p.clip == c.clip]
        avs = [p for p in summary.av1 if p.clip == c.clip and p.base]
        ran_pt, ran_av = Ladder.per_title in c.runs, Ladder.av1 in c.runs
        by_name = {p.name: p for p in pts}
        by_size = {(p.base.width, p.base.height): p for p in avs if p.base}
        names = [p.name for p in pts] or [r.name for r in fixed]
        for i, name in enumerate(names):
            pair = by_name.get(name)
            base = pair.base if pair else next((r for r in fixed if r.name == name), None)
            twin = by_size.get((base.width, base.height)) if base else None
            label = f"{c.clip} ({'easy' if c.easy else 'hard'})" if i == 0 else ""
            table.add_row(label, name, _kb(base), _score(base), *_cells(ran_pt, summary.per_title_built, pair),
                          *_cells(ran_av, summary.av1_built, twin))  # fmt: skip
        table.add_row(
            "", "all rungs", f"{sum(r.bytes for r in fixed) / 1000:,.0f}", "",
            *_total(ran_pt, summary.per_title_built, pts, lambda p: p.not_lower, ">= -1"),
            *_total(ran_av, summary.av1_built, avs, lambda p: p.equal, "±1"),
            end_section=True,
        )  # fmt: skip
    return table


def equal_table(clips: Sequence[ClipRun], summary: Summary) -> Table | None:
    """The AV1 rungs encoded again to their twin's VMAF: what was published, what each attempt gave."""
    again = [p for p in summary.av1 if p.base and p.other and p.other.name in _attempted(clips, p.clip)]
    if not again:
        return None
    table = Table(title="AV1 at equal VMAF: top AV1 rungs published more than 1 VMAF from their H.264 twin, "
                        "encoded again (bench.equal_vmaf)")  # fmt: skip
    for name in ("clip", "rung", "H.264 kB", "VMAF", "published kB", "VMAF", "attempts (CRF/cap kb/s: VMAF)",
                 "at equal kB", "VMAF", "vs H.264 twin"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("clip", "rung", "attempts (CRF/cap kb/s: VMAF)") else "right")
    for p in again:
        assert p.base is not None and p.other is not None
        attempts = _attempted(clips, p.clip)[p.other.name]
        tried = "; ".join(f"{a.crf}/{a.cap_kbps}: {a.vmaf:.2f}" for a in attempts[1:])
        eq = p.at_equal
        versus = (
            "not found"
            if eq is None
            else f"{(eq.bytes - p.base.bytes) / p.base.bytes * 100:+.1f} %, {eq.vmaf - p.base.vmaf:+.2f}"
            + (" (bound)" if p.bound else "")
        )
        table.add_row(p.clip, p.name, _kb(p.base), _score(p.base), _kb(p.other), _score(p.other), tried,
                      _kb(eq), _score(eq), versus)  # fmt: skip
    return table


def _attempted(clips: Sequence[ClipRun], clip: str) -> dict[str, list[Attempt]]:
    return next((c.attempts for c in clips if c.clip == clip), {})


def cpu_table(clips: Sequence[ClipRun], seconds: float) -> Table:
    table = Table(title=f"Encode cost: CPU seconds per ladder ({seconds:g} s clips; transcode() incl. audio, "
                        "storyboard and any trial encodes)")  # fmt: skip
    for name in ("clip", *(str(ladder) for ladder in Ladder), "per-title / fixed", "AV1 / fixed"):
        table.add_column(name, justify="left" if name == "clip" else "right")

    def cell(c: ClipRun, ladder: Ladder) -> str:
        return f"{c.runs[ladder].cpu:.1f}" if ladder in c.runs else "—"

    def times(c: ClipRun, ladder: Ladder) -> str:
        f = c.runs[Ladder.fixed].cpu
        return f"{c.runs[ladder].cpu / f:.2f}x" if ladder in c.runs and f > 0 else "—"

    for c in clips:
        table.add_row(c.clip, *(cell(c, ladder) for ladder in Ladder), times(c, Ladder.per_title), times(c, Ladder.av1))
    return table


# -- main -----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{', '.join(QUICK)} only, 6 s at half the size (development)")  # fmt: skip
    parser.add_argument("--clips", help=f"comma-separated subset of {', '.join(c.name for c in CLIPS)}")
    parser.add_argument("--ladders", default=",".join(Ladder),
                        help="comma-separated ladders to encode (fixed is always encoded: the baseline)")  # fmt: skip
    parser.add_argument("--seconds", type=float, help="length of each clip (default 8; --quick 6)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the generated clips are kept")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the encodes and VMAF logs (work dir)")
    args = parser.parse_args(argv)
    names = {c.name for c in CLIPS}
    chosen = args.clips.split(",") if args.clips else list(QUICK if args.quick else names)
    if unknown := [n for n in chosen if n not in names]:
        parser.error(f"unknown clip(s) {', '.join(unknown)}: choose from {', '.join(sorted(names))}")
    args.clip_list = [c for c in CLIPS if c.name in chosen]
    try:
        args.ladder_list = [Ladder.fixed, *(Ladder(x) for x in args.ladders.split(",") if x and x != Ladder.fixed)]
    except ValueError as exc:
        parser.error(f"--ladders: {exc}")
    args.seconds = args.seconds or (6.0 if args.quick else 8.0)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    return args


def sized(clip: Clip, quick: bool) -> Clip:
    """--quick: half the size (even dimensions), so a development run takes a minute or two."""
    if not quick:
        return clip
    return replace(clip, width=clip.width // 2 // 2 * 2, height=clip.height // 2 // 2 * 2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (and stop ffmpeg) on kill
    started = time.monotonic()
    from core.ffmpeg import ffmpeg_exe
    from core.settings import Settings

    ffmpeg = ffmpeg_exe(Settings())
    work = Path(tempfile.mkdtemp(prefix="streamify-quality-"))
    logs = work / "vmaf"
    logs.mkdir()
    clips: list[ClipRun] = []
    ok = False
    try:
        for clip in (sized(c, args.quick) for c in args.clip_list):
            src = cached_clip(args.cache, clip, args.seconds, ffmpeg)
            run = ClipRun(clip.name, clip.easy, count_frames([src]))
            measured: dict[str, RungQuality] = {}
            console.print(f"[bold]{clip.name}[/] ({clip.width}x{clip.height} {clip.rate} fps, {args.seconds:g} s): "
                          f"{clip.what}")  # fmt: skip
            for ladder in args.ladder_list:
                out = work / clip.name / str(ladder)
                ladder_run, folders, plan = encode(src, out, ladder)
                console.print(f"  {ladder}: {len(folders)} rungs, {ladder_run.cpu:.1f} CPU s, {ladder_run.wall:.1f} s")
                ladder_run.rungs = measure(folders, src, args.seconds + 1, ffmpeg, logs, measured)
                run.runs[ladder] = ladder_run
                if ladder == Ladder.av1:
                    equalize(run, plan, src, work / clip.name / "equal", args.seconds + 1, ffmpeg, logs)
            clips.append(run)
        summary = summarize(clips)
        wall = time.monotonic() - started
        console.print(ladder_table(clips, summary))
        if (equal := equal_table(clips, summary)) is not None:
            console.print(equal)
        console.print(cpu_table(clips, args.seconds))
        console.print(render(summary.rows, f"Quality per bit: goals ({len(clips)} clips, {args.seconds:g} s each, "
                                           f"run {wall / 60:.1f} min)"))  # fmt: skip
        if args.json:
            figures = {
                "args": {k: str(v) for k, v in vars(args).items() if k not in ("clip_list", "ladder_list")},
                "clips": [asdict(c) for c in clips],
                "per_title_built": summary.per_title_built,
                "av1_built": summary.av1_built,
                "rows": [asdict(r) | {"verdict": r.verdict} for r in summary.rows],
                "wall_seconds": wall,
            }
            args.json.write_text(json.dumps(figures, indent=1, default=str))
        ok = all(r.passed is not False for r in summary.rows)
    finally:
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            console.print(f"work dir kept: {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

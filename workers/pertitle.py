"""Per-title ladder: fit each rung's rate control to the source, and keep only the rungs worth their bytes.

The fixed ladder (workers.ladder) gives a slide deck and a football match the same CRF and the same caps. A
cheap trial (workers.command.build_trial_argv, run by workers.pipeline.prepare) encodes a few short windows
spread over the source at one or two small sizes, with the real preset at the plan's CRF, and counts the bytes
of its keyframes and of its other frames. From that Trial alone, this module decides, per rung:

- the preset and CRF: content that costs few bits per pixel (slides, screen capture, a still picture, a
  talking head, animation) is encoded with a slightly slower x264 preset at a higher CRF, which gives it about
  the same VMAF for fewer bytes (the top rung rises more than the upscaled rungs below it, which show a CRF step
  more; every rung rises most where keyframes carry the bits, as nothing moves); content that costs many bits per
  pixel (motion, noise) keeps the fixed ladder's preset, CRF and caps on every rung, so it is never worse;
- the cap of easy content: a few times the bit rate the trial predicts (never above the fixed cap), so a
  player reading the master sees what the rung really needs;
- whether the rung is kept: the top rung always is (the source's own picture); a lower one is dropped when
  the rung above already costs no more than the cheapest fixed rung (any connection that plays the fixed
  ladder plays it), or when it would save too little against the rung above to be worth its bytes (which is
  also what happens when both would need more bits than the source carries: both are capped at its rate).

With AV1 on, the trial also encodes its pictures with x264 as the rungs below the top get encoded and with
SVT-AV1 at two CRFs, and scores each against the pictures (VMAF): the AV1 rungs get the CRF at which AV1 scores
what x264 does, and caps cut by AV1's share of the bytes there (av1_match), as how far apart the two codecs are
depends on the content (AV1 keeps a still picture sharper at any CRF; it smooths film grain away). When the top
rung is larger than the trial's pictures, one window is measured again at its size against x264 as the top rung
is encoded (av1_top_size): there AV1's smoothing shows, and the twins between the two sizes lie between
(av1_rates).

Pure: the same Trial gives the same ladder on every worker; the trial is stored on the job (Trial.to_json) and
never measured again by the parts.
"""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import get_args

from core.encoding import VideoCodec, X264Preset
from workers.ladder import LADDER_TABLE, MIN_KBPS, LadderPlan, VideoRendition

# -- the trial: what to encode -------------------------------------------------------------------------------

TRIAL_WINDOWS = 3  # spread over the source: its start, middle and end may differ
TRIAL_WINDOW_SECONDS = 1.0  # each from a keyframe of the source (no decoding before it)
TRIAL_MAX_SHORT_SIDE = 480  # the larger trial size: the highest rung up to 480p, cheap to encode
TRIAL_SECONDS_LIMIT = 30.0  # a trial that runs longer than this is given up (fixed ladder, a note)


@dataclass(frozen=True)
class TrialWindow:
    start: float  # seconds into the source (the trial starts at the keyframe at or before it)
    seconds: float


def trial_windows(duration: float) -> tuple[TrialWindow, ...]:
    """TRIAL_WINDOWS windows centred on equal shares of the source; one from the start when it is too short
    to hold them apart."""
    if duration <= 0:
        return (TrialWindow(0.0, TRIAL_WINDOW_SECONDS * TRIAL_WINDOWS),)
    if duration < 2 * TRIAL_WINDOWS * TRIAL_WINDOW_SECONDS:
        return (TrialWindow(0.0, round(min(duration, TRIAL_WINDOWS * TRIAL_WINDOW_SECONDS), 3)),)
    share = duration / TRIAL_WINDOWS
    return tuple(
        TrialWindow(round(max(0.0, (i + 0.5) * share - TRIAL_WINDOW_SECONDS / 2), 3), TRIAL_WINDOW_SECONDS)
        for i in range(TRIAL_WINDOWS)
    )


def trial_sizes(plan: LadderPlan) -> tuple[tuple[int, int], ...]:
    """The lowest rung and the highest up to TRIAL_MAX_SHORT_SIDE (the lowest when none is that small): how the
    bits grow between them says how they grow up to the top rung. Smallest first; one size for a one-rung plan."""
    by_pixels = sorted(plan.renditions, key=lambda r: r.width * r.height)
    small = by_pixels[0]
    fitting = [r for r in by_pixels if min(r.width, r.height) <= TRIAL_MAX_SHORT_SIDE]
    large = fitting[-1] if fitting else small
    sizes = [(small.width, small.height)]
    if (large.width, large.height) != sizes[0]:
        sizes.append((large.width, large.height))
    return tuple(sizes)


# -- the trial: what it measured -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialSize:
    """The trial's encode at one size: every window starts with a keyframe."""

    width: int
    height: int
    frames: int
    key_frames: int
    key_bytes: int
    other_bytes: int

    def kbps(self, fps: float, gop_seconds: int) -> float:
        """The bit rate of a real encode of this picture: one keyframe per GOP, the rest like the trial's other
        frames (the trial has a keyframe per window, more often than a real GOP)."""
        others = self.frames - self.key_frames
        key = self.key_bytes / max(1, self.key_frames)
        other = self.other_bytes / others if others > 0 else key
        gop_frames = max(1.0, fps * gop_seconds)
        return (key + (gop_frames - 1) * other) * 8 / gop_seconds / 1000


@dataclass(frozen=True)
class Av1Point:
    """The AV1 trial at one CRF: what it scored and weighed."""

    crf: int
    vmaf: float
    bytes: int


@dataclass(frozen=True)
class Av1Trial:
    """With AV1 on: the H.264 trial's VMAF and bytes at the larger trial size, and SVT-AV1's at a few CRFs of the
    same pictures (workers.pipeline.run_trial). How far apart the two codecs are depends on the content (AV1 keeps
    a still picture far sharper at the same CRF, and smooths film grain away), so the AV1 rungs' rate control is
    read from this measurement, not mapped from x264's CRF."""

    h264_vmaf: float
    h264_bytes: int
    points: tuple[Av1Point, ...]  # by CRF, lowest first
    width: int = 0  # the pictures measured (0: trials stored before the size was)
    height: int = 0


@dataclass(frozen=True)
class Trial:
    """What the trial encode measured: all the per-title decision reads (plus its wall time, for operators)."""

    crf: int
    fps: float  # the trial's (the top rung's) frame rate
    gop_seconds: int
    windows: tuple[TrialWindow, ...]
    sizes: tuple[TrialSize, ...]  # smallest first
    wall_seconds: float = 0.0  # what the trial cost; never read by the decision
    av1: Av1Trial | None = None  # with AV1 on; None without it, or when its measurement failed
    av1_top: Av1Trial | None = None  # the same at the top rung's size, when that is larger than the trial's

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Trial":
        return cls(
            crf=data["crf"],
            fps=data["fps"],
            gop_seconds=data["gop_seconds"],
            windows=tuple(TrialWindow(**w) for w in data["windows"]),
            sizes=tuple(TrialSize(**s) for s in data["sizes"]),
            wall_seconds=data.get("wall_seconds", 0.0),
            av1=_av1_trial(data.get("av1")),
            av1_top=_av1_trial(data.get("av1_top")),
        )

    def kbps(self, size: TrialSize) -> float:
        return size.kbps(self.fps, self.gop_seconds)

    @property
    def bits_per_pixel(self) -> float:
        """Complexity: bits per pixel of a real encode at the larger trial size at the trial's CRF."""
        top = self.sizes[-1]
        return self.kbps(top) * 1000 / (top.width * top.height * max(self.fps, 1e-9))

    @property
    def key_share(self) -> float:
        """The keyframes' share of a real encode's bits at the larger trial size: near 1 when nothing moves (slides,
        a still picture), where the CRF barely changes what a viewer sees."""
        top = self.sizes[-1]
        others = top.frames - top.key_frames
        key = top.key_bytes / max(1, top.key_frames)
        other = top.other_bytes / others if others > 0 else key
        return key / (key + (max(1.0, self.fps * self.gop_seconds) - 1) * other)

    @property
    def growth(self) -> float:
        """How bits grow with pixels (bits ~ pixels ** growth) between the trial's sizes: about 1 for noise, where
        every pixel is news, about 0.5 for flat pictures with sharp edges, whose cost grows with edge length;
        within [MIN_GROWTH, MAX_GROWTH] for predicting other sizes' rates."""
        return min(MAX_GROWTH, max(MIN_GROWTH, self.raw_growth))

    @property
    def raw_growth(self) -> float:
        """The growth as measured, unbounded (DEFAULT_GROWTH with one trial size): above 1 where the larger
        pictures carry detail the smaller cannot (film grain)."""
        if len(self.sizes) < 2:
            return DEFAULT_GROWTH
        small, large = self.sizes[0], self.sizes[-1]
        pixels = (large.width * large.height) / (small.width * small.height)
        bits = self.kbps(large) / max(self.kbps(small), 1e-9)
        if pixels <= 1.0 or bits <= 0:
            return DEFAULT_GROWTH
        return math.log(bits) / math.log(pixels)


def _av1_trial(data: dict | None) -> Av1Trial | None:
    if data is None:  # jobs planned before the AV1 trial existed, or without AV1
        return None
    points = tuple(Av1Point(**p) for p in data["points"])
    return Av1Trial(data["h264_vmaf"], data["h264_bytes"], points, data.get("width", 0), data.get("height", 0))


DEFAULT_GROWTH = 0.75
MIN_GROWTH, MAX_GROWTH = 0.3, 1.1

# -- the decision --------------------------------------------------------------------------------------------

# Easy content is encoded with a slightly slower x264 preset and a higher CRF. Measured on bench/quality.py's clips
# (8 s, libvmaf against the source upscaled bicubic; docs/quality.md, 2026-12-04): x264 `faster` at the same CRF as
# `veryfast` spends more bytes for more VMAF, and 2-3 CRF higher it lands within a fraction of a VMAF point of
# `veryfast` at the fixed CRF for fewer bytes: the top rung +3 (animation -17 % at -0.27, talking head -48 % at
# -0.58), the rungs below +2 (upscaled, they show a CRF step more: animation -17 to -22 % at -0.2 to -0.6), the
# smallest (under 360 lines: upscaled 3x or more on a 720p screen) +1 (+2 cost film grain's 240p 1.46). Where
# keyframes carry most of the bits (slides, a still picture: nothing moves, so the frames between keyframes cost
# almost nothing) VMAF barely moves with CRF, so every rung goes +4 (+6 cost a still picture 1.5 to 2.9 VMAF).
# `medium` at +4/+2/+6 saved more (31 % of the easy clips' bytes against 28 %) but took 2.7x as long to publish a
# 1080p minute on two cores (first playable 11.6 s instead of 5.2): publishing in seconds comes first.
# `faster` costs about 1.2x `veryfast`'s CPU on these 720p rungs, and 1.45x on a 1080p ladder's first range (4 s of
# the bench.publish source, five rungs, alone on two cores: 13.4 vs 9.3 CPU s, 7.4 vs 5.0 s), which is on the way
# to first playable: with `faster` a 1080p minute was first playable after 11.2 s on this machine where the goal is
# 10 (issue 13; docs/publish.md). So a ladder encoding more pixels a second than EASY_PRESET_MAX_PIXEL_RATE keeps
# the install's preset, the install's CRF for moving content and a smaller offset for keyframe-bound content.
EASY_PRESET: X264Preset = "faster"
EASY_PRESET_MAX_PIXEL_RATE = 60_000_000  # a 720p30 ladder encodes 50 M pixels a second, 720p60 100 M, 1080p30 112 M
TOP_CRF_OFFSET = 3
LOWER_CRF_OFFSET = 2
SMALL_CRF_OFFSET = 1
# Bits that grow faster than pixels between the trial's sizes are detail that only the larger pictures carry: film
# grain (1.35 in bench/quality.py; animation 1.08, talking head 0.70). A higher CRF smooths it away on the rungs
# below the top, which are upscaled to the screen: grain 480p lost 0.56 and 1.03 VMAF at +2 (two random instances
# of the clip), 0.0 at +1, for 25 % fewer bytes instead of 44 %.
GRAINY_GROWTH = 1.2
GRAINY_LOWER_CRF_OFFSET = 1
SMALL_SHORT_SIDE = 360  # rungs with a shorter side than this get SMALL_CRF_OFFSET
KEYFRAME_BOUND_SHARE = 0.5  # keyframes' share of a real encode's bits (Trial.key_share) from which ...
KEYFRAME_BOUND_CRF_OFFSET = 4  # ... every rung gets this offset
# ... and this one at `veryfast` (a ladder too large for the slower preset): the 1080p slides lost 1.8 and 2.6 VMAF
# at +4 there (bench/quality.py, 2026-12-04), about 0.5-0.65 a step
FAST_KEYFRAME_BOUND_CRF_OFFSET = 1
HARD_BPP = 0.15  # above: hard content (noise 1.3), the fixed ladder's CRF and caps on every rung
MAX_CRF = 30
CRF_HALVING = 6.0  # x264: about half the bits for 6 more CRF
# Easy content's cap: this x the predicted average. The cap (bufsize 2x cap) must leave room for keyframes: slides
# and still pictures spend most of their bits on them, and 3x cost their rungs 1.7 VMAF at the same CRF in
# bench/quality.py (2026-12-03) where 6x costs 0.3 (2026-12-04), for 1 % more bytes over the easy clips.
CAP_HEADROOM = 6.0
MIN_STEP = 1.6  # a lower rung must cost at most 1/MIN_STEP of the rung above, or it saves too little
CHEAP_KBPS = LADDER_TABLE[0].kbps  # the fixed ladder's cheapest cap: what it asks of the slowest connection


class LadderMode(StrEnum):
    per_title = "per_title"  # fitted to a trial encode of the source
    fixed = "fixed"  # the same for every source (per-title off, or no trial)


@dataclass(frozen=True)
class RungDecision:
    name: str
    kept: bool
    crf: int
    maxrate_kbps: int
    predicted_kbps: int | None  # what the trial predicts the rung averages; None without a trial
    reason: str  # one sentence, for operators (the job page)


@dataclass(frozen=True)
class LadderDecision:
    """Which rungs and why, stored on the job as plan["ladder"]."""

    mode: LadderMode
    inputs: dict | None  # what the decision read (the trial's figures); None without a trial
    rungs: tuple[RungDecision, ...]  # every rung of the fixed ladder, highest first, kept or not

    def to_json(self) -> dict:
        return {"mode": self.mode.value, "inputs": self.inputs, "rungs": [asdict(r) for r in self.rungs]}


@dataclass(frozen=True)
class CrfOffsets:
    """How far per-title raises each rung's CRF above the install's: the top rung, the rungs below it, and the
    smallest of those (a shorter side under SMALL_SHORT_SIDE)."""

    top: int
    lower: int
    small: int

    def of(self, index: int, rung: VideoRendition) -> int:
        if index == 0:
            return self.top
        return self.small if min(rung.width, rung.height) < SMALL_SHORT_SIDE else self.lower


def crf_offsets(trial: Trial, slower: bool = True) -> CrfOffsets:
    """Nothing for hard content, which keeps the fixed ladder's rate control. The offsets of other easy content
    hold at EASY_PRESET (`slower`), not at a faster preset; the keyframe-bound ones have one for each."""
    if trial.bits_per_pixel > HARD_BPP:
        return CrfOffsets(0, 0, 0)
    if trial.key_share >= KEYFRAME_BOUND_SHARE:
        return CrfOffsets(*((KEYFRAME_BOUND_CRF_OFFSET if slower else FAST_KEYFRAME_BOUND_CRF_OFFSET),) * 3)
    if not slower:
        return CrfOffsets(0, 0, 0)
    if trial.raw_growth > GRAINY_GROWTH:
        return CrfOffsets(TOP_CRF_OFFSET, GRAINY_LOWER_CRF_OFFSET, SMALL_CRF_OFFSET)
    return CrfOffsets(TOP_CRF_OFFSET, LOWER_CRF_OFFSET, SMALL_CRF_OFFSET)


def pixel_rate(plan: LadderPlan) -> float:
    """Pixels a second the plan's H.264 rungs encode: what the first range costs on the way to first playable."""
    return sum(r.width * r.height * float(r.fps) for r in plan.renditions if r.codec == VideoCodec.h264)


def at_least_as_slow(preset: X264Preset, than: X264Preset) -> bool:
    order = get_args(X264Preset)
    return order.index(preset) >= order.index(than)


def easy_preset(plan: LadderPlan) -> X264Preset:
    """EASY_PRESET when the ladder is small enough to afford it (EASY_PRESET_MAX_PIXEL_RATE), else the install's;
    the install's too when it is already slower (never a faster one than it chose)."""
    if pixel_rate(plan) > EASY_PRESET_MAX_PIXEL_RATE or at_least_as_slow(plan.preset, EASY_PRESET):
        return plan.preset
    return EASY_PRESET


def rate_control(plan: LadderPlan, trial: Trial) -> tuple[X264Preset, CrfOffsets]:
    """The x264 preset of the per-title rungs and their CRF offsets: one rule for decide() and for the AV1 trial's
    H.264 reference, which must encode as the rungs will be."""
    preset = easy_preset(plan) if trial.bits_per_pixel <= HARD_BPP else plan.preset
    return preset, crf_offsets(trial, slower=at_least_as_slow(preset, EASY_PRESET))


def predicted_kbps(trial: Trial, rung: VideoRendition, crf: int) -> float:
    """The rung's average bit rate at `crf`, from the trial size nearest in pixels: scaled by pixels ** growth,
    by frame rate, and halved every CRF_HALVING steps of CRF."""
    pixels = rung.width * rung.height
    anchor = min(trial.sizes, key=lambda s: abs(math.log(pixels / (s.width * s.height))))
    kbps = trial.kbps(anchor) * (pixels / (anchor.width * anchor.height)) ** trial.growth
    kbps *= float(rung.fps) / max(trial.fps, 1e-9)
    return kbps * 2 ** (-(crf - trial.crf) / CRF_HALVING)


def fixed_decision(plan: LadderPlan, why: str) -> LadderDecision:
    """Every rung as the fixed ladder has it, for one reason (per-title off, or no trial)."""
    return LadderDecision(
        LadderMode.fixed,
        None,
        tuple(RungDecision(r.name, True, plan.crf, r.maxrate_kbps, None, why) for r in plan.renditions),
    )


@dataclass(frozen=True)
class _Candidate:
    rung: VideoRendition
    crf: int
    cap: int
    predicted: float
    at_fixed_crf: float  # its predicted rate at the plan's CRF: what its size costs, whatever CRF it gets

    @property
    def expected(self) -> float:  # what it will average: the prediction, unless its cap stops it
        return min(self.predicted, self.cap)


def decide(plan: LadderPlan, trial: Trial, source_kbps: int = 0) -> tuple[LadderPlan, LadderDecision]:
    """The per-title ladder of a fixed plan, from its trial: each kept rung with its own CRF and cap."""
    if plan.audio_only:
        return plan, LadderDecision(LadderMode.per_title, None, ())
    bpp, easy = trial.bits_per_pixel, trial.bits_per_pixel <= HARD_BPP
    preset, offsets = rate_control(plan, trial)
    candidates = []
    for i, r in enumerate(plan.renditions):
        crf = max(plan.crf, min(MAX_CRF, plan.crf + offsets.of(i, r)))  # never below the install's
        predicted = predicted_kbps(trial, r, crf)
        cap = min(r.maxrate_kbps, max(MIN_KBPS, math.ceil(predicted * CAP_HEADROOM))) if easy else r.maxrate_kbps
        at_fixed = min(predicted_kbps(trial, r, plan.crf), cap if crf == plan.crf else r.maxrate_kbps)
        candidates.append(_Candidate(r, crf, cap, predicted, at_fixed))
    decisions: list[RungDecision] = []
    kept: list[_Candidate] = []
    for c in candidates:  # highest first
        above = kept[-1] if kept else None
        why_not = _not_worth_it(c, above, source_kbps) if above is not None else None
        if why_not is None:
            kept.append(c)
        decisions.append(
            RungDecision(
                c.rung.name, why_not is None, c.crf, c.cap, round(c.predicted), why_not or _why(c, plan, above, easy)
            )
        )
    inputs = {
        "trial_crf": trial.crf,
        "bits_per_pixel": round(bpp, 5),
        "growth": round(trial.growth, 3),
        "raw_growth": round(trial.raw_growth, 3),
        "key_share": round(trial.key_share, 3),
        "crf_offsets": asdict(offsets),
        "preset": preset,
        "pixel_rate": round(pixel_rate(plan)),
        "hard": not easy,
        "trial_kbps": {f"{s.width}x{s.height}": round(trial.kbps(s), 1) for s in trial.sizes},
        "source_kbps": source_kbps or None,
        "trial_seconds": round(trial.wall_seconds, 3),
    }
    renditions = tuple(replace(c.rung, crf=c.crf, maxrate_kbps=c.cap, bufsize_kbps=2 * c.cap) for c in kept)
    return replace(plan, renditions=renditions, preset=preset), LadderDecision(
        LadderMode.per_title, inputs, tuple(decisions)
    )


def _not_worth_it(c: _Candidate, above: _Candidate, source_kbps: int) -> str | None:
    """Why a lower rung is dropped, or None to keep it."""
    if above.cap <= CHEAP_KBPS:
        return (
            f"Dropped: {above.rung.name} peaks at {above.cap} kb/s at most, which any connection that plays the "
            f"fixed ladder's cheapest rung ({CHEAP_KBPS} kb/s) carries."
        )
    if c.at_fixed_crf * MIN_STEP > above.at_fixed_crf:  # the step in size, not in the CRF the top rung got
        if source_kbps and c.predicted >= source_kbps:
            return (
                f"Dropped: it would need about {round(c.predicted)} kb/s, more than the source's {source_kbps} "
                f"kb/s carries, leaving it no cheaper than {above.rung.name}."
            )
        return (
            f"Dropped: at the same CRF about {round(c.at_fixed_crf)} kb/s against {round(above.at_fixed_crf)} kb/s "
            f"for {above.rung.name}, less than a {MIN_STEP:g}x saving, not worth its bytes."
        )
    return None


def _why(c: _Candidate, plan: LadderPlan, above: _Candidate | None, easy: bool) -> str:
    fixed = next(r for r in plan.renditions if r.name == c.rung.name)
    if c.crf == plan.crf and c.cap == fixed.maxrate_kbps:
        rate = f"Kept at the fixed ladder's CRF {c.crf} and {c.cap} kb/s cap" + ("" if easy else " (hard content)")
    else:
        crf = f"CRF {c.crf}" + (f" (fixed: {plan.crf})" if c.crf != plan.crf else "")
        cap = f"a {c.cap} kb/s cap" + (f" (fixed: {fixed.maxrate_kbps})" if c.cap != fixed.maxrate_kbps else "")
        rate = f"Kept at {crf} and {cap}"
    rate += f", predicted about {round(c.expected)} kb/s"
    if above is None:
        return f"{rate}: the top rung, the source's full picture."
    return f"{rate}, {above.at_fixed_crf / c.at_fixed_crf:.1f}x less than {above.rung.name} at the same CRF."


# -- the AV1 rungs' rate control, from the AV1 trial ----------------------------------------------------------

AV1_TRIAL_CRFS = (32, 44)  # SVT-AV1 CRFs the trial encodes; the match is interpolated between them (or beyond)
# A match outside is clamped: the trial's two CRFs say little about the scale far beyond them, and a still picture,
# whose VMAF barely falls with CRF, would be extrapolated to the end of it (slides: +1.8 VMAF over x264 at 55 in
# bench/quality.py; within 1 at 63 for its 1080p rung, where its 480p rung, encoded apart, fell several points below).
AV1_MATCH_CRF_RANGE = (20, 55)


@dataclass(frozen=True)
class Av1Match:
    """The SVT-AV1 CRF at which the AV1 trial scores the H.264 trial's VMAF, and AV1's bytes there as a share of
    H.264's: the AV1 twin of every rung gets this CRF and its H.264 twin's cap times this share, so that where a
    cap binds (hard content) the AV1 rung also lands at the H.264 rung's quality, for fewer bytes."""

    crf: int
    byte_ratio: float


def h264_reference_rate(plan: LadderPlan, trial: Trial, top: bool = False) -> tuple[X264Preset, int]:
    """The x264 preset and CRF that decide() gives the rungs below the top (`top`: the top rung) for this trial:
    the AV1 trial matches the VMAF of the H.264 rungs as per-title encodes them, not as the fixed ladder would."""
    preset, offsets = rate_control(plan, trial)
    crf = max(plan.crf, min(MAX_CRF, plan.crf + (offsets.top if top else offsets.lower)))
    return preset, crf


def av1_top_size(plan: LadderPlan, trial_size: tuple[int, int]) -> tuple[int, int] | None:
    """The top rung's size when it is larger than the trial's pictures: there, with no upscale to hide it, AV1's
    smoothing costs it more VMAF against x264 than at the trial's size (talking head and film grain at 720p: 1.8
    and 2.1 under x264 at the CRF matched at 480p, within 0.4 at 480p; docs/quality.md), so it is matched there too."""
    top = max(plan.renditions, key=lambda r: r.width * r.height)
    return (top.width, top.height) if top.width * top.height > trial_size[0] * trial_size[1] else None


def av1_rates(trial: Trial) -> Callable[[VideoRendition], tuple[int, float]]:
    """Each AV1 twin's CRF and cap ratio (workers.ladder.with_av1), from the trial's AV1 measurements: the match at
    the trial's size for twins up to it, the match at the top rung's size for the top twin, and between them
    interpolated in log pixels. A twin whose H.264 rung is held down by its cap (predicted above it: noise, fast
    motion) gets the smaller of the measured byte ratios: both matches are uncapped, at a quality the capped rung
    never reaches, and AV1's lead grows as the rate falls (noise 720p: AV1 +16.6 VMAF for 5 % more bytes with the
    top size's ratio; docs/quality.md)."""
    if trial.av1 is None:
        raise ValueError("the trial has no AV1 measurement")
    low = av1_match(trial.av1)
    top = trial.av1_top
    high = av1_match(top) if top is not None else low
    small = max(1, trial.av1.width * trial.av1.height)
    large = max(small, top.width * top.height) if top is not None else small

    def rate(rung: VideoRendition) -> tuple[int, float]:
        pixels = rung.width * rung.height
        share = 0.0 if large == small else min(1.0, max(0.0, math.log(pixels / small) / math.log(large / small)))
        ratio = low.byte_ratio + share * (high.byte_ratio - low.byte_ratio)
        crf = rung.crf if rung.crf is not None else trial.crf
        if predicted_kbps(trial, rung, crf) > rung.maxrate_kbps:
            ratio = min(low.byte_ratio, high.byte_ratio)
        return round(low.crf + share * (high.crf - low.crf)), round(ratio, 3)

    return rate


def av1_match(trial: Av1Trial) -> Av1Match:
    """Interpolate VMAF (linear in CRF) and bytes (log-linear in CRF, as CRF is a log scale of quantizer) between
    the trial's points, extrapolating past the ends with the nearest two; content whose VMAF does not fall with CRF
    over the range (a still picture) gets the top of the range."""
    low, high = AV1_MATCH_CRF_RANGE
    pts = sorted(trial.points, key=lambda p: p.crf)
    if len(pts) < 2:
        raise ValueError("the AV1 trial needs two CRFs")
    a, b = (pts[0], pts[1]) if trial.h264_vmaf >= pts[1].vmaf else (pts[-2], pts[-1])
    for left, right in zip(pts, pts[1:], strict=False):
        if right.vmaf <= trial.h264_vmaf <= left.vmaf:
            a, b = left, right
            break
    slope = (b.vmaf - a.vmaf) / (b.crf - a.crf)  # VMAF per CRF step: negative
    crf = a.crf + (trial.h264_vmaf - a.vmaf) / slope if slope < 0 else float(high)
    crf = min(float(high), max(float(low), crf))
    log_bytes = math.log(max(1, a.bytes)) + (crf - a.crf) * (math.log(max(1, b.bytes)) - math.log(max(1, a.bytes))) / (
        b.crf - a.crf
    )
    ratio = math.exp(log_bytes) / max(1, trial.h264_bytes)
    return Av1Match(round(crf), round(min(1.0, max(0.05, ratio)), 3))

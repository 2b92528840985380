"""AV1 at equal VMAF: the bytes an AV1 rung needs to score what its H.264 twin scores, found by encoding it again.

The AV1 goal of bench.quality is a saving "at equal VMAF (±1)". The AV1 ladder matches its twins' VMAF from a few
seconds of trial (workers.pertitle.av1_match), which lands most pairs within a point and some beyond: a still
picture stays sharper in AV1 at every CRF up to the end of the scale's useful part, and where the H.264 rung is
starved by its cap (noise: VMAF 20-40) AV1's lead at the same cap share is several points. For those pairs the
bench re-encodes the AV1 rung alone, from the source, with the pipeline's own range encoder (same preset, size,
keyframes, capped CRF) and only its CRF or cap changed, and scores it as every rung is scored (bench.rungs), until it
lands within VMAF_TOLERANCE of its twin: the bytes there are AV1's at equal quality. The product's ladder is not
changed by this: the table shows both.

The search is pure (next_attempt, unit-tested): CRF first (a secant, in whole steps); the cap, in its log, when the
rung is held at its cap or the CRF reached the end of SVT-AV1's scale (a cap-bound rung's quality follows its rate).
Where VMAF jumps across the whole tolerance between two neighbouring attempts, search() gives an upper bound.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from workers.ladder import LadderPlan, VideoRendition, with_cap

SVTAV1_CRFS = (1, 63)
MAX_ATTEMPTS = 7  # encodes per pair, the published one included (noise 720p: VMAF +5 over 2.5 % of cap; 5 missed)
CAP_BOUND_SHARE = 0.85  # a rung averaging this share of its cap or more is held by it: the cap is searched
FIRST_CRF_STEP = (2, 8)  # the first CRF step: one per point of VMAF off, within these
CAP_STEP_PER_POINT = 0.05  # the first cap step: the rate times exp(-this per point of VMAF off)


@dataclass(frozen=True)
class Attempt:
    """One encode of the AV1 rung: its rate control and what it scored and weighed."""

    crf: int
    cap_kbps: int
    kbps: float
    vmaf: float
    bytes: int
    frames: int = 0


def next_attempt(attempts: Sequence[Attempt], target: float, tolerance: float) -> tuple[int, int] | None:
    """The (CRF, cap) to encode next, or None: an attempt is within `tolerance` of `target`, MAX_ATTEMPTS were
    made, or there is nothing left to try (the CRF and the cap both at their ends)."""
    if not attempts or any(abs(a.vmaf - target) <= tolerance for a in attempts) or len(attempts) >= MAX_ATTEMPTS:
        return None
    last = attempts[-1]
    high = last.vmaf > target  # AV1 too good: spend less
    crf_at_end = last.crf >= SVTAV1_CRFS[1] if high else last.crf <= SVTAV1_CRFS[0]
    if last.kbps < CAP_BOUND_SHARE * last.cap_kbps and not crf_at_end:
        crf = _next_crf([a for a in attempts if a.cap_kbps == last.cap_kbps], target)
        return None if crf is None else (crf, last.cap_kbps)
    same = [a for a in attempts if a.crf == last.crf]
    cap = _next_cap(same, target)
    return None if cap is None else (last.crf, cap)


def _next_crf(attempts: Sequence[Attempt], target: float) -> int | None:
    tried = {a.crf for a in attempts}
    x = _secant([(float(a.crf), a.vmaf) for a in attempts], target)
    if x is None:  # one point: a first step, a CRF step per point of VMAF off
        last = attempts[-1]
        off = last.vmaf - target
        step = min(FIRST_CRF_STEP[1], max(FIRST_CRF_STEP[0], round(abs(off))))
        x = last.crf + math.copysign(step, off)
    crf = min(SVTAV1_CRFS[1], max(SVTAV1_CRFS[0], round(x)))
    if crf in tried:  # the secant asks for a step smaller than one: one step towards it from the nearest tried
        nearest = min(attempts, key=lambda a: abs(a.vmaf - target))
        crf = nearest.crf + (1 if nearest.vmaf > target else -1)
    return crf if SVTAV1_CRFS[0] <= crf <= SVTAV1_CRFS[1] and crf not in tried else None


def _next_cap(attempts: Sequence[Attempt], target: float) -> int | None:
    x = _secant([(math.log(max(1, a.cap_kbps)), a.vmaf) for a in attempts], target)
    if x is None:
        last = attempts[-1]
        rate = min(float(last.cap_kbps), last.kbps)  # from what it spent, not from a cap it did not reach
        x = math.log(max(1.0, rate)) - CAP_STEP_PER_POINT * (last.vmaf - target)
    cap = max(1, round(math.exp(x)))
    return None if cap in {a.cap_kbps for a in attempts} else cap


def _secant(points: list[tuple[float, float]], target: float) -> float | None:
    """x where VMAF reaches `target` on the line through the two points that bracket it (the nearest two when
    none do); None with fewer than two points or a flat line."""
    pts = sorted(points)
    if len(pts) < 2:
        return None
    bracketing = [(a, b) for a, b in zip(pts, pts[1:], strict=False) if min(a[1], b[1]) <= target <= max(a[1], b[1])]
    a, b = bracketing[0] if bracketing else sorted(pts, key=lambda p: abs(p[1] - target))[:2]
    if a[1] == b[1] or a[0] == b[0]:
        return None
    return a[0] + (target - a[1]) * (b[0] - a[0]) / (b[1] - a[1])


def search(
    first: Attempt, target: float, tolerance: float, encode: Callable[[int, int], Attempt]
) -> tuple[Attempt | None, bool, list[Attempt]]:
    """Encode until an attempt lands within `tolerance` of `target`: (the cheapest such attempt, False, every
    attempt). When none does but the attempts bracket the target (VMAF jumps across the whole tolerance between
    two neighbouring caps: noise 720p, 33.3 to 38.9 between 1,755 and 1,767 kb/s), the cheapest attempt above it
    and True: a bound, as the bytes at equal VMAF are at most those where VMAF only rises with rate. None, False
    when neither."""
    attempts = [first]
    while (step := next_attempt(attempts, target, tolerance)) is not None:
        attempts.append(encode(*step))
    found = [a for a in attempts if abs(a.vmaf - target) <= tolerance]
    if found:
        return min(found, key=lambda a: a.bytes), False, attempts
    above = [a for a in attempts if a.vmaf > target]
    below = [a for a in attempts if a.vmaf < target]
    if above and below:
        return min(above, key=lambda a: a.bytes), True, attempts
    return None, False, attempts


def encode_rung(src: Path, out: Path, plan: LadderPlan, rung: VideoRendition, crf: int, cap_kbps: int) -> Path:
    """The rung of `plan` alone at (crf, cap), by the pipeline's own range encoder and playlist writer, into
    out/<rung name>: every range as the ladder's transcode encodes them, nothing else (no audio, no storyboard)."""
    from core.probe import probe
    from core.settings import Settings
    from workers.pipeline import encode_range, plan_encode, write_playlists

    settings = Settings(per_title=False, av1=False, measure_vmaf=False)
    one = replace(plan, renditions=(replace(with_cap(rung, cap_kbps), crf=crf),))
    prepared = replace(plan_encode(probe(src), settings), plan=one, thumbnails=None)
    outputs = [encode_range(src, prepared, rng, out, settings) for rng in prepared.ranges]
    write_playlists(out, replace(one, audio_kbps=None), outputs, [])
    return out / rung.name

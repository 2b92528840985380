"""The per-title decision as pure data: trials built by hand the way workers.pipeline.run_trial fills them.

What a viewer notices: easy content gets fewer bytes (a higher CRF, lower caps, fewer rungs); hard content gets
exactly the fixed ladder's rate control; every part of a job rebuilds the same ladder from the stored trial.
"""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from core.probe import SourceInfo
from core.settings import Settings
from workers.command import build_trial_argv, trial_file
from workers.ladder import plan_ladder
from workers.parts import plan_digest
from workers.pertitle import (
    AV1_MATCH_CRF_RANGE,
    CHEAP_KBPS,
    EASY_PRESET,
    EASY_PRESET_MAX_PIXEL_RATE,
    FAST_KEYFRAME_BOUND_CRF_OFFSET,
    GRAINY_GROWTH,
    GRAINY_LOWER_CRF_OFFSET,
    KEYFRAME_BOUND_CRF_OFFSET,
    MAX_CRF,
    MIN_STEP,
    SMALL_CRF_OFFSET,
    Av1Point,
    Av1Trial,
    CrfOffsets,
    LadderMode,
    Trial,
    TrialSize,
    TrialWindow,
    av1_match,
    av1_rates,
    av1_top_size,
    crf_offsets,
    decide,
    easy_preset,
    fixed_decision,
    h264_reference_rate,
    pixel_rate,
    trial_sizes,
    trial_windows,
)
from workers.pipeline import FIXED_BY_SETTING, FIXED_WITHOUT_TRIAL, plan_encode


def video(width: int = 1920, height: int = 1080, *, fps: float = 30.0, kbps: int = 0, seconds: float = 60.0):
    return SourceInfo("mov", seconds, True, True, width, height, fps=fps, video_bitrate=kbps * 1000, audio_channels=2)


def measured(width: int, height: int, kbps: float, *, fps: float = 30.0, key_share: float = 0.3) -> TrialSize:
    """A trial size whose real-GOP (2 s) bit rate is `kbps`: three 1 s windows, each starting on a keyframe."""
    gop = 2 * fps
    bytes_per_gop = kbps * 1000 / 8 * 2
    key = bytes_per_gop * key_share
    other = (bytes_per_gop - key) / (gop - 1)
    frames = round(3 * fps)
    return TrialSize(width, height, frames, 3, round(3 * key), round((frames - 3) * other))


def trial(small_kbps: float, large_kbps: float, *, crf: int = 21, fps: float = 30.0, key_share: float = 0.3) -> Trial:
    """A 1080p source's trial: 426x240 and 854x480 (4x the pixels)."""
    sizes = (
        measured(426, 240, small_kbps, fps=fps, key_share=key_share),
        measured(854, 480, large_kbps, fps=fps, key_share=key_share),
    )
    return Trial(crf, fps, 2, trial_windows(60.0), sizes, wall_seconds=0.8)


# A slide deck: 60 kb/s at 480p (bpp 0.005), bits grow as pixels ** 0.5. Noise: 4 Mb/s at 480p, pixels ** 1.
EASY = trial(30, 60)
HARD = trial(1000, 4000)


def test_trial_size_counts_one_keyframe_per_real_gop():
    size = measured(854, 480, 500.0)
    assert size.kbps(30.0, 2) == pytest.approx(500.0, rel=0.01)
    # The trial has a keyframe every second; a real encode every two: its keyframes weigh half as much.
    assert size.kbps(30.0, 2) < (size.key_bytes + size.other_bytes) * 8 / 3 / 1000


def test_windows_spread_over_the_source_and_fit_in_it():
    for duration in (7.0, 60.0, 600.0, 7200.0):
        windows = trial_windows(duration)
        assert len(windows) == 3
        assert all(w.start >= 0 and w.start + w.seconds <= duration for w in windows)
        assert windows[0].start < duration / 3 < windows[1].start < 2 * duration / 3 < windows[2].start
    assert trial_windows(4.0) == (TrialWindow(0.0, 3.0),)  # too short to hold them apart: one from the start
    assert trial_windows(2.0) == (TrialWindow(0.0, 2.0),)


def test_trial_sizes_are_small_rungs_of_the_plan():
    assert trial_sizes(plan_ladder(video())) == ((426, 240), (854, 480))
    assert trial_sizes(plan_ladder(video(1080, 1920))) == ((240, 426), (480, 854))  # portrait: upright
    assert trial_sizes(plan_ladder(video(640, 360))) == ((426, 240), (640, 360))
    assert trial_sizes(plan_ladder(video(320, 240))) == ((320, 240),)  # one rung: one size


def test_easy_content_gets_a_higher_crf_lower_caps_and_fewer_rungs():
    fixed = plan_ladder(video(1280, 720))  # a 1080p30 ladder keeps the install's CRF for moving content (below)
    easy, decision = decide(fixed, EASY)
    assert decision.mode == LadderMode.per_title
    assert easy.renditions[0].name == fixed.renditions[0].name == "720p"  # the source's own picture stays
    assert len(easy.renditions) < len(fixed.renditions)
    top = easy.renditions[0]
    assert top.crf is not None and fixed.crf < top.crf <= MAX_CRF  # the top rung, where VMAF barely sees it
    for r in easy.renditions:
        was = next(f for f in fixed.renditions if f.name == r.name)
        assert r.crf is not None and r.crf >= fixed.crf
        assert r.maxrate_kbps < was.maxrate_kbps
        assert r.bufsize_kbps == 2 * r.maxrate_kbps
        assert (r.width, r.height, r.fps) == (was.width, was.height, was.fps)
    assert [d.name for d in decision.rungs] == [r.name for r in fixed.renditions]  # every rung has its reason
    assert [d.name for d in decision.rungs if d.kept] == [r.name for r in easy.renditions]
    assert all(d.reason.endswith(".") and d.reason.count(". ") == 0 for d in decision.rungs)  # one sentence
    assert all(d.reason.startswith("Dropped") for d in decision.rungs if not d.kept)


def test_hard_content_keeps_the_fixed_ladders_rate_control():
    fixed = plan_ladder(video())
    hard, decision = decide(fixed, HARD)
    assert [(r.name, r.maxrate_kbps, r.bufsize_kbps) for r in hard.renditions] == [
        (r.name, r.maxrate_kbps, r.bufsize_kbps) for r in fixed.renditions
    ]
    assert all(r.crf == fixed.crf for r in hard.renditions)
    assert all(d.kept and "hard content" in d.reason for d in decision.rungs)


def test_easy_content_gets_a_slower_preset_and_a_higher_crf_where_it_shows_least():
    """Hard content keeps the fixed rate control; easy content gets the slower preset (never a faster one than the
    install chose) and a higher CRF: most where keyframes carry the bits (nothing moves), more on the top rung than
    on the upscaled rungs below it otherwise."""
    assert trial(1000, 4000).key_share == pytest.approx(0.3, abs=0.01)
    assert crf_offsets(HARD) == CrfOffsets(0, 0, 0)
    moving = crf_offsets(EASY)
    assert moving.top > moving.lower > moving.small > 0  # the more a rung is upscaled, the less it rises
    still = trial(30, 60, key_share=0.85)
    assert crf_offsets(still).top == crf_offsets(still).lower == crf_offsets(still).small > moving.top
    fixed = plan_ladder(video(1280, 720))
    assert fixed.preset == "veryfast" and easy_preset(fixed) == EASY_PRESET != "veryfast"
    assert easy_preset(replace(fixed, preset="veryslow")) == "veryslow"
    assert decide(fixed, EASY)[0].preset == EASY_PRESET
    assert decide(fixed, HARD)[0].preset == fixed.preset == "veryfast"
    crfs = {r.name: r.crf for r in decide(fixed, still)[0].renditions}
    assert set(crfs.values()) == {fixed.crf + crf_offsets(still).top}
    _, decision = decide(fixed, still)
    assert decision.inputs is not None and decision.inputs["preset"] == EASY_PRESET
    assert decision.inputs["key_share"] == pytest.approx(0.85, abs=0.01)


def test_film_grain_raises_the_rungs_below_the_top_less_than_animation_of_the_same_cost():
    """Both cost about 0.08 bits per pixel at 480p; grain's bits grow faster than its pixels (detail only the larger
    picture carries, which a higher CRF smooths away on the upscaled rungs), animation's about as fast."""
    grain, animation = trial(158, 1020), trial(218, 983)
    assert grain.raw_growth > GRAINY_GROWTH > animation.raw_growth
    assert abs(grain.bits_per_pixel - animation.bits_per_pixel) < 0.01
    assert crf_offsets(grain) == CrfOffsets(crf_offsets(animation).top, GRAINY_LOWER_CRF_OFFSET, SMALL_CRF_OFFSET)
    assert crf_offsets(grain).lower < crf_offsets(animation).lower
    fixed = plan_ladder(video(1280, 720))
    crfs = {name: {r.name: r.crf for r in decide(fixed, t)[0].renditions}
            for name, t in (("grain", grain), ("animation", animation))}  # fmt: skip
    assert crfs["grain"]["480p"] < crfs["animation"]["480p"] and crfs["grain"]["720p"] == crfs["animation"]["720p"]
    assert decide(fixed, grain)[1].inputs["raw_growth"] == pytest.approx(grain.raw_growth, abs=0.001)


def test_a_ladder_too_large_for_the_slower_preset_keeps_the_installs_and_only_keyframe_bound_offsets():
    """The slower preset costs 1.45x the CPU of a 1080p ladder's first range, which is on the way to first
    playable: a 1080p30 ladder keeps the install's preset, and moving content the install's CRF (the other
    offsets were measured at the slower preset); slides and still pictures still rise on every rung, less."""
    hd, hd60 = plan_ladder(video()), plan_ladder(video(1280, 720, fps=60.0))
    assert pixel_rate(hd) > EASY_PRESET_MAX_PIXEL_RATE >= pixel_rate(plan_ladder(video(1280, 720)))
    assert pixel_rate(hd60) > EASY_PRESET_MAX_PIXEL_RATE
    for fixed in (hd, hd60):
        assert easy_preset(fixed) == fixed.preset == "veryfast"
        plan, decision = decide(fixed, EASY)
        assert plan.preset == "veryfast" and {r.crf for r in plan.renditions} == {fixed.crf}
        assert decision.inputs is not None and decision.inputs["pixel_rate"] == round(pixel_rate(fixed))
        still = decide(fixed, trial(30, 60, key_share=0.85))[0]
        assert {r.crf for r in still.renditions} == {fixed.crf + FAST_KEYFRAME_BOUND_CRF_OFFSET}
        assert 0 < FAST_KEYFRAME_BOUND_CRF_OFFSET < KEYFRAME_BOUND_CRF_OFFSET
        assert h264_reference_rate(fixed, EASY) == ("veryfast", fixed.crf)
    # An install that chose a slower preset keeps it, with the offsets measured to hold there.
    slow = replace(hd, preset="medium")
    assert decide(slow, EASY)[0].preset == "medium"
    assert min(r.crf or 0 for r in decide(slow, EASY)[0].renditions) > hd.crf


def test_a_talking_head_gets_a_higher_crf_and_loses_a_rung_too_close_to_the_next():
    """The top rung's CRF rises most (lower rungs, upscaled, show a CRF step more); whether a rung is worth
    having is judged at the same CRF, so the top rung's saving does not make the rung below look too close."""
    fixed = plan_ladder(video(1280, 720))
    plan, decision = decide(fixed, trial(104, 249))  # bpp 0.020, bits ~ pixels ** 0.63
    offsets = crf_offsets(trial(104, 249))
    assert [(r.name, r.crf) for r in plan.renditions] == [
        ("720p", 21 + offsets.top),
        ("480p", 21 + offsets.lower),
        ("240p", 21 + offsets.small),  # the smallest rung: upscaled most
    ]
    dropped = next(d for d in decision.rungs if not d.kept)
    assert dropped.name == "360p" and f"less than a {MIN_STEP:g}x saving" in dropped.reason
    fixed_caps = {r.name: r.maxrate_kbps for r in fixed.renditions}
    # Easy content: caps that fit it, never above the fixed ones (with room for keyframes, so the smaller rungs of
    # a talking head keep the fixed cap; its top rung's is lower).
    assert all(r.maxrate_kbps <= fixed_caps[r.name] for r in plan.renditions)
    assert plan.renditions[0].maxrate_kbps < fixed_caps["720p"]


def test_a_rung_too_close_to_the_one_above_is_dropped():
    """A 1080p source at 1.2 Mb/s: its 720p and 480p would be capped near the 1080p's rate (the fixed ladder
    never spends more than the source carries), so they save too little to be worth their bytes."""
    fixed = plan_ladder(video(kbps=1200))
    assert [r.maxrate_kbps for r in fixed.renditions][:3] == [1200, 1200, 1200]
    plan, decision = decide(fixed, HARD, 1200)
    names = [r.name for r in plan.renditions]
    assert names[0] == "1080p" and "240p" in names
    dropped = {d.name: d.reason for d in decision.rungs if not d.kept}
    assert {"720p", "480p"} <= set(dropped)
    assert all("more than the source's 1200 kb/s" in dropped[name] for name in ("720p", "480p"))
    rates = [r.maxrate_kbps for r in plan.renditions]
    assert all(hi >= MIN_STEP * lo for hi, lo in zip(rates, rates[1:], strict=False))


def test_below_a_rung_any_connection_carries_nothing_is_kept():
    plan, decision = decide(plan_ladder(video(854, 480)), trial(5, 10))
    assert [r.name for r in plan.renditions] == ["480p"]
    assert plan.renditions[0].maxrate_kbps <= CHEAP_KBPS
    assert all("any connection" in d.reason for d in decision.rungs if not d.kept)


def test_decision_json_has_the_shared_format():
    _, decision = decide(plan_ladder(video()), EASY)
    data = json.loads(json.dumps(decision.to_json()))
    assert data["mode"] == "per_title"
    assert data["inputs"]["trial_crf"] == 21 and data["inputs"]["bits_per_pixel"] > 0
    for rung in data["rungs"]:
        assert {"name", "kept", "crf", "maxrate_kbps", "reason"} <= set(rung)
        assert isinstance(rung["kept"], bool) and isinstance(rung["crf"], int)
    fixed = fixed_decision(plan_ladder(video()), "Kept: why.").to_json()
    assert fixed["mode"] == "fixed" and fixed["inputs"] is None and all(r["kept"] for r in fixed["rungs"])


def test_parts_rebuild_the_planners_ladder_from_the_stored_trial():
    info, settings = video(), Settings()
    planned = plan_encode(info, settings, EASY)
    stored = json.loads(json.dumps({"source": info.to_json(), "trial": planned.trial.to_json()}))  # a JSON column
    again = plan_encode(SourceInfo.from_json(stored["source"]), settings, Trial.from_json(stored["trial"]))
    assert again.plan == planned.plan and plan_digest(again) == plan_digest(planned)
    assert plan_digest(planned) != plan_digest(plan_encode(info, settings))  # the trial is part of the plan


def test_per_title_off_or_without_a_trial_is_the_fixed_ladder():
    info = video()
    fixed = plan_ladder(info)
    off = plan_encode(info, Settings(per_title=False), EASY)
    assert off.plan == fixed and off.trial is None
    assert off.ladder is not None and off.ladder.mode == LadderMode.fixed
    assert {d.reason for d in off.ladder.rungs} == {FIXED_BY_SETTING}
    none = plan_encode(info, Settings())
    assert none.plan == fixed and none.ladder is not None
    assert {d.reason for d in none.ladder.rungs} == {FIXED_WITHOUT_TRIAL}


def test_trial_argv_opens_every_window_warily_from_a_keyframe(tmp_path: Path):
    plan = plan_ladder(video())
    windows = trial_windows(60.0)
    argv = build_trial_argv(
        plan, tmp_path / "src.bin", "mov", tmp_path, windows=windows, sizes=trial_sizes(plan), crf=21, max_pixels=1000
    )
    inputs = [i for i, a in enumerate(argv) if a == "-i"]
    assert len(inputs) == len(windows)
    starts = [0, *(i + 2 for i in inputs[:-1])]
    for start, at, w in zip(starts, inputs, windows, strict=True):
        options = argv[start:at]  # this input's own options
        assert argv[at + 1] == f"file:{(tmp_path / 'src.bin').resolve()}"
        assert options[options.index("-f") + 1] == "mov"
        assert options[options.index("-protocol_whitelist") + 1] == "file"
        assert options[options.index("-max_pixels") + 1] == "1000"
        assert options[options.index("-ss") + 1] == f"{w.start:g}"
        assert "-noaccurate_seek" in options
    for width, height in trial_sizes(plan):
        assert str(tmp_path / trial_file(width, height)) in argv
    assert argv.count("-crf") == 2 and argv.count("veryfast") == 2
    assert math.isclose(float(argv[argv.index("-crf") + 1]), 21)


def av1_trial(h264_vmaf: float, *points: tuple[int, float, int], h264_bytes: int = 400_000) -> Av1Trial:
    return Av1Trial(h264_vmaf, h264_bytes, tuple(Av1Point(*p) for p in points))


def test_av1_match_finds_the_crf_where_av1_scores_what_h264_does():
    # Between the points: VMAF linear in CRF (95 is halfway from 97 to 93), bytes log-linear (sqrt(300k * 80k)).
    match = av1_match(av1_trial(95.0, (32, 97.0, 300_000), (44, 93.0, 80_000)))
    assert match.crf == 38
    assert match.byte_ratio == pytest.approx(math.sqrt(300_000 * 80_000) / 400_000, rel=0.01)
    # Beyond them: extrapolated along the same line, within the range SVT-AV1 is trusted in.
    assert av1_match(av1_trial(99.0, (32, 97.0, 300_000), (44, 93.0, 80_000))).crf == 26
    assert av1_match(av1_trial(60.0, (32, 97.0, 300_000), (44, 93.0, 80_000))).crf == AV1_MATCH_CRF_RANGE[1]
    assert av1_match(av1_trial(99.9, (32, 97.0, 300_000), (44, 96.0, 80_000))).crf == AV1_MATCH_CRF_RANGE[0]


def test_av1_match_of_a_still_picture_is_the_top_of_the_range_and_never_costs_more_than_h264():
    """A slide deck: AV1 keeps it sharper than x264 at any CRF of the range (VMAF flat or rising): the highest
    CRF; AV1's cap never exceeds the H.264 rung's, even where AV1 would spend more bytes."""
    flat = av1_match(av1_trial(95.0, (32, 97.4, 68_000), (44, 97.4, 51_000), h264_bytes=30_000))
    assert flat.crf == AV1_MATCH_CRF_RANGE[1] and flat.byte_ratio == 1.0
    assert av1_match(av1_trial(95.0, (32, 97.4, 68_000), (44, 97.1, 51_000), h264_bytes=400_000)).byte_ratio < 1
    with pytest.raises(ValueError, match="two CRFs"):
        av1_match(av1_trial(95.0, (32, 97.0, 1)))


def test_the_av1_trial_matches_h264_as_per_title_encodes_the_rungs():
    fixed = plan_ladder(video())
    fixed = plan_ladder(video(1280, 720))
    assert h264_reference_rate(fixed, EASY) == (EASY_PRESET, fixed.crf + crf_offsets(EASY).lower)
    assert h264_reference_rate(fixed, EASY, top=True) == (EASY_PRESET, fixed.crf + crf_offsets(EASY).top)
    assert h264_reference_rate(fixed, HARD) == (fixed.preset, fixed.crf)


def test_the_top_rung_is_matched_at_its_own_size_when_larger_than_the_trials():
    """At full size AV1 falls further behind x264 than at the trial's size: the top twin takes the match measured
    at its size, twins up to the trial's size the trial's, and the ones between lie between (log pixels)."""
    fixed = plan_ladder(video())  # 1080p down to 240p
    assert av1_top_size(fixed, (854, 480)) == (1920, 1080)
    assert av1_top_size(plan_ladder(video(width=854, height=480)), (854, 480)) is None
    small = replace(av1_trial(95.0, (32, 97.0, 300_000), (44, 93.0, 80_000)), width=854, height=480)  # CRF 38
    top = replace(av1_trial(95.0, (32, 96.0, 900_000), (44, 92.0, 240_000)), width=1920, height=1080)  # CRF 35
    rate = av1_rates(replace(EASY, av1=small, av1_top=top))
    crfs = {r.name: rate(r)[0] for r in fixed.renditions}
    assert crfs["1080p"] == av1_match(top).crf == 35
    assert crfs["480p"] == crfs["360p"] == crfs["240p"] == av1_match(small).crf == 38
    assert 35 < crfs["720p"] < 38
    assert rate(fixed.renditions[0])[1] == pytest.approx(av1_match(top).byte_ratio, abs=0.001)
    # Without a top trial (a ladder no larger than the trial, or a trial stored before it existed): one match.
    one = av1_rates(replace(EASY, av1=small))
    assert {one(r) for r in fixed.renditions} == {(38, av1_match(small).byte_ratio)}
    with pytest.raises(ValueError, match="no AV1"):
        av1_rates(EASY)


def test_a_twin_of_a_rung_held_down_by_its_cap_gets_the_smaller_byte_ratio():
    """Noise: the H.264 rungs are capped far below what their CRF asks, and both matches were measured uncapped,
    at a quality those rungs never reach; the twin's cap takes the smaller ratio, not the one nearest its size."""
    fixed = plan_ladder(video())
    small = replace(av1_trial(95.0, (32, 97.0, 300_000), (44, 93.0, 80_000)), width=854, height=480)
    top = replace(av1_trial(95.0, (32, 96.0, 3_000_000), (44, 92.0, 1_200_000)), width=1920, height=1080)
    assert av1_match(top).byte_ratio > av1_match(small).byte_ratio
    capped = av1_rates(replace(HARD, av1=small, av1_top=top))
    uncapped = av1_rates(replace(EASY, av1=small, av1_top=top))
    assert capped(fixed.renditions[0]) == (av1_match(top).crf, av1_match(small).byte_ratio)
    assert uncapped(fixed.renditions[0]) == (av1_match(top).crf, av1_match(top).byte_ratio)


def test_the_av1_trial_is_stored_with_the_trial():
    measured = av1_trial(95.0, (32, 97.0, 300_000), (44, 93.0, 80_000))
    with_av1 = replace(EASY, av1=replace(measured, width=854, height=480), av1_top=replace(measured, width=1920))
    assert Trial.from_json(json.loads(json.dumps(with_av1.to_json()))) == with_av1
    old = EASY.to_json()
    del old["av1"], old["av1_top"]  # a job planned before the AV1 trial existed
    assert Trial.from_json(old) == EASY

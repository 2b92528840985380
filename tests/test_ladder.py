"""plan_ladder as pure data: which renditions a viewer gets for each kind of source.

No media is read: SourceInfo is built by hand the way core.probe would fill it.
"""

from fractions import Fraction

import pytest

from core.probe import HdrTransfer, SourceInfo
from workers.ladder import AUDIO_KBPS, LADDER_TABLE, MIN_KBPS, LadderPlan, plan_ladder

CAP_KBPS = {r.label: r.kbps for r in LADDER_TABLE}
LABELS = sorted(CAP_KBPS)


def video(width: int, height: int, *, fps: float = 30.0, kbps: int = 0, audio: bool = True, **kw) -> SourceInfo:
    return SourceInfo(
        demuxer="mov",
        duration=60.0,
        has_video=True,
        has_audio=audio,
        width=width,
        height=height,
        fps=fps,
        video_bitrate=kbps * 1000,
        audio_channels=2 if audio else 0,
        **kw,
    )


def label_of(name: str) -> int:
    assert name.endswith("p"), name
    return int(name[:-1])


def box(label: int, portrait: bool) -> tuple[int, int]:
    """The 16:9 bounding box a rung label stands for (long side even), upright for portrait sources."""
    long_side = round(label * 16 / 9 / 2) * 2
    return (label, long_side) if portrait else (long_side, label)


def sizes(plan: LadderPlan) -> list[tuple[int, int]]:
    return [(r.width, r.height) for r in plan.renditions]


def assert_ladder_sane(src: SourceInfo, plan: LadderPlan, max_height: int = 1080) -> None:
    """Properties every video ladder must have, whatever the source."""
    dw, dh = src.display_width, src.display_height
    portrait = dh > dw
    rungs = plan.renditions
    assert rungs, "a video source must get at least one video rendition"
    assert not plan.audio_only
    # One audio rendition, shared by every rung, exactly when the source has audio.
    assert plan.audio_kbps == (AUDIO_KBPS if src.has_audio else None)
    assert plan.variant_names == [r.name for r in rungs] + (["audio"] if src.has_audio else [])
    assert len({r.name for r in rungs}) == len(rungs), "rendition names must be unique"
    assert plan.segment_seconds % plan.gop_seconds == 0

    for r in rungs:
        label = label_of(r.name)
        assert label in CAP_KBPS and label <= max_height, r
        # Encoders need even sizes for 4:2:0.
        assert r.width % 2 == 0 and r.height % 2 == 0 and r.width >= 2 and r.height >= 2, r
        # Never upscale.
        assert r.width <= dw and r.height <= dh, (r, dw, dh)
        # Fits the rung's box, turned the same way as the source.
        bw, bh = box(label, portrait)
        assert r.width <= bw and r.height <= bh, (r, bw, bh)
        assert (r.height >= r.width) if portrait else (r.width >= r.height), r
        # Display aspect kept: within 1 %, or within 2 px of the exact scaled size.
        exact_h = r.width * dh / dw
        rel = abs((r.width / r.height) / (dw / dh) - 1)
        assert rel <= 0.01 or abs(r.height - exact_h) <= 2, (r, dw, dh, rel)
        # Frame rate: never above the source's pictures (fields, once deinterlaced), <= 60, small rungs <= 30.
        assert 0 < r.fps <= 60, r
        if src.fps > 0:
            assert r.fps <= Fraction(src.fps) * (2 if src.interlaced else 1) + Fraction(1, 1000), r
        if label < 720:
            assert r.fps <= 30, r
        # Bitrates: at most the table cap (x1.5 for high frame rates), at most what the source had.
        cap = CAP_KBPS[label] * (1.5 if r.fps > 30 else 1.0)
        assert 0 < r.maxrate_kbps <= cap, (r, cap)
        if src.video_bitrate > 0:
            assert r.maxrate_kbps <= max(src.video_bitrate // 1000, MIN_KBPS), r
        assert r.bufsize_kbps == 2 * r.maxrate_kbps, r

    # Highest first, strictly shrinking, no two rungs the same size; bitrates follow.
    areas = [r.width * r.height for r in rungs]
    assert areas == sorted(areas, reverse=True) and len(set(areas)) == len(areas), sizes(plan)
    for hi, lo in zip(rungs, rungs[1:], strict=False):
        assert hi.width >= lo.width and hi.height >= lo.height, (hi, lo)
        assert label_of(hi.name) > label_of(lo.name), (hi, lo)
        assert hi.maxrate_kbps >= lo.maxrate_kbps, (hi, lo)
        assert hi.fps >= lo.fps, (hi, lo)

    # The top rung is the source's own (even) size when it fits the ladder, else it fills its box.
    top = rungs[0]
    tbw, tbh = box(label_of(top.name), portrait)
    mbw, mbh = box(max_height, portrait)
    if dw <= mbw and dh <= mbh:
        assert (top.width, top.height) == (dw // 2 * 2, dh // 2 * 2), (top, dw, dh)
    else:
        assert top.width >= tbw - 2 or top.height >= tbh - 2, (top, tbw, tbh)


SOURCES = {
    "1080p": video(1920, 1080, kbps=8000),
    "720p": video(1280, 720, kbps=4000),
    "4k": video(3840, 2160, kbps=40000),
    "4:3 1440x1080": video(1440, 1080, kbps=6000),
    "4:3 640x480": video(640, 480, kbps=1500),
    "portrait 1080x1920": video(1080, 1920, kbps=8000),
    "rotated phone 1920x1080 r90": video(1920, 1080, rotation=90, kbps=12000),
    "rotated phone 1920x1080 r270": video(1920, 1080, rotation=270),
    "upside down 1920x1080 r180": video(1920, 1080, rotation=180),
    "odd 853x479": video(853, 479, fps=25),
    "low-res 320x240": video(320, 240, fps=15, kbps=300),
    "60 fps 1080p": video(1920, 1080, fps=60, kbps=12000),
    "59.94 fps 720p": video(1280, 720, fps=60000 / 1001),
    "no audio 1080p": video(1920, 1080, audio=False),
    "anamorphic PAL 4:3": video(720, 576, sample_aspect=Fraction(16, 15), fps=25),
    "scope 1920x804": video(1920, 804, fps=24),
    "square 1080x1080": video(1080, 1080),
    "tiny 100x60": video(100, 60),
}


@pytest.mark.parametrize("src", SOURCES.values(), ids=SOURCES.keys())
def test_every_ladder_has_the_basic_properties(src):
    assert_ladder_sane(src, plan_ladder(src))


@pytest.mark.parametrize(
    ("src", "min_rungs", "max_rungs"),
    [
        (SOURCES["1080p"], 4, 5),
        (SOURCES["720p"], 3, 4),
        (SOURCES["4k"], 4, 5),
        (SOURCES["4:3 1440x1080"], 4, 5),
        (SOURCES["portrait 1080x1920"], 4, 5),
        (SOURCES["odd 853x479"], 2, 3),
        (SOURCES["4:3 640x480"], 2, 3),
        (SOURCES["low-res 320x240"], 1, 2),
        (SOURCES["tiny 100x60"], 1, 1),
    ],
    ids=["1080p", "720p", "4k", "4:3", "portrait", "853x479", "640x480", "320x240", "100x60"],
)
def test_rung_count(src, min_rungs, max_rungs):
    assert min_rungs <= len(plan_ladder(src).renditions) <= max_rungs


def test_1080p_gets_the_standard_16x9_ladder():
    plan = plan_ladder(SOURCES["1080p"])
    assert [r.name for r in plan.renditions] == [f"{h}p" for h in reversed(LABELS) if h <= 1080]
    # A true 16:9 source fills every box exactly.
    assert sizes(plan) == [box(h, portrait=False) for h in reversed(LABELS) if h <= 1080]
    assert plan.renditions[0].maxrate_kbps == CAP_KBPS[1080]  # fills the box at 30 fps, source rich enough


def test_720p_source_tops_out_at_its_own_size():
    plan = plan_ladder(SOURCES["720p"])
    assert sizes(plan)[0] == (1280, 720)
    assert all(label_of(r.name) <= 720 for r in plan.renditions)


@pytest.mark.parametrize(("max_height", "top"), [(1080, (1920, 1080)), (2160, (3840, 2160)), (720, (1280, 720))])
def test_4k_source_is_capped_by_max_height(max_height, top):
    src = SOURCES["4k"]
    plan = plan_ladder(src, max_height=max_height)
    assert_ladder_sane(src, plan, max_height=max_height)
    assert sizes(plan)[0] == top
    assert max(label_of(r.name) for r in plan.renditions) == max_height


@pytest.mark.parametrize("src", [SOURCES["4:3 1440x1080"], SOURCES["4:3 640x480"]], ids=["1440x1080", "640x480"])
def test_4x3_rungs_keep_4x3_and_are_not_stretched_to_16x9(src):
    plan = plan_ladder(src)
    for r in plan.renditions:
        # Height-limited in a 16:9 box: the label is the height and the width follows the aspect.
        assert r.height == min(label_of(r.name), src.height // 2 * 2), r
        assert r.width * 3 == r.height * 4, r


def test_portrait_rungs_are_upright():
    src = SOURCES["portrait 1080x1920"]
    plan = plan_ladder(src)
    assert sizes(plan)[0] == (1080, 1920)
    for r in plan.renditions:
        assert r.width == label_of(r.name), r  # the short side is the label
        assert r.height > r.width


@pytest.mark.parametrize("rotation", [90, 270, -90])
def test_rotated_phone_video_is_planned_at_its_display_size(rotation):
    rotated = video(1920, 1080, rotation=rotation, kbps=12000)
    assert (rotated.display_width, rotated.display_height) == (1080, 1920)
    plan = plan_ladder(rotated)
    assert all(r.height > r.width for r in plan.renditions), sizes(plan)
    assert sizes(plan)[0] == (1080, 1920)
    # Exactly what an upright source of the display size gets.
    assert plan == plan_ladder(video(1080, 1920, kbps=12000))


def test_upside_down_video_stays_landscape():
    assert plan_ladder(video(1920, 1080, rotation=180)) == plan_ladder(video(1920, 1080))


def test_anamorphic_source_uses_display_aspect():
    src = SOURCES["anamorphic PAL 4:3"]
    assert (src.display_width, src.display_height) == (768, 576)
    plan = plan_ladder(src)
    assert sizes(plan)[0] == (768, 576)
    for r in plan.renditions:
        assert abs(r.width / r.height - 4 / 3) < 0.01, r


def test_odd_sized_source_keeps_its_full_resolution_rounded_down_to_even():
    src = SOURCES["odd 853x479"]
    plan = plan_ladder(src)
    assert sizes(plan)[0] == (852, 478)
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in plan.renditions)


def test_low_res_source_is_not_upscaled():
    plan = plan_ladder(SOURCES["low-res 320x240"])
    assert sizes(plan) == [(320, 240)]
    assert plan.renditions[0].fps == 15


def test_source_barely_above_a_rung_does_not_get_a_near_duplicate():
    # 900x506 is only ~1.1x the pixels of 854x480: one of the two is enough.
    plan = plan_ladder(video(900, 506))
    assert_ladder_sane(video(900, 506), plan)
    assert sizes(plan)[0] == (900, 506)
    for hi, lo in zip(plan.renditions, plan.renditions[1:], strict=False):
        assert hi.width * hi.height >= 1.2 * lo.width * lo.height, (hi, lo)


@pytest.mark.parametrize(
    ("fps", "high", "low"),
    [
        (60.0, Fraction(60), Fraction(30)),
        (60000 / 1001, Fraction(60000, 1001), Fraction(30000, 1001)),
        (50.0, Fraction(50), Fraction(25)),
        (120.0, Fraction(60), Fraction(30)),
        (30.0, Fraction(30), Fraction(30)),
        (25.0, Fraction(25), Fraction(25)),
        (24000 / 1001, Fraction(24000, 1001), Fraction(24000, 1001)),
        (0.0, Fraction(30), Fraction(30)),  # unknown rate
    ],
)
def test_frame_rate_per_rung(fps, high, low):
    plan = plan_ladder(video(1920, 1080, fps=fps))
    for r in plan.renditions:
        assert r.fps == (high if label_of(r.name) >= 720 else low), r
    assert {label_of(r.name) for r in plan.renditions} >= {720, 480}  # both kinds were checked


def test_high_frame_rate_gets_more_bits_but_within_1_5x():
    p30 = plan_ladder(video(1920, 1080, fps=30))
    p60 = plan_ladder(video(1920, 1080, fps=60))
    for r30, r60 in zip(p30.renditions, p60.renditions, strict=True):
        assert r30.name == r60.name
        if r60.fps > 30:
            assert r30.maxrate_kbps < r60.maxrate_kbps <= 1.5 * r30.maxrate_kbps, (r30, r60)
        else:
            assert r60.maxrate_kbps == r30.maxrate_kbps, (r30, r60)


def test_letterboxed_source_needs_fewer_bits_than_a_full_frame():
    wide = plan_ladder(SOURCES["scope 1920x804"])
    full = plan_ladder(video(1920, 1080, fps=24))
    assert [r.name for r in wide.renditions] == [r.name for r in full.renditions]
    for w, f in zip(wide.renditions, full.renditions, strict=True):
        assert w.maxrate_kbps < f.maxrate_kbps, (w, f)


@pytest.mark.parametrize("source_kbps", [1200, 600, 2500])
def test_low_bitrate_source_caps_every_rung(source_kbps):
    src = video(1920, 1080, kbps=source_kbps)
    plan = plan_ladder(src)
    assert_ladder_sane(src, plan)
    assert all(r.maxrate_kbps <= source_kbps for r in plan.renditions)
    # The top rung is limited by the source, not by the table.
    assert plan.renditions[0].maxrate_kbps == min(source_kbps, CAP_KBPS[1080])
    # Rungs whose table cap is below the source rate are unaffected.
    for r in plan.renditions:
        if CAP_KBPS[label_of(r.name)] <= source_kbps:
            assert r.maxrate_kbps == CAP_KBPS[label_of(r.name)], r


def test_starved_source_still_gets_a_usable_floor():
    plan = plan_ladder(video(1920, 1080, kbps=60))
    assert {r.maxrate_kbps for r in plan.renditions} == {MIN_KBPS}


def test_unknown_source_bitrate_uses_the_table():
    plan = plan_ladder(video(1920, 1080, kbps=0))
    assert [r.maxrate_kbps for r in plan.renditions] == [CAP_KBPS[label_of(r.name)] for r in plan.renditions]


def test_one_audio_rendition_for_every_rung():
    plan = plan_ladder(SOURCES["1080p"])
    assert plan.audio_kbps == AUDIO_KBPS
    assert plan.variant_names[-1] == "audio" and plan.variant_names.count("audio") == 1


def test_no_audio_source_gets_no_audio_rendition():
    src = SOURCES["no audio 1080p"]
    plan = plan_ladder(src)
    assert_ladder_sane(src, plan)
    assert plan.audio_kbps is None
    assert "audio" not in plan.variant_names
    assert not plan.audio_only
    # Same pictures as with audio.
    assert sizes(plan) == sizes(plan_ladder(video(1920, 1080)))


def test_audio_only_source_gets_an_audio_only_plan():
    src = SourceInfo(demuxer="mp3", duration=180.0, has_video=False, has_audio=True, audio_channels=2)
    plan = plan_ladder(src)
    assert plan.renditions == ()
    assert plan.audio_only
    assert plan.audio_kbps == AUDIO_KBPS
    assert plan.variant_names == ["audio"]


def test_source_with_nothing_to_play_is_rejected():
    with pytest.raises(ValueError, match="neither video nor audio"):
        plan_ladder(SourceInfo(demuxer="mov", duration=1.0, has_video=False, has_audio=False))


def test_encoder_settings_are_carried_into_the_plan():
    plan = plan_ladder(SOURCES["720p"], segment_seconds=6, gop_seconds=1, crf=23, preset="medium")
    assert (plan.segment_seconds, plan.gop_seconds, plan.crf, plan.preset) == (6, 1, 23, "medium")


@pytest.mark.parametrize(
    ("segment_seconds", "gop_seconds", "match"),
    [
        (4, 3, "at most 2 s"),
        (4, 0, "at most 2 s"),
        (4, -2, "at most 2 s"),
        (5, 2, "multiple of the keyframe interval"),
        (3, 2, "multiple of the keyframe interval"),
    ],
)
def test_bad_segment_or_keyframe_settings_are_rejected(segment_seconds, gop_seconds, match):
    with pytest.raises(ValueError, match=match):
        plan_ladder(SOURCES["720p"], segment_seconds=segment_seconds, gop_seconds=gop_seconds)


def test_bitrate_never_rises_down_the_ladder_for_a_source_just_above_720p():
    plan = plan_ladder(video(1410, 794))
    assert plan.renditions[0].maxrate_kbps >= plan.renditions[1].maxrate_kbps, plan.renditions[:2]


# Real-world sources (issue 12, finding 10): what the picture needs before any rung is cut from it.


def test_progressive_sdr_source_needs_no_preparation():
    plan = plan_ladder(video(1920, 1080))
    assert not plan.deinterlace and plan.tonemap is None
    assert plan.video_stream is None and plan.audio_stream is None  # hand-built: the first of each kind


@pytest.mark.parametrize(
    ("fps", "top", "low"),
    [(25, 50, 25), (30000 / 1001, Fraction(60000, 1001), Fraction(30000, 1001)), (30, 60, 30)],
    ids=["576i25", "1080i29.97", "1080i30"],
)
def test_interlaced_source_is_deinterlaced_to_one_frame_per_field(fps, top, low):
    plan = plan_ladder(video(1920, 1080, fps=fps, interlaced=True))
    assert plan.deinterlace
    assert_ladder_sane(video(1920, 1080, fps=fps, interlaced=True), plan)
    by_label = {label_of(r.name): r.fps for r in plan.renditions}
    assert by_label[1080] == by_label[720] == top  # 50i -> 50p: motion stays as smooth as on TV
    assert by_label[480] == by_label[360] == low  # small rungs are <= 30 fps, as for any 50/60p source


def test_interlaced_sd_pal_keeps_its_display_aspect():
    # 720x576 with 64:45 pixels is 16:9 PAL (DV, DVB): planned upright at its display size, deinterlaced.
    src = video(720, 576, fps=25, interlaced=True, sample_aspect=Fraction(64, 45))
    plan = plan_ladder(src)
    assert plan.deinterlace and sizes(plan)[0] == (1024, 576) and plan.renditions[0].fps == 50


@pytest.mark.parametrize("transfer", list(HdrTransfer))
def test_hdr_source_is_tone_mapped(transfer):
    src = video(3840, 2160, fps=30, hdr=transfer)
    plan = plan_ladder(src)
    assert plan.tonemap is transfer and not plan.deinterlace
    assert_ladder_sane(src, plan)
    assert sizes(plan) == sizes(plan_ladder(video(3840, 2160, fps=30)))  # same rungs as the SDR source


def test_chosen_streams_are_carried_into_the_plan():
    plan = plan_ladder(video(640, 360, video_stream=1, audio_stream=3))
    assert (plan.video_stream, plan.audio_stream) == (1, 3)
    silent = plan_ladder(video(640, 360, audio=False, video_stream=0))
    assert (silent.video_stream, silent.audio_stream) == (0, None)


def test_audio_only_plan_reads_the_chosen_track_and_nothing_else():
    src = SourceInfo(demuxer="mp3", duration=60.0, has_video=False, has_audio=True, audio_stream=0, audio_channels=1)
    plan = plan_ladder(src)
    assert plan.audio_only and plan.audio_stream == 0
    assert plan.video_stream is None and not plan.deinterlace and plan.tonemap is None


def test_16x10_screen_capture_at_15_fps_keeps_its_aspect_and_rate():
    src = video(1440, 900, fps=15)
    plan = plan_ladder(src)
    assert_ladder_sane(src, plan)
    assert sizes(plan) == [(1440, 900), (1152, 720), (768, 480), (576, 360), (384, 240)]
    assert all(r.fps == 15 for r in plan.renditions)  # no frame invented
    assert all(abs(Fraction(w, h) - Fraction(16, 10)) < Fraction(1, 50) for w, h in sizes(plan))

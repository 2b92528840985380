"""Ladder planning: which renditions to encode for a source, as pure data.

A rung is a bounding box (e.g. 720p = 1280x720, turned upright for portrait sources). The source is
scaled to fit each box it overflows; the first box it fits inside gets the source's own size and ends
the ladder, so nothing is ever upscaled and an odd-sized source keeps its full resolution.

The plan also says what the picture needs before any rung is cut from it: which streams to read (never the
album cover; the default audio track), deinterlacing (fields become frames, so 50i plays as 50p), and tone
mapping (HDR PQ/HLG to the 8-bit BT.709 SDR every H.264 High profile player shows correctly).

With AV1 on (a setting), every H.264 rung gets an AV1 twin of the same size and frame rate (`with_av1`), listed
after the H.264 ladder in the same master: a device that decodes AV1 plays the twins for fewer bytes, any
other keeps H.264.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction

from core.encoding import VideoCodec, X264Preset, check_gop, check_segment
from core.media_keys import AUDIO_NAME
from core.probe import HdrTransfer, SourceInfo


@dataclass(frozen=True)
class Rung:
    label: int  # short side of the box: 1080 for 1920x1080
    kbps: int  # video bitrate cap at <= 30 fps for a source that fills the box


LADDER_TABLE: tuple[Rung, ...] = (
    Rung(240, 400),
    Rung(360, 800),
    Rung(480, 1400),
    Rung(720, 2800),
    Rung(1080, 5000),
    Rung(1440, 8000),
    Rung(2160, 14000),
)
MAX_FPS = 60
HIGH_FPS_MIN_LABEL = 720  # rungs below this are halved to <= 30 fps, as players on small screens expect
MIN_KBPS = 150
AUDIO_KBPS = 128  # one audio rendition for every rung: players on small screens share it with big ones
NEAR_DUPLICATE = 1.2


@dataclass(frozen=True)
class VideoRendition:
    name: str
    width: int
    height: int
    fps: Fraction
    maxrate_kbps: int
    bufsize_kbps: int
    crf: int | None = None  # this rung's own CRF (per-title); None: the plan's
    codec: VideoCodec = VideoCodec.h264


@dataclass(frozen=True)
class LadderPlan:
    renditions: tuple[VideoRendition, ...]
    audio_kbps: int | None  # the one audio rendition (shared by every rung); None when the source has no audio
    segment_seconds: int
    gop_seconds: int
    crf: int
    preset: X264Preset
    video_stream: int | None = None  # absolute source stream indexes; None: the first of the kind
    audio_stream: int | None = None
    deinterlace: bool = False  # one frame per field (bwdif), before any scaling
    tonemap: HdrTransfer | None = None  # HDR in, SDR BT.709 out
    svtav1_preset: int = 10  # SVT-AV1's speed for the AV1 rungs, if any (higher: faster)

    @property
    def audio_only(self) -> bool:
        return not self.renditions

    @property
    def variant_names(self) -> list[str]:
        """Every rendition folder the encode fills: the video rungs, then the audio."""
        return [r.name for r in self.renditions] + ([AUDIO_NAME] if self.audio_kbps is not None else [])


def _even_floor(x: float) -> int:
    return max(2, int(x) // 2 * 2)


def _even_round(x: float) -> int:
    return max(2, round(x / 2) * 2)


def output_fps(source_fps: float, label: int) -> Fraction:
    fps = Fraction(source_fps).limit_denominator(1001) if source_fps > 0 else Fraction(30)
    while fps > MAX_FPS:
        fps /= 2
    if label < HIGH_FPS_MIN_LABEL and fps > 30:
        fps /= 2
    return fps


def _box(label: int, portrait: bool) -> tuple[int, int]:
    long_side = _even_round(label * 16 / 9)
    return (label, long_side) if portrait else (long_side, label)


def _video_kbps(rung: Rung, width: int, height: int, fps: Fraction, portrait: bool, source_kbps: int) -> int:
    bw, bh = _box(rung.label, portrait)
    fill = max(0.4, min(1.0, (width * height) / (bw * bh)))  # a letterboxed 2.39:1 source needs fewer bits
    kbps = rung.kbps * fill * (1.5 if fps > 30 else 1.0)
    if source_kbps > 0:
        kbps = min(kbps, max(source_kbps, MIN_KBPS))  # never spend more bits than the source had
    return int(kbps)


def plan_ladder(
    src: SourceInfo,
    *,
    max_height: int = 1080,
    segment_seconds: int = 4,
    gop_seconds: int = 2,
    crf: int = 21,
    preset: X264Preset = "veryfast",
    table: tuple[Rung, ...] = LADDER_TABLE,
) -> LadderPlan:
    check_segment(segment_seconds, check_gop(gop_seconds))  # settings refuse these at start-up already

    def plan(renditions: tuple[VideoRendition, ...], audio_kbps: int | None) -> LadderPlan:
        video = bool(renditions)
        return LadderPlan(
            renditions,
            audio_kbps,
            segment_seconds,
            gop_seconds,
            crf,
            preset,
            video_stream=src.video_stream if video else None,
            audio_stream=src.audio_stream if src.has_audio else None,
            deinterlace=video and src.interlaced,
            tonemap=src.hdr if video else None,
        )

    if not src.has_video:
        if not src.has_audio:
            raise ValueError("source has neither video nor audio")
        return plan((), AUDIO_KBPS)

    dw, dh = src.display_width, src.display_height
    portrait = dh > dw
    source_kbps = src.video_bitrate // 1000
    # Deinterlacing makes a frame of each field: 25i (50 fields a second) becomes 50p, as broadcasters do it.
    source_fps = src.fps * 2 if src.interlaced else src.fps
    rungs: list[VideoRendition] = []
    for rung in sorted(table, key=lambda r: r.label):
        if rung.label > max_height:
            break
        bw, bh = _box(rung.label, portrait)
        scale = min(bw / dw, bh / dh)
        native = scale >= 1
        if native:
            width, height = _even_floor(dw), _even_floor(dh)
            if rungs and height * width < rungs[-1].height * rungs[-1].width * NEAR_DUPLICATE:
                rungs.pop()  # the source is barely above the previous rung: keep only the native size
        else:
            width = min(_even_round(dw * scale), _even_floor(dw))
            height = min(_even_round(dh * scale), _even_floor(dh))
        fps = output_fps(source_fps, rung.label)
        kbps = _video_kbps(rung, width, height, fps, portrait, source_kbps)
        if rungs:  # a native top rung in a much larger box must not get fewer bits than the rung below
            kbps = max(kbps, rungs[-1].maxrate_kbps)
        rungs.append(VideoRendition(f"{rung.label}p", width, height, fps, kbps, 2 * kbps))
        if native:
            break
    rungs.reverse()  # highest first, the order players list them in
    return plan(tuple(rungs), AUDIO_KBPS if src.has_audio else None)


AV1_SUFFIX = "-av1"  # "720p" -> "720p-av1": the twin's rendition folder


# SVT-AV1's CRF (1-63) for an x264 CRF. The anchor is measured (4 s 720p clips, VMAF against the source, the
# product's argv and caps): SVT-AV1 preset 6 CRF 38 against x264 veryfast CRF 21 gave the 720p rung -35 % bytes
# at -0.8 VMAF (graphics), -23 % at +1.2 (fractal zoom), -14 % at +6.2 (heavy grain), and the 480p rung -52 to
# -70 % bytes at -2.0 to +3.8 VMAF. Other x264 CRFs move by the ratio of the two scales (63/51), not measured.
# Faster presets lose quality at the same CRF (graphics 720p: preset 8 -1.1, preset 10 about -3 VMAF).
AV1_CRF_AT_X264_21 = 38
AV1_CRF_PER_X264_STEP = 63 / 51
AV1_MAX_CRF = 63
AV1_MIN_SIDE = 64  # SVT-AV1 refuses a smaller picture: such a rung stays H.264 only


def av1_crf(x264_crf: int) -> int:
    """The SVT-AV1 CRF of the same VMAF as this x264 CRF."""
    crf = round(AV1_CRF_AT_X264_21 + (x264_crf - 21) * AV1_CRF_PER_X264_STEP)
    return max(1, min(AV1_MAX_CRF, crf))


def with_cap(r: VideoRendition, cap_kbps: int) -> VideoRendition:
    """The rung capped at cap_kbps: its own buffer when the cap is its own, else a buffer of twice the cap."""
    return r if cap_kbps == r.maxrate_kbps else replace(r, maxrate_kbps=cap_kbps, bufsize_kbps=2 * cap_kbps)


def with_av1(
    plan: LadderPlan, preset: int, rate: Callable[[VideoRendition], tuple[int, float]] | None = None
) -> LadderPlan:
    """The plan with an AV1 twin of every H.264 rung after them: same size and frame rate, its CRF on the AV1
    scale. Applied last, to the ladder as finally chosen (per-title included), so every rung kept has its twin and
    no dropped one does; a rung too small for SVT-AV1 has none. `rate`: what the per-title AV1 trial measured
    (workers.pertitle.av1_rates), for each H.264 rung the CRF of its twin and the share of the H.264 cap the twin
    gets. Without it: the CRF mapped from x264's and the same cap (the player's budget for that size)."""
    h264 = [r for r in plan.renditions if r.codec == VideoCodec.h264]

    def twin(r: VideoRendition) -> VideoRendition:
        crf, cap_ratio = rate(r) if rate is not None else (av1_crf(r.crf if r.crf is not None else plan.crf), 1.0)
        cap = min(r.maxrate_kbps, max(MIN_KBPS, math.ceil(r.maxrate_kbps * cap_ratio)))  # never above H.264's
        return replace(with_cap(r, cap), name=r.name + AV1_SUFFIX, crf=crf, codec=VideoCodec.av1)

    twins = tuple(twin(r) for r in h264 if min(r.width, r.height) >= AV1_MIN_SIDE)
    return replace(plan, renditions=(*h264, *twins), svtav1_preset=preset)

"""Loudness normalization (EBU R128) of the one audio rendition: read what ffmpeg's ebur128 filter measured, and
plan the gain that brings it to the target loudness under the true-peak ceiling without pumping.

Pure: parses text and does arithmetic. workers.command turns a LevelPlan into filters (volume, alimiter) and the
measurement into an argv; workers.pipeline runs it before the audio encode.

Why a plain gain and not loudnorm: loudnorm's `linear=true` is the same constant gain, but it silently falls
back to its dynamic mode (a 3 s sliding gain) whenever the gain would push the true peak over the ceiling, which
is exactly the quiet, peaky source that needs the most gain; it also resamples to 192 kHz. Measured on a -30 LUFS
source with clicks at -6 dBTP, after AAC: loudnorm reached -16.2 LUFS but its true peak came out at -0.6 dBTP
(over the -1 ceiling) and the programme between the clicks moved by 0.6 dB with them; this plan (+8.2 dB, 4 dB
limited) came out at -23.1 LUFS, -1.6 dBTP, the programme between the clicks raised by 8.2 dB within 0.1 dB. On a
plain quiet source (-35 LUFS, peaks low) both give the same constant +19 dB. So the gain here is always constant;
a lookahead limiter takes only the peaks over the ceiling, and when that would take more than MAX_LIMITING_DB
(limiting that reaches the programme itself pumps) the gain is lowered instead: such a source comes out quieter
than the target rather than squashed.
"""

import math
import re
from dataclasses import dataclass

# BS.1770's absolute gate: ebur128 reports an integrated loudness of -70 LUFS when no 400 ms block passed it
# (digital silence, or nothing but a faint hiss). There is nothing to normalize: the gain stays 0.
SILENCE_LUFS = -70.0

# The AAC encoder's decoded output peaks higher than what it was given (quantization noise adds to the peaks):
# measured on this build at 128 kb/s stereo, +0.3 to +0.4 dB (limited clicks at -2.0 dBTP decoded at -1.6; a
# programme at -8.3 decoded at -7.9). The signal entering the encoder is kept this far under the ceiling, with
# room for content that overshoots more.
CODEC_MARGIN_DB = 1.0

# Peaks the limiter may take down, at most. A few dB on rare transients is inaudible (a lookahead limiter with
# a 5 ms attack); beyond it the limiter works on the programme itself and its level moves with the peaks.
MAX_LIMITING_DB = 4.0

# The most a source is raised. Quieter than target - 30 dB (-46 LUFS by default) is a near-silent track (room
# tone, a muted microphone's hiss): raising it to speech level would play noise loudly, not make speech audible.
MAX_GAIN_DB = 30.0

# The measurement runs before the first audio segment, so it delays first playable. Measured on this machine
# (2 cores, ebur128 peak=true over the 48 kHz stereo downmix of an AAC track): 0.3-0.4 s CPU for 60 s of audio,
# 3.1-3.9 s for 600 s; it grows with the length. So a file longer than the windows together is measured on
# MEASURE_WINDOWS windows of WINDOW_SECONDS spread over it: 0.40 s CPU for a 600 s track (the same for 6 h), no
# more than a 1-minute file costs whole, so a long source's first playable waits no longer for its audio. Its
# integrated loudness came within 0.4 LU of the whole file's (a steady track: -29.0 vs -29.4 LUFS; one whose
# level swings by 17 LU: -36.6 vs -36.6). Windows may miss the loudest peak (there: -24.6 vs -23.1 dBTP):
# plan_level adds the limiter for that. (20 windows cost twice as much and measured no closer.)
MEASURE_WINDOWS = 10
WINDOW_SECONDS = 6.0
FULL_MEASURE_SECONDS = MEASURE_WINDOWS * WINDOW_SECONDS  # up to this, measuring the whole file costs no more


@dataclass(frozen=True)
class Window:
    """A stretch of the source measured on its own (input seeking), when the file is too long to measure whole."""

    start: float
    length: float


def measure_windows(duration: float) -> tuple[Window, ...] | None:
    """None: measure the whole file. Otherwise windows centred on equal shares of the duration, so the start,
    the middle and the end (a film's quiet opening and loud finale) are all heard."""
    if duration <= FULL_MEASURE_SECONDS:
        return None
    share = duration / MEASURE_WINDOWS
    return tuple(
        Window(start=round(share * (k + 0.5) - WINDOW_SECONDS / 2, 3), length=WINDOW_SECONDS)
        for k in range(MEASURE_WINDOWS)
    )


@dataclass(frozen=True)
class Measurement:
    """ebur128's summary of the audio exactly as it will be encoded (the same 48 kHz stereo downmix)."""

    integrated: float  # LUFS; SILENCE_LUFS when no block passed the gate
    true_peak: float | None  # dBTP; None for digital silence (ebur128 prints -inf)
    lra: float  # LU
    sampled: bool = False  # measured on windows (measure_windows), not on the whole file

    @property
    def silent(self) -> bool:
        return self.true_peak is None or self.integrated <= SILENCE_LUFS


_NUMBER = r"([-+]?(?:\d+(?:\.\d*)?|inf|nan))"
_INTEGRATED = re.compile(r"^\s*I:\s*" + _NUMBER + r"\s*LUFS", re.MULTILINE | re.IGNORECASE)
_LRA = re.compile(r"^\s*LRA:\s*" + _NUMBER + r"\s*LU\b", re.MULTILINE | re.IGNORECASE)
_TRUE_PEAK = re.compile(r"True peak:\s*\n\s*Peak:\s*" + _NUMBER + r"\s*dBFS", re.IGNORECASE)


def _finite(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def parse_ebur128(log: str, *, sampled: bool = False) -> Measurement:
    """The last `Summary:` ebur128 printed (with `peak=true`) -> a Measurement. ValueError when there is none
    (ffmpeg stopped before the end) or it lacks a figure: a partial log must never be read as a measurement."""
    at = log.rfind("Summary:")
    if at < 0:
        raise ValueError("ebur128 printed no summary")
    summary = log[at:]
    found = [pattern.search(summary) for pattern in (_INTEGRATED, _LRA, _TRUE_PEAK)]
    missing = [name for name, m in zip(("I", "LRA", "true peak"), found, strict=True) if m is None]
    if missing:
        raise ValueError(f"ebur128's summary lacks {', '.join(missing)}")
    integrated, lra, peak = (_finite(m.group(1)) for m in found if m is not None)
    return Measurement(
        integrated=SILENCE_LUFS if integrated is None else max(integrated, SILENCE_LUFS),
        true_peak=peak,
        lra=lra or 0.0,
        sampled=sampled,
    )


@dataclass(frozen=True)
class LevelPlan:
    """What the audio encode does to the level: a constant gain, then (if `limit_dbfs`) a peak limiter."""

    measured: Measurement
    target_i: float
    target_tp: float
    gain_db: float
    limit_dbfs: float | None  # the limiter's ceiling; None: no limiter

    @property
    def silent(self) -> bool:
        return self.measured.silent

    @property
    def limited(self) -> bool:
        return self.limit_dbfs is not None

    def to_json(self) -> dict:
        """transcode_jobs.loudness: what was measured, the target, and what was done (JSON has no -inf: null)."""
        m = self.measured
        return {
            "input_i": round(m.integrated, 1),
            "input_tp": None if m.true_peak is None else round(m.true_peak, 1),
            "input_lra": round(m.lra, 1),
            "target_i": self.target_i,
            "target_tp": self.target_tp,
            "gain_db": round(self.gain_db, 2),
            "limited": self.limited,
            "silent": self.silent,
            "sampled": m.sampled,
        }


def plan_level(measured: Measurement, target_i: float, target_tp: float) -> LevelPlan:
    """The gain that brings `measured` to `target_i` LUFS with its true peak under `target_tp` dBTP after AAC.

    gain = target - I (at most MAX_GAIN_DB). If the peaks would then pass the ceiling (target_tp minus the codec's
    overshoot), a limiter takes the excess when it is at most MAX_LIMITING_DB; beyond that the gain is lowered
    until it is, so no peak is limited by more than that. Silence gets no gain. A measurement on windows may have
    missed the loudest peak: its plan always has the limiter (which does nothing to peaks under the ceiling).
    """
    if measured.silent or measured.true_peak is None:
        return LevelPlan(measured, target_i, target_tp, gain_db=0.0, limit_dbfs=None)
    ceiling = target_tp - CODEC_MARGIN_DB
    gain = min(target_i - measured.integrated, MAX_GAIN_DB)
    excess = measured.true_peak + gain - ceiling
    if excess > MAX_LIMITING_DB:
        gain -= excess - MAX_LIMITING_DB
    limit = ceiling if excess > 0 or measured.sampled else None
    return LevelPlan(measured, target_i, target_tp, gain_db=gain, limit_dbfs=limit)

"""The media limits as pure checks (core.media_limits), and probe() refusing from headers before decoding: tiny
files built here, no services."""

import resource
import struct
from pathlib import Path

import pytest

from api.errors import status_for
from core.errors import Refusal, Refused
from core.media_limits import MediaLimits, PacketTally, StreamFacts, check_duration, check_streams
from core.probe import probe
from core.settings import Settings
from schemas.tables import FailureKind
from tests.media import ffmpeg

LIMITS = MediaLimits()


def _refusal(check, *args, **kwargs) -> str:
    with pytest.raises(Refused) as exc:
        check(*args, **kwargs)
    assert exc.value.reason == Refusal.over_limit and exc.value.kind == FailureKind.over_limit
    assert status_for(exc.value.reason) == 422
    return exc.value.detail


@pytest.mark.parametrize(
    ("streams", "words"),
    [
        (
            [StreamFacts("video", 16000, 16000)],
            "pixels per frame is 16000x16000 = 256,000,000, the limit is 35,389,440",
        ),
        ([StreamFacts("video", 320, 240, frame_rate=100_000)], "the frame rate is 100000 fps, the limit is 240 fps"),
        ([StreamFacts("audio", sample_rate=768_000)], "the sample rate is 768000 Hz, the limit is 192000 Hz"),
        ([StreamFacts("audio", sample_rate=48000, channels=64)], "the number of audio channels is 64, the limit is 16"),
        ([StreamFacts("other")] * 65, "the number of streams is 65, the limit is 64"),
        ([StreamFacts("video", 320, 240), StreamFacts("video", 20000, 2000)], "pixels per frame is 20000x2000"),
    ],
    ids=["pixels", "frame_rate", "sample_rate", "channels", "streams", "second_video_stream"],
)
def test_a_stream_over_a_limit_is_refused_naming_it(streams, words):
    assert words in _refusal(check_streams, streams, LIMITS)


def test_streams_within_the_limits_pass_and_unknown_values_are_left_to_the_decoder():
    check_streams(
        [
            StreamFacts("video", 8192, 4320, frame_rate=240),
            StreamFacts("video", 3840, 2160, frame_rate=60000 / 1001),
            StreamFacts("audio", sample_rate=192_000, channels=16),
            StreamFacts("audio"),  # a header that says nothing: the decoded frame is checked
            *[StreamFacts("other")] * 60,  # a remux: subtitles in many languages
        ],
        LIMITS,
    )


def test_duration_declared_or_timestamped():
    check_duration(6 * 3600, LIMITS, declared=True)
    assert "the declared duration is 36001 s (10.0 h), the limit is 21600 s (6.0 h)" in _refusal(
        check_duration, 36001, LIMITS, declared=True
    )
    assert "the duration its timestamps span is 21601 s" in _refusal(check_duration, 21601, LIMITS, declared=False)


def _feed(tally: PacketTally, times: list[float], *, video: bool = True, step: float = 0.04) -> None:
    for t in times:
        tally.add(t, t + step, video=video)


def test_two_frames_ten_hours_apart_are_refused_at_the_second():
    tally = PacketTally(LIMITS)
    tally.add(0.0, 1.0, video=True)
    assert "the duration its timestamps span is 36001 s" in _refusal(tally.add, 36000.0, 36001.0, video=True)


def test_frames_far_apart_within_the_duration_are_refused_by_the_gap():
    tally = PacketTally(LIMITS)
    _feed(tally, [0.0, 0.04, 0.08])
    assert "the time between two frames is 7200 s (2.0 h), the limit is 300 s" in _refusal(
        tally.add, 7200.08, 7200.12, video=True
    )
    late = PacketTally(LIMITS)  # the first frame long after the file's start is a gap too
    assert "the time between two frames is 1000 s" in _refusal(late.add, 1000.0, 1000.04, video=True)


def test_packets_denser_than_the_frame_rate_are_refused_as_counted():
    tally = PacketTally(LIMITS)
    with pytest.raises(Refused) as exc:
        _feed(tally, [i / 100_000 for i in range(100_000)], step=1e-5)
    assert "the frame rate is 242 frames in" in exc.value.detail and "(counted)" in exc.value.detail
    assert (
        tally.video_packets == 242
    )  # stopped there (240 per second, plus one second of slack), not after reading them all


def test_ordinary_timelines_pass():
    tally = PacketTally(LIMITS, start=1.4)  # MPEG-TS starts where its clock was
    for i in range(30 * 60):  # a minute at 30 fps in decode order (B-frames step back) with audio between
        t = 1.4 + i / 30 + (0.1 if i % 3 == 1 else -0.03 if i % 3 == 2 else 0)
        tally.add(t, t + 1 / 30, video=True)
        tally.add(1.4 + i / 30, 1.4 + (i + 1) / 30, video=False)
    assert tally.video_packets == 1800 and round(tally.end - tally.start) == 60
    slideshow = PacketTally(LIMITS)  # a still every five minutes under a long audio track
    _feed(slideshow, [0.0, 300.0, 600.0])
    _feed(slideshow, [i * 0.02 for i in range(40_000)], video=False)


def test_limits_come_from_the_settings():
    settings = Settings(media_max_pixels=1920 * 1080, media_max_streams=4, media_max_duration_seconds=60)
    limits = MediaLimits.from_settings(settings)
    assert (limits.max_pixels, limits.max_streams, limits.max_duration_seconds) == (1920 * 1080, 4, 60)
    assert MediaLimits.from_settings(Settings()) == MediaLimits()  # the two sets of defaults agree


def _wav(path: Path, channels: int, rate: int) -> Path:
    block = channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 16)
    data = bytes(block * 100)
    path.write_bytes(
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data"
        + struct.pack("<I", len(data)) + data
    )  # fmt: skip
    return path


@pytest.mark.slow  # a few seconds of x264 for the big frame
def test_probe_refuses_from_headers_without_decoding(tmp_path):
    """A 6000x6000 frame (36 M pixels, just over the default) is refused before anything decodes it: the probe's
    memory barely moves; a lower limit is the one applied."""
    bomb = tmp_path / "big.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "color=gray:s=6000x6000:r=1", "-frames:v", "1",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "51", str(bomb),
    )  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(Refused) as exc:
        probe(bomb)
    assert "pixels per frame is 6000x6000 = 36,000,000" in exc.value.detail
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 < 60 * 1024**2
    small = tmp_path / "small.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=640x360:r=25", "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", str(small)
    )
    assert probe(small).width == 640
    with pytest.raises(Refused) as exc:
        probe(small, limits=MediaLimits(max_pixels=320 * 240))
    assert "pixels per frame is 640x360 = 230,400, the limit is 76,800" in exc.value.detail
    with pytest.raises(Refused) as exc:
        probe(_wav(tmp_path / "many.wav", 64, 48000))
    assert "the number of audio channels is 64" in exc.value.detail

"""bench/publish.py's own judgement: which playlists it waits for, when it calls segments playable, its verdicts.

The bench's figures are only as honest as these: a playable check that skipped the audio rendition or accepted
segments that do not decode would report a fast publish that no player sees.
"""

import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from bench.publish import (
    AUDIO_COST,
    CostModel,
    Row,
    at_least,
    at_most,
    count_frames,
    decode_problem,
    media_playlists,
    quality_rows,
    range_lengths,
    ratio,
    render,
    rendition_name,
)
from bench.publish import (
    RungQuality as Q,
)
from core.ffmpeg import ffmpeg_exe
from core.settings import Settings

MASTER = """#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="English",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8?sig=a"
#EXT-X-STREAM-INF:BANDWIDTH=5500000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080,AUDIO="aac"
1080p/index.m3u8?sig=b
#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360,AUDIO="aac"
360p/index.m3u8?sig=c
"""


def test_every_rung_and_the_audio_rendition_are_waited_for():
    playlists = media_playlists(MASTER)
    assert playlists == ["1080p/index.m3u8?sig=b", "360p/index.m3u8?sig=c", "audio/index.m3u8?sig=a"]
    assert [rendition_name(u) for u in playlists] == ["1080p", "360p", "audio"]


def test_a_master_without_an_audio_group_needs_only_its_variants():
    old = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n"
    assert media_playlists(old) == ["720p/index.m3u8"]


def test_a_goal_not_measured_neither_passes_nor_fails():
    assert at_most("first playable", 4.2, 10).verdict == "PASS"
    assert at_most("first playable", 10.5, 10).verdict == "FAIL"
    assert at_least("speed-up", ratio(180, 100), 1.8).verdict == "PASS"
    skipped = at_least("speed-up", ratio(None, 100), 1.8)
    assert (skipped.verdict, skipped.figure) == ("n/a", "not measured")


def test_quality_rows_fail_on_a_lost_frame_or_a_bitrate_drift():
    source = 1800
    chunked = {"720p": Q("720p", 88.1, 2300, 1799)}
    single = {"720p": Q("720p", 88.0, 2200, 1800)}
    verdicts = {r.what.split(" chunked")[0]: r.verdict for r in quality_rows(chunked, single, source, "")}
    assert verdicts == {"VMAF 720p": "PASS", "bit rate 720p": "FAIL", "frames 720p": "FAIL"}


def test_the_table_shows_each_verdict():
    console = Console(width=150, record=True)
    console.print(render([Row("a", "1", "<= 2", True), Row("b", "3", "<= 2", False), at_most("c", None, 1)], "t"))
    text = console.export_text()
    assert "PASS" in text and "FAIL" in text and "n/a" in text


def test_the_model_splits_a_long_source_like_the_design_and_never_beats_its_longest_range():
    assert range_lengths(600) == [4, 8, 16, 32] + [60] * 8 + [28, 16, 8, 8]  # workers.chunks.plan_ranges
    assert sum(range_lengths(3600)) == 3600 and max(range_lengths(3600)) == 60
    model = CostModel(fixed=2.0, per_second=1.8, job=5.0)
    one = model.ready(600, 1)
    assert one == pytest.approx(5 + 16 * 2 + 1.8 * 600 + AUDIO_COST * 600)
    assert one / model.ready(600, 2) > 1.9  # the tapering tail deals out evenly to two workers
    assert model.ready(600, 64) == pytest.approx(5 + 2 + 1.8 * 60)  # the longest range is the floor


def test_the_fit_reads_range_records_and_falls_back_to_the_whole_time_without_them():
    records = [{"start": a, "end": a + n, "seconds": 1.0 + 2.0 * n} for a, n in ((0, 4), (4, 8), (12, 16), (28, 32))]
    fitted = CostModel.fit(records, 60, one_core_ready=130.0)
    assert (fitted.fixed, fitted.per_second) == (pytest.approx(1.0), pytest.approx(2.0))
    assert fitted.job == pytest.approx(130 - sum(r["seconds"] for r in records))
    assert CostModel.fit([], 60, one_core_ready=120.0) == CostModel(0.0, 2.0, 0.0)


@pytest.fixture(scope="module")
def tiny_hls(tmp_path_factory) -> Path:
    """A 3-second fMP4 HLS rendition with 1-second segments, as the pipeline writes them."""
    out = tmp_path_factory.mktemp("hls")
    subprocess.run(
        [ffmpeg_exe(Settings()), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=size=160x90:rate=30", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
         "-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
         "-hls_segment_filename", str(out / "seg_%05d.m4s"), str(out / "index.m3u8")],
        check=True,
    )  # fmt: skip
    return out


@pytest.mark.slow
def test_init_and_segments_decode_and_garbage_does_not(tiny_hls: Path, tmp_path: Path):
    init = (tiny_hls / "init.mp4").read_bytes()
    segments = sorted(tiny_hls.glob("seg_*.m4s"))
    assert decode_problem([init, *(s.read_bytes() for s in segments[:2])], tmp_path) == ""
    assert decode_problem([init, b"\0" * 4096, b"\1" * 4096], tmp_path) != ""
    assert count_frames([tiny_hls / "init.mp4", *segments]) == 90

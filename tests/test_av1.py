"""AV1 beside H.264 (issue 14): with the `av1` setting on, every H.264 rung gets an SVT-AV1 twin in the same
master, with CODECS a browser can test, so a device that decodes AV1 plays it and any other keeps H.264.

Planning and argvs are checked without ffmpeg; the rest encodes for real, tiny (480x270, a few seconds) because
SVT-AV1 is the slowest thing the workers run: a chunked encode whose ranges, encoded apart, join into one AV1
rendition per rung, and headless Chromium playing the AV1 rungs through hls.js, then the H.264 ones when the
browser says it cannot decode AV1, as an older device would.
"""

import math
import re
import uuid
from dataclasses import replace
from pathlib import Path

import m3u8
import pytest
from playwright.sync_api import Page

from core.encoding import VideoCodec
from core.hls import master_problems
from core.media_keys import INIT_NAME
from core.probe import SourceInfo
from core.progressive import PartView, master_for, published
from schemas.tables import PartKind, PartState
from tests.growing import serving
from tests.inprocess import local_app
from tests.media import ffmpeg
from tests.test_seams import assert_seamless, encode_apart, picture, tone
from tests.test_watch_page import Problems, new_page, wait_time
from workers.chunks import TimeRange
from workers.command import build_range_argv
from workers.job import run_until_idle
from workers.ladder import AV1_SUFFIX, MIN_KBPS, av1_crf, plan_ladder, with_av1
from workers.measure import av1_codec, codec_string

SOURCE = SourceInfo(demuxer="mov", duration=30.0, has_video=True, has_audio=True, width=1280, height=720, fps=30)


def twins_of(plan):
    h264 = [r for r in plan.renditions if r.codec == VideoCodec.h264]
    av1 = [r for r in plan.renditions if r.codec == VideoCodec.av1]
    return h264, av1


# ---- planning and argv (no ffmpeg) ------------------------------------------------------------------------------


def test_every_h264_rung_gets_an_av1_twin_of_the_same_picture_after_the_h264_ladder():
    plain = plan_ladder(SOURCE)
    plan = with_av1(plain, preset=8)
    h264, av1 = twins_of(plan)
    assert h264 == list(plain.renditions)
    assert list(plan.renditions) == h264 + av1  # H.264 first: a player that takes the first variant can play it
    assert [r.name for r in av1] == [r.name + AV1_SUFFIX for r in h264] == ["720p-av1", "480p-av1", "360p-av1",
                                                                           "240p-av1"]  # fmt: skip
    for h, a in zip(h264, av1, strict=True):
        assert (a.width, a.height, a.fps) == (h.width, h.height, h.fps)
        assert a.crf == av1_crf(plain.crf)
        assert (a.maxrate_kbps, a.bufsize_kbps) == (h.maxrate_kbps, h.bufsize_kbps)  # the same budget
    assert plan.svtav1_preset == 8
    assert with_av1(plan, preset=8) == plan  # applied again, nothing doubles


def test_twins_follow_the_rungs_as_finally_chosen():
    """Per-title may drop a rung and give another its own CRF: the twins are of what is left, at its quality."""
    plain = plan_ladder(SOURCE)
    top, *_, bottom = plain.renditions
    chosen = replace(plain, renditions=(replace(top, crf=25), bottom))
    h264, av1 = twins_of(with_av1(chosen, preset=10))
    assert [r.name for r in av1] == ["720p-av1", "240p-av1"]
    assert [r.crf for r in av1] == [av1_crf(25), av1_crf(plain.crf)]
    assert av1_crf(25) > av1_crf(plain.crf)  # a lower quality asked of H.264 is a lower one asked of AV1


def test_twins_take_the_measured_crf_and_a_cap_cut_by_av1s_byte_share():
    """With the per-title AV1 trial's match: each twin's CRF, and its cap its H.264 twin's times AV1's byte share
    at equal quality (never under the ladder's floor, never above the H.264 cap)."""
    plain = plan_ladder(SOURCE)
    h264, av1 = twins_of(with_av1(plain, preset=6, rate=lambda r: (41 - (r.height >= 720), 0.4)))
    for h, a in zip(h264, av1, strict=True):
        assert a.crf == (40 if h.height >= 720 else 41)
        assert a.maxrate_kbps == max(MIN_KBPS, math.ceil(h.maxrate_kbps * 0.4)) < h.maxrate_kbps
        assert a.bufsize_kbps == 2 * a.maxrate_kbps
    _, same = twins_of(with_av1(plain, preset=6, rate=lambda r: (41, 1.0)))
    assert [(a.maxrate_kbps, a.bufsize_kbps) for a in same] == [(h.maxrate_kbps, h.bufsize_kbps) for h in h264]


def test_a_picture_too_small_for_svtav1_stays_h264_only():
    tiny = replace(SOURCE, width=96, height=54)  # SVT-AV1 refuses a side under 64 pixels
    plan = with_av1(plan_ladder(tiny), preset=10)
    assert [(r.name, r.codec) for r in plan.renditions] == [("240p", VideoCodec.h264)]


def test_av1_crf_stays_on_svtav1_scale_and_follows_x264s():
    crfs = [av1_crf(c) for c in range(1, 52)]  # every CRF x264 takes
    assert all(1 <= c <= 63 for c in crfs)  # SVT-AV1 refuses anything else
    assert crfs == sorted(crfs) and crfs[0] < crfs[-1]


def test_av1_streams_get_svtav1_options_that_override_the_x264_ones(tmp_path):
    plan = with_av1(plan_ladder(SOURCE), preset=9)
    mid = TimeRange(1, 4.0, 12.0, 2, 4)
    argv = build_range_argv(plan, mid, tmp_path / "src.mp4", "mov", tmp_path / "out")
    n = len(plan.renditions) // 2

    def value(name: str) -> str | None:
        return argv[argv.index(name) + 1] if name in argv else None

    assert value("-c:v") == "libx264" and value("-preset") == "veryfast" and value("-profile:v") == "high"
    for i, r in enumerate(plan.renditions):
        if i < n:  # H.264: the shared options, the mid-stream rate buffer
            assert value(f"-c:v:{i}") is None and value(f"-preset:v:{i}") is None
            assert value(f"-rc_init_occupancy:v:{i}") is not None
            continue
        assert r.codec == VideoCodec.av1
        assert value(f"-c:v:{i}") == "libsvtav1"
        assert value(f"-preset:v:{i}") == "9"
        assert value(f"-crf:v:{i}") == str(r.crf)
        assert value(f"-profile:v:{i}") == "main"
        assert value(f"-maxrate:v:{i}") == f"{r.maxrate_kbps}k"  # capped CRF: libsvtav1 makes it SVT-AV1's mbr
        assert value(f"-rc_init_occupancy:v:{i}") is None  # x264's VBV only
        # ffmpeg applies every matching option in order, the last one winning: each override follows the global
        for shared, own in (("-c:v", f"-c:v:{i}"), ("-preset", f"-preset:v:{i}"), ("-crf", f"-crf:v:{i}"),
                            ("-profile:v", f"-profile:v:{i}")):  # fmt: skip
            assert argv.index(shared) < argv.index(own), (shared, own)
    # One keyframe grid for both codecs, one variant per rung.
    assert value("-force_key_frames") == "expr:gte(t,n_forced*2)"
    assert value("-var_stream_map") == " ".join(f"v:{i},name:{r.name}" for i, r in enumerate(plan.renditions))


def test_av1c_to_codec_string():
    # marker/version, profile 0 level 8 (4.0), tier M 8-bit 4:2:0, then no config OBUs
    assert av1_codec(bytes([0x81, 0x08, 0x0C, 0x00])) == "av01.0.08M.08"
    assert av1_codec(bytes([0x81, 0x2D, 0xCC, 0x00])) == "av01.1.13H.10"  # high profile, 5.1, high tier, 10-bit
    assert av1_codec(bytes([0x81, 0x53, 0x6C, 0x00])) == "av01.2.19M.12"  # professional, 12-bit
    with pytest.raises(ValueError):
        av1_codec(bytes([0x01, 0x64, 0x00, 0x1F]))  # an avcC, not an av1C


def test_growing_and_final_master_list_both_codecs_with_the_audio_group():
    """core.progressive.master_for (the API's growing master, the finisher's final one): both ladders, one audio
    group, the measured codec of each rung, and before the first range lands the planned one of its codec."""
    plan = {
        "renditions": [
            {"name": "270p", "width": 480, "height": 270, "frame_rate": 30.0, "maxrate_kbps": 800, "codec": "h264"},
            {"name": "270p-av1", "width": 480, "height": 270, "frame_rate": 30.0, "maxrate_kbps": 560,
             "codec": "av1"},
        ],
        "audio_kbps": 128,
    }  # fmt: skip
    before, _ = master_for(plan, {}, published([], 10.0))
    assert [p.stream_info.codecs for p in m3u8.loads(before).playlists] == ["avc1.640028,mp4a.40.2",
                                                                             "av01.0.08M.08,mp4a.40.2"]  # fmt: skip
    part = PartView(PartKind.video, 0, PartState.succeeded, 0.0, None, 0, uuid.uuid4(),
                    {"270p": [[2.0, 50_000]], "270p-av1": [[2.0, 30_000]]})  # fmt: skip
    measured = {"270p": "avc1.64001e", "270p-av1": "av01.0.01M.08"}
    text, rows = master_for(plan, measured, published([part], 2.0))
    assert not master_problems(text)
    master = m3u8.loads(text)
    assert [(p.uri, p.stream_info.codecs, p.stream_info.resolution, p.stream_info.audio) for p in master.playlists] == [
        ("270p/index.m3u8", "avc1.64001e,mp4a.40.2", (480, 270), "audio"),
        ("270p-av1/index.m3u8", "av01.0.01M.08,mp4a.40.2", (480, 270), "audio"),
    ]
    assert master.playlists[1].stream_info.bandwidth < master.playlists[0].stream_info.bandwidth
    assert [r.name for r in rows] == ["270p", "270p-av1", "audio"]
    assert master_problems(text.replace(",RESOLUTION=480x270", "", 2)) == [
        "270p/index.m3u8: no RESOLUTION",
        "270p-av1/index.m3u8: no RESOLUTION",
    ]


# ---- real encodes ------------------------------------------------------------------------------------------------


def raw_av1c(init: Path) -> bytes:
    """The av1C box's payload, read straight from the file's bytes (independent of PyAV)."""
    data = init.read_bytes()
    at = data.index(b"av1C") + 4
    return data[at : at + 4]


def test_chunked_av1_encode_stitches_into_one_rendition_per_rung(tmp_path):
    """Three ranges (0-2 s, 2-6 s, 6-8 s) encoded apart: for every rung of both codecs one init segment
    (byte-identical across ranges), a keyframe at every segment start, every source frame once, evenly spaced,
    segments numbered on without a gap; the AV1 rungs' codec string read from their init segment."""
    src = tmp_path / "src.mp4"
    ffmpeg(*picture(8.0), *tone(8.0), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(src))
    enc = encode_apart(src, tmp_path, av1=True)
    assert [(r.start, r.end) for r in enc.prepared.ranges] == [(0, 2), (2, 6), (6, None)]
    h264, av1 = twins_of(enc.prepared.plan)
    assert [r.name for r in av1] == ["360p-av1", "240p-av1"] and len(h264) == 2  # 480x270 and 426x240
    assert_seamless(enc, tmp_path, 8.0)
    for r in av1:
        init = enc.folders[0] / r.name / INIT_NAME
        codec, width, height = codec_string(init)
        assert codec == av1_codec(raw_av1c(init))
        assert re.fullmatch(r"av01\.0\.\d\dM\.08", codec), codec  # main profile, main tier, 8-bit
        assert (width, height) == (r.width, r.height)
        assert all(out.codecs[r.name] == codec for out in enc.ranges)
    for r in h264:
        assert enc.ranges[0].codecs[r.name].startswith("avc1.64")


CLIP_SECONDS = 6.0
NO_AV1 = """(() => {  // an older device: MediaSource says no to AV1, so hls.js drops those variants
  for (const name of ['MediaSource', 'ManagedMediaSource']) {
    const MS = window[name];
    if (!MS) continue;
    const supported = MS.isTypeSupported.bind(MS);
    MS.isTypeSupported = (type) => !/av01/i.test(type) && supported(type);
  }
})();"""
LEVEL_JS = """() => { const h = window.streamifyPlayer.hls, l = h.levels[h.currentLevel];
  return {codec: l.videoCodec, codecs: h.levels.map(x => x.videoCodec),
          loaded: window.streamifyPlayer.loadedLevels.map(i => h.levels[i].videoCodec),
          menu: window.streamifyPlayer.renditions.map(r => r.name), fatal: window.streamifyPlayer.fatal}; }"""


@pytest.fixture(scope="module")
def av1_site(tmp_path_factory):
    """An install with AV1 on and a ready video: uploaded through the API, encoded by the worker's own code in
    this process (two ranges, then the audio, the finisher and the storyboard), served over HTTP."""
    d = tmp_path_factory.mktemp("av1-site")
    src = d / "clip.mp4"
    ffmpeg(*picture(CLIP_SECONDS), *tone(CLIP_SECONDS), "-c:v", "libx264", "-preset", "veryfast",
           "-pix_fmt", "yuv420p", "-c:a", "aac", str(src))  # fmt: skip
    settings = {"av1": True, "first_range_seconds": 2, "range_seconds": 4, "per_title": False, "measure_vmaf": False}
    with local_app(d / "data", **settings) as install:
        token = install.user()
        with src.open("rb") as f:
            r = install.client.post("/api/v1/videos", files={"file": ("clip.mp4", f)}, data={"title": "AV1"},
                                    headers=install.as_user(token))  # fmt: skip
        assert r.status_code == 202, r.text
        video_id = r.json()["id"]
        run_until_idle(install.settings, install.app.state.stores)
        video = install.client.get(f"/api/v1/videos/{video_id}", headers=install.as_user(token)).json()
        assert video["status"] == "ready", video
        with serving(install.app) as url:
            yield install, url, video


def test_master_offers_both_ladders_with_their_codecs(av1_site):
    install, _, video = av1_site
    master = m3u8.loads(install.client.get(video["playback_url"]).text)
    variants = {p.uri.split("/")[0]: p.stream_info for p in master.playlists}
    assert set(variants) == {"360p", "240p", "360p-av1", "240p-av1"}
    for name, info in variants.items():
        video_codec, audio_codec = info.codecs.split(",")
        assert video_codec.startswith("av01.0." if name.endswith(AV1_SUFFIX) else "avc1.64"), (name, info.codecs)
        assert audio_codec == "mp4a.40.2" and info.audio == "audio"
        assert info.resolution == variants[name.removesuffix(AV1_SUFFIX)].resolution
    names = [r["name"] for r in video["renditions"]]
    assert set(names) >= set(variants)
    rows = {r["name"]: r for r in video["renditions"]}
    for name in ("360p", "240p"):  # the same picture for fewer bytes
        assert rows[name + AV1_SUFFIX]["bandwidth"] < rows[name]["bandwidth"]


def watch_level(page: Page, url: str, video_id: str) -> dict:
    page.goto(f"{url}/watch/{video_id}")
    page.wait_for_function("window.streamifyPlayer.levels > 0 && window.streamifyPlayer.hls.currentLevel >= 0",
                           timeout=30_000)  # fmt: skip
    wait_time(page, 2.5)  # past the first segment: it really decodes and plays
    return page.evaluate(LEVEL_JS)


def test_chromium_plays_the_av1_rungs(av1_site, browser, contexts):
    _, url, video = av1_site
    page = new_page(browser, contexts)
    problems = Problems(page)
    level = watch_level(page, url, video["id"])
    assert level["codec"].startswith("av01"), level
    assert level["loaded"] and all(c.startswith("av01") for c in level["loaded"]), level
    assert sorted(level["menu"]) == ["240p-av1", "360p-av1"], level  # the menu lists the codec that plays
    assert level["fatal"] is None and not problems.seen, (level, problems.seen)


def test_a_browser_without_av1_plays_the_h264_rungs(av1_site, browser, contexts):
    _, url, video = av1_site
    page = new_page(browser, contexts)
    page.add_init_script(NO_AV1)
    problems = Problems(page)
    level = watch_level(page, url, video["id"])
    assert all(c.startswith("avc1") for c in level["codecs"]), level  # hls.js kept only what it can decode
    assert level["codec"].startswith("avc1"), level
    assert sorted(level["menu"]) == ["240p", "360p"], level
    assert level["fatal"] is None and not problems.seen, (level, problems.seen)

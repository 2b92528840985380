"""Frame alignment of the VMAF measurement (workers.quality_part.measure_rung), with real ffmpeg and no services:
a near-lossless rung (CRF 1, under its bit-rate cap) scores close to 100, the same whether measured whole or
sampled in windows that start mid-range on a 29.97 fps grid, and the same comparison one frame off scores far
lower: the picture's noise changes every frame, so a misalignment could not hide.
"""

import dataclasses
from pathlib import Path

import m3u8
import pytest

from core.blobs import LocalBlobStore
from core.ffmpeg import ffmpeg_exe
from core.media_keys import INIT_NAME, MEDIA_PLAYLIST
from core.progressive import Published, Segment
from core.settings import Settings
from tests.media import ffmpeg
from workers.pipeline import prepare, run_ffmpeg, transcode
from workers.quality import Window, build_vmaf_argv, parse_vmaf_log
from workers.quality_part import Encoded, measure_rung

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """A 29.97 fps clip transcoded near-losslessly (CRF 1) in two ranges (0-4 s, 4-8 s), laid out as the store
    holds a published encode."""
    d = tmp_path_factory.mktemp("vmaf-align")
    src = d / "src.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30000/1001,noise=alls=6:allf=t", "-t", "8",
           "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", str(src))  # fmt: skip
    settings = Settings(data_dir=d / "data", x264_crf=1)
    blobs = d / "blobs"
    transcode(src, blobs / "enc", settings)
    pub = Published()
    for rung in ("360p", "240p"):
        playlist = m3u8.load(str(blobs / "enc" / rung / MEDIA_PLAYLIST))
        pub.renditions[rung] = [
            Segment(f"{rung}/{s.uri}", float(s.duration), (blobs / "enc" / rung / s.uri).stat().st_size)
            for s in playlist.segments
        ]
        pub.inits[rung] = f"{rung}/{INIT_NAME}"
    return src, settings, LocalBlobStore(blobs, "/media"), Encoded("enc/", pub)


def _measure(encoded, tmp_path: Path, **overrides: float) -> tuple[float, int]:
    src, settings, store, enc = encoded
    settings = settings.model_copy(update=overrides)
    prepared = prepare(src, settings)
    top = prepared.plan.renditions[0]
    score = measure_rung(top, prepared, enc, src, store, tmp_path, settings)
    return score.mean, score.frames


def test_a_near_lossless_rung_scores_about_100_whole_and_sampled(encoded, tmp_path):
    whole, frames = _measure(encoded, tmp_path, vmaf_full_seconds=60)
    assert whole > 92, whole  # CRF 1 under the rung's bit-rate cap: close to, not at, 100 on a noisy picture
    assert frames == round(8 * 30000 / 1001)
    # Sampled: 6 s from 2 s in, which a 29.97 fps grid cuts at the 4 s range start into two windows (one read
    # from a second before it, mid-range; one from the range start).
    sampled, frames = _measure(encoded, tmp_path, vmaf_full_seconds=0, vmaf_sample_seconds=6)
    assert sampled == pytest.approx(whole, abs=1.5), (sampled, whole)
    assert frames == pytest.approx(6 * 30000 / 1001, abs=2)


def test_one_frame_off_scores_far_lower(encoded, tmp_path):
    src, settings, store, enc = encoded
    prepared = prepare(src, settings)
    rung = prepared.plan.renditions[0]
    segments = enc.pub.renditions[rung.name]
    window = Window(0, 2, 0.0, sum(s.duration for s in segments[:2]), 0.0, 0.0)  # the first range: 0-4 s
    rung_file = tmp_path / "first.mp4"
    rung_file.write_bytes(b"".join(store.read_bytes(k) for k in [enc.root + enc.pub.inits[rung.name]] +
                                   [enc.root + s.uri for s in segments[:2]]))  # fmt: skip
    scores = {}
    for label, w in {"aligned": window, "off": dataclasses.replace(window, start=1 / float(rung.fps))}.items():
        log = tmp_path / f"{label}.json"
        argv = build_vmaf_argv(prepared.plan, rung, w, src, prepared.info.demuxer, rung_file, log, n_threads=2,
                               max_pixels=10**8, ffmpeg_exe=ffmpeg_exe(settings))  # fmt: skip
        run_ffmpeg(argv, w.length, tmp_path / f"{label}.log")
        scores[label] = parse_vmaf_log(log.read_text()).mean
    assert scores["aligned"] > 92, scores
    assert scores["off"] < scores["aligned"] - 10, scores

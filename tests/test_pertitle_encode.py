"""Per-title ladders on real encodes (real ffmpeg, small and short sources): a slide deck and a noisy picture of
the same size get the ladders they need, every rung is encoded at its own CRF, and a trial that fails leaves the
fixed ladder, a published video and a note on the job.
"""

import json
import re
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from core.encoding import VideoCodec
from core.settings import Settings
from schemas.tables import JobNote, JobState, NoteKind, Video, VideoStatus
from tests.conftest import upload, wait_finished
from tests.media import FFMPEG, ffmpeg
from tests.test_failure_kinds import Install
from workers.job import run_until_idle
from workers.ladder import AV1_SUFFIX, MIN_KBPS, LadderPlan, av1_crf
from workers.pertitle import AV1_MATCH_CRF_RANGE, AV1_TRIAL_CRFS, LadderMode, Trial, av1_match, av1_rates
from workers.pipeline import AV1_TRIAL_FAILED, FIXED_WITHOUT_TRIAL, TranscodeResult, plan_encode, prepare, transcode

SIZE = "854x480"  # three rungs in the fixed ladder: 480p, 360p, 240p
SECONDS = "5"
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "10", "-pix_fmt", "yuv420p", "-an"]


def slides(path: Path, size: str = SIZE) -> Path:
    """A screen recording of slides: a still test card that changes every 2 s."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate=0.5,fps=30", "-t", SECONDS, *X264, str(path))
    return path


def noise(path: Path, size: str = SIZE) -> Path:
    """High motion under heavy grain: every pixel changes every frame."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30,noise=alls=40:allf=t+u", "-t", SECONDS, *X264, str(path))
    return path


def rung_crfs(out: Path, plan: LadderPlan) -> dict[str, float]:
    """The CRF each rung was really encoded at: x264 writes its options into the first frame of every encode
    (one per range), e.g. "crf=26.0"."""
    found = {}
    for r in plan.renditions:
        first = (out / r.name / "init.mp4").read_bytes() + (out / r.name / "seg_00000.m4s").read_bytes()
        match = re.search(rb" crf=(\d+\.\d)", first)
        assert match, f"{r.name}: no x264 options in its first segment"
        found[r.name] = float(match.group(1))
    return found


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> dict[str, TranscodeResult]:
    d = tmp_path_factory.mktemp("pertitle")
    settings = Settings(data_dir=d / "data")
    return {
        name: transcode(make(d / f"{name}.mp4"), d / name, settings)
        for name, make in (("slides", slides), ("noise", noise))
    }


def test_slides_get_fewer_rungs_and_fewer_bits_than_noise(encoded):
    easy, hard = encoded["slides"], encoded["noise"]
    assert easy.ladder is not None and hard.ladder is not None
    assert easy.ladder.mode == hard.ladder.mode == LadderMode.per_title
    assert [r.name for r in hard.plan.renditions] == ["480p", "360p", "240p"]  # all the fixed ladder's rungs
    assert len(easy.plan.renditions) < len(hard.plan.renditions)
    assert easy.plan.renditions[0].name == "480p"
    assert any(not d.kept for d in easy.ladder.rungs)
    # Hard content keeps the fixed ladder's rate control; easy content gets a higher CRF and lower caps.
    fixed_crf = hard.plan.crf
    assert all(r.crf == fixed_crf for r in hard.plan.renditions)
    for r in easy.plan.renditions:
        twin = next(h for h in hard.plan.renditions if h.name == r.name)
        assert r.crf is not None and r.crf > fixed_crf
        assert r.maxrate_kbps < twin.maxrate_kbps
    # ...and what came out: each kept rung of the slides weighs less than the same rung of the noise.
    measured = {v.name: v.average_bandwidth for v in hard.variants}
    for v in easy.variants:
        if v.name != "audio":
            assert v.average_bandwidth < measured[v.name] / 4, (v.name, v.average_bandwidth, measured[v.name])


def test_every_rung_is_encoded_at_its_own_crf(encoded, tmp_path):
    for result, out in ((encoded["slides"], "slides"), (encoded["noise"], "noise")):
        folder = next(p.parent for p in result.files if p.name == "master.m3u8")
        assert folder.name == out
        expected = {r.name: float(r.crf if r.crf is not None else result.plan.crf) for r in result.plan.renditions}
        assert rung_crfs(folder, result.plan) == expected


def failing_trial_ffmpeg(tmp_path: Path) -> Path:
    """The product's ffmpeg, except that the per-title trial (the only run with -noaccurate_seek) fails as a
    broken decoder would: a fault no valid source causes on demand."""
    script = tmp_path / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" -noaccurate_seek "*) echo "Error while decoding stream #0:0: Invalid data" >&2; exit 1;; '
        "esac\n"
        f'exec "{FFMPEG}" "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_a_failed_trial_still_publishes_with_the_fixed_ladder_and_a_note(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", ffmpeg_path=str(failing_trial_ffmpeg(tmp_path)))
    # `streamify transcode`: the fixed ladder, and why.
    result = transcode(slides(tmp_path / "slides.mp4"), tmp_path / "out", settings)
    assert result.ladder is not None and result.ladder.mode == LadderMode.fixed
    assert [r.name for r in result.plan.renditions] == ["480p", "360p", "240p"]
    assert result.trial_failure and "Invalid data" in result.trial_failure
    # A job: the video is ready with the fixed ladder, the job says why in its plan and its notes.
    install = Install.create(settings)
    job = install.add_job("slides whose trial fails", tmp_path / "slides.mp4")
    run_until_idle(settings, install.stores)
    done = install.job(job.id)
    assert done.state == JobState.succeeded, done.error
    assert done.plan is not None and done.plan["trial"] is None
    ladder = done.plan["ladder"]
    assert ladder["mode"] == "fixed" and ladder["inputs"] is None
    assert [(r["name"], r["kept"], r["reason"]) for r in ladder["rungs"]] == [
        (name, True, FIXED_WITHOUT_TRIAL) for name in ("480p", "360p", "240p")
    ]
    with Session(install.engine) as s:
        video = s.get(Video, job.video_id)
        assert video is not None and video.status == VideoStatus.ready
        notes = s.exec(select(JobNote).where(col(JobNote.job_id) == job.id)).all()
    assert [n.kind for n in notes] == [NoteKind.trial_failed]
    assert "Invalid data" in notes[0].message


def test_the_stack_stores_the_decision_and_publishes_what_it_chose(stack, tmp_path):
    """Uploads on the real stack: the job's plan carries the trial and the decision with a reason per rung, and
    the published renditions are the kept rungs, the slides' lighter than the noise's."""
    with stack.client() as client:
        ids = {
            name: upload(client, make(tmp_path / f"{name}.mp4"), title=name).json()["id"]
            for name, make in (("slides", slides), ("noise", noise))
        }
        videos = {name: wait_finished(client, video_id) for name, video_id in ids.items()}
    plans = {
        name: stack.sql("SELECT plan FROM transcode_jobs WHERE video_id = %s", video_id)[0]["plan"]
        for name, video_id in ids.items()
    }
    ladders = {name: plan["ladder"] for name, plan in plans.items()}
    assert {ladder["mode"] for ladder in ladders.values()} == {"per_title"}
    kept = {name: [r["name"] for r in ladder["rungs"] if r["kept"]] for name, ladder in ladders.items()}
    assert kept["noise"] == ["480p", "360p", "240p"]
    assert len(kept["slides"]) < len(kept["noise"])
    for name, plan in plans.items():
        assert [r["name"] for r in ladders[name]["rungs"]] == ["480p", "360p", "240p"]  # every rung has its reason
        assert all(r["reason"] for r in ladders[name]["rungs"])
        assert ladders[name]["inputs"]["bits_per_pixel"] > 0
        assert [s["width"] for s in plan["trial"]["sizes"]] == [426, 854]
        assert [r["name"] for r in videos[name]["renditions"]] == kept[name]
    assert ladders["slides"]["inputs"]["bits_per_pixel"] < ladders["noise"]["inputs"]["bits_per_pixel"] / 10
    caps = {name: {r["name"]: r["maxrate_kbps"] for r in ladder["rungs"]} for name, ladder in ladders.items()}
    noise_rate = {r["name"]: r["average_bandwidth"] for r in videos["noise"]["renditions"]}
    for r in videos["slides"]["renditions"]:
        assert caps["slides"][r["name"]] < caps["noise"][r["name"]]
        assert r["average_bandwidth"] < noise_rate[r["name"]] / 4, (r, noise_rate)


def failing_av1_trial_ffmpeg(tmp_path: Path) -> Path:
    """The product's ffmpeg, except that SVT-AV1 fails on the AV1 trial's pictures (the only run that reads the
    trial's lossless reference with libsvtav1): the encoder crashing is a fault no valid source causes."""
    script = tmp_path / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        'case " $* " in *trial_reference.nut*libsvtav1*) echo "Svt[error]: out of memory" >&2; exit 1;; esac\n'
        f'exec "{FFMPEG}" "$@"\n'
    )
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """720p: larger than the trial's pictures (480p), so the top rung is matched at its own size too."""
    d = tmp_path_factory.mktemp("av1-trial")
    return {"slides": slides(d / "slides.mp4", "1280x720"), "noise": noise(d / "noise.mp4", "1280x720")}


def test_with_av1_the_trial_measures_both_codecs_and_the_av1_rungs_follow_it(sources, tmp_path):
    """AV1 on: the trial scores x264 (as per-title encodes the rungs) and SVT-AV1 at two CRFs against the same
    pictures; the AV1 rungs get the CRF where AV1 scores what x264 does, and caps cut by AV1's byte share there."""
    settings = Settings(data_dir=tmp_path / "data", av1=True)
    matches = {}
    for name, src in sources.items():
        prepared = prepare(src, settings)
        assert prepared.trial_failure is None
        trial = prepared.trial
        assert trial is not None and trial.av1 is not None
        low, high = trial.av1.points
        assert (low.crf, high.crf) == AV1_TRIAL_CRFS
        assert 0 < high.bytes < low.bytes and 0 < high.vmaf <= 100 and 0 < low.vmaf <= 100  # a higher CRF: smaller
        if name == "noise":  # ...and worse where every pixel moves (a still test card barely changes)
            assert high.vmaf < low.vmaf - 1
        assert 0 < trial.av1.h264_vmaf <= 100 and trial.av1.h264_bytes > 0
        matches[name] = av1_match(trial.av1)
        # The top rung (720p) is larger than the trial's pictures: measured again at its own size.
        assert (trial.av1.width, trial.av1.height) == (854, 480)
        assert trial.av1_top is not None and (trial.av1_top.width, trial.av1_top.height) == (1280, 720)
        assert [p.crf for p in trial.av1_top.points] == list(AV1_TRIAL_CRFS)
        rate = av1_rates(trial)
        h264 = {r.name: r for r in prepared.plan.renditions if r.codec == VideoCodec.h264}
        twins = [r for r in prepared.plan.renditions if r.codec == VideoCodec.av1]
        assert [t.name for t in twins] == [n + AV1_SUFFIX for n in h264]
        assert twins[0].crf == av1_match(trial.av1_top).crf
        for t in twins:
            twin = h264[t.name.removesuffix(AV1_SUFFIX)]
            assert t.crf == rate(twin)[0]
            assert MIN_KBPS <= t.maxrate_kbps <= twin.maxrate_kbps
        # The decision and its inputs are stored with the trial (the job's plan): parts rebuild the same plan.
        again = plan_encode(prepared.info, settings, Trial.from_json(json.loads(json.dumps(trial.to_json()))))
        assert again.plan == prepared.plan
    # A still picture keeps its detail in AV1 at a far higher CRF than noise does: the top of the trusted range.
    assert matches["slides"].crf == AV1_MATCH_CRF_RANGE[1] > matches["noise"].crf


def test_a_failed_av1_trial_keeps_the_per_title_ladder_and_maps_the_av1_crf(sources, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", av1=True, ffmpeg_path=str(failing_av1_trial_ffmpeg(tmp_path)))
    prepared = prepare(sources["noise"], settings)
    assert prepared.trial is not None and prepared.trial.av1 is None
    assert prepared.ladder is not None and prepared.ladder.mode == LadderMode.per_title  # H.264 as without AV1
    assert prepared.trial_failure == AV1_TRIAL_FAILED
    for r in prepared.plan.renditions:
        if r.codec == VideoCodec.av1:
            twin = next(h for h in prepared.plan.renditions if h.name + AV1_SUFFIX == r.name)
            assert r.crf == av1_crf(twin.crf if twin.crf is not None else prepared.plan.crf)
            assert r.maxrate_kbps == twin.maxrate_kbps

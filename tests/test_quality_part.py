"""The quality part on an embedded install (SQLite, local blobs), run by the worker's own code in this process:
queued with `ready` only when measuring, claimed after the storyboard, and when it cannot measure (the source
gone from the store after `ready`) the video stays ready, the scores stay null and the job gets a note.
"""

import uuid
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from core.accounts import create_user
from core.blobs import make_stores
from core.db import get_engine, migrate
from core.media_keys import source_key
from core.settings import Settings
from schemas.tables import JobNote, JobPart, PartKind, Rendition, TranscodeJob, Video, VideoStatus
from tests.media import make_clip
from workers.job import run_next, run_until_idle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("qp") / "clip.mp4", size="320x180", seconds=5, channels=2)


class Site:
    """An embedded install with one queued upload of `clip`."""

    def __init__(self, root: Path, clip: Path, **settings: object) -> None:
        self.settings = Settings(data_dir=root, **settings)  # type: ignore[arg-type]  # Settings fields
        root.mkdir()
        migrate(self.settings)
        self.engine = get_engine(self.settings)
        self.stores = make_stores(self.settings)
        with Session(self.engine) as s:
            owner = create_user(s, f"{uuid.uuid4().hex[:8]}@example.test", "correct horse battery")
            video = Video(owner_id=owner.id, title="clip", source_key="", source_size=1, source_format="mp4")
            s.add(video)
            s.flush()
            video.source_key = source_key(video.id)
            self.stores.sources.put_file(video.source_key, clip)
            job = TranscodeJob(video_id=video.id, owner_id=owner.id)
            s.add(job)
            s.commit()
            self.video_id, self.job_id, self.source = video.id, job.id, video.source_key

    def rows(self, model, *where):
        with Session(self.engine) as s:
            return list(s.exec(select(model).where(*where)))

    def status(self) -> str:
        return self.rows(Video, col(Video.id) == self.video_id)[0].status

    def part(self, kind: PartKind) -> list[JobPart]:
        return self.rows(JobPart, col(JobPart.job_id) == self.job_id, col(JobPart.kind) == kind)

    def rungs(self) -> list[Rendition]:
        return self.rows(Rendition, col(Rendition.video_id) == self.video_id, col(Rendition.width).is_not(None))

    def notes(self) -> list[JobNote]:
        return self.rows(JobNote, col(JobNote.job_id) == self.job_id)


def test_the_quality_part_comes_after_ready_and_the_storyboard_and_scores_every_rung(tmp_path, clip):
    site = Site(tmp_path / "on", clip)
    run_until_idle(site.settings, site.stores)
    assert site.status() == VideoStatus.ready
    (storyboard,) = site.part(PartKind.storyboard)
    (quality,) = site.part(PartKind.quality)
    assert storyboard.state == quality.state == "succeeded"
    assert quality.started_at >= storyboard.finished_at  # claimed after it
    rungs = site.rungs()
    assert rungs and all(r.vmaf is not None and 30 < r.vmaf <= 100 for r in rungs), [(r.name, r.vmaf) for r in rungs]
    assert all(r.vmaf_seconds == pytest.approx(5.0, abs=0.1) for r in rungs)
    assert site.notes() == []


def test_with_measuring_off_there_is_no_quality_part(tmp_path, clip):
    site = Site(tmp_path / "off", clip, measure_vmaf=False)
    run_until_idle(site.settings, site.stores)
    assert site.status() == VideoStatus.ready
    assert site.part(PartKind.quality) == []
    assert all(r.vmaf is None and r.vmaf_seconds is None for r in site.rungs())


def test_a_source_gone_after_ready_leaves_the_video_ready_with_a_note_and_no_score(tmp_path, clip):
    site = Site(tmp_path / "gone", clip)
    while site.status() != VideoStatus.ready:  # the encode's parts, one at a time, as a worker takes them
        assert run_next(site.settings, site.stores) != "idle"
    assert site.part(PartKind.quality)[0].state == "queued"
    site.stores.sources.delete_prefix(site.source)  # what the measurement needs, gone before it runs
    run_until_idle(site.settings, site.stores)
    assert site.status() == VideoStatus.ready
    (quality,) = site.part(PartKind.quality)
    assert quality.state == "failed" and quality.lease is not None  # ended, not stuck, not retried
    assert all(r.vmaf is None and r.vmaf_seconds is None for r in site.rungs())
    (note,) = site.notes()
    assert note.kind == "vmaf_failed", note.kind
    assert note.message == f"VMAF not measured for every rung: {site.source} is missing from the store", note.message

"""A failed job's kind is set by the code that failed it, stored with the job, and is what /metrics counts and
the dashboard shows: real jobs on an embedded install (SQLite, local blobs), run by the worker's own code."""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, update
from sqlmodel import Session

from api.metrics import exposition
from api.queue_view import snapshot
from core.accounts import create_user
from core.blobs import Stores, make_stores
from core.db import get_engine, migrate
from core.jobqueue import MAX_ATTEMPTS, STALE_AFTER, reap_stale, requeue
from core.media_keys import source_key
from core.settings import Settings
from schemas.tables import FailureKind, JobState, TranscodeJob, Video, utcnow
from tests.media import make_clip
from workers.job import run_until_idle


@dataclass
class Install:
    settings: Settings
    engine: Engine
    stores: Stores
    owner_id: uuid.UUID

    def add_job(self, title: str, source: Path | None) -> TranscodeJob:
        """A queued upload, as ingest leaves it; `source` None: its blob went missing from the store."""
        with Session(self.engine) as s:
            video = Video(owner_id=self.owner_id, title=title, source_key="", source_size=1, source_format="mp4")
            s.add(video)
            s.flush()
            video.source_key = source_key(video.id)
            if source is not None:
                self.stores.sources.put_file(video.source_key, source)
            job = TranscodeJob(video_id=video.id, owner_id=self.owner_id)
            s.add(job)
            s.commit()
            s.refresh(job)
            return job

    def job(self, job_id: uuid.UUID) -> TranscodeJob:
        with Session(self.engine) as s:
            return s.get(TranscodeJob, job_id)

    def failures_scraped(self) -> dict[str, float]:
        with Session(self.engine) as s:
            body = exposition(s)[0].decode()
        family = next(f for f in text_string_to_metric_families(body) if f.name == "streamify_job_failures")
        return {sample.labels["reason"]: sample.value for sample in family.samples}

    @classmethod
    def create(cls, settings: Settings) -> "Install":
        """An embedded install under settings.data_dir, with one creator."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate(settings)
        engine = get_engine(settings)
        with Session(engine) as s:
            owner_id = create_user(s, "creator@example.test", "correct horse battery").id
        return cls(settings, engine, make_stores(settings), owner_id)


@pytest.fixture
def install(tmp_path) -> Install:
    return Install.create(Settings(data_dir=tmp_path / "data"))


def test_each_failure_is_stored_with_its_kind_and_counted_by_it(install, tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", size="640x360", seconds=8, channels=2, extra=("-movflags", "+faststart"))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.4)])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all, whatever its name says\n" * 50)
    expected = {
        install.add_job("cut", cut).id: FailureKind.corrupt_source,  # the encode comes out short
        install.add_job("text", text).id: FailureKind.refused_format,  # the worker's probe refuses it
        install.add_job("vanished", None).id: FailureKind.internal,  # the store has no such blob
    }
    run_until_idle(install.settings, install.stores)  # plans each job, then runs its parts (a range twice)
    assert [install.job(job_id).state for job_id in expected] == [JobState.failed] * 3
    with Session(install.engine) as s:
        jobs = {job_id: s.get(TranscodeJob, job_id) for job_id in expected}
        assert {job_id: job.failure_kind for job_id, job in jobs.items()} == expected
        assert all(job.error for job in jobs.values())  # the words stay, for people

        # The dashboard's failure list carries the kind next to the words.
        shown = {job.id: job.failure_kind for job in snapshot(s).failures}
    assert shown == expected
    assert install.failures_scraped() == {"corrupt_source": 1, "refused_format": 1, "internal": 1}

    # An operator retries the corrupt one: back in line, it is no failure any more.
    retried = next(job_id for job_id, kind in expected.items() if kind == FailureKind.corrupt_source)
    with Session(install.engine) as s:
        requeue(s, s.get(TranscodeJob, retried))
        s.commit()
    assert (install.job(retried).state, install.job(retried).failure_kind) == (JobState.queued, None)
    assert install.failures_scraped() == {"refused_format": 1, "internal": 1}


def test_a_job_whose_workers_keep_dying_fails_as_worker_lost(install):
    job = install.add_job("unlucky", None)
    long_ago = utcnow() - STALE_AFTER - timedelta(seconds=1)
    with Session(install.engine) as s:  # running on a worker that died, MAX_ATTEMPTS times over
        s.execute(
            update(TranscodeJob)
            .where(TranscodeJob.id == job.id)
            .values(state=JobState.running, attempts=MAX_ATTEMPTS, worker="gone:1", heartbeat_at=long_ago)
        )
        s.commit()
    assert reap_stale(install.engine) == []  # not re-queued: given up
    failed = install.job(job.id)
    assert (failed.state, failed.failure_kind) == (JobState.failed, FailureKind.worker_lost)
    assert install.failures_scraped() == {"worker_lost": 1}

"""A part whose output is on record keeps its files, whatever fails after that.

Seen in the load suite (docs/load.md): a range recorded its segments, then met a storage outage before it
returned; the attempt's cleanup removed its own files, and the video went ready with playlists naming a segment
the store no longer had (404 for every viewer, for ever). The fault (a transient error in the moment between
the record and the end of the attempt) cannot be timed for real, so it is injected there: the first
`finish_if_complete` call raises what an unreachable blob store raises.
"""

from azure.core.exceptions import ServiceRequestError
from sqlmodel import Session, select

import workers.parts
from schemas.tables import JobState, Rendition, Video, VideoStatus
from tests.media import make_clip
from tests.test_failure_kinds import install  # noqa: F401 - the embedded install with one creator
from workers.job import run_until_idle
from workers.parts import _uris  # the playlist reader finishing a job uses: the names it keeps


def test_an_attempt_failing_after_its_record_keeps_the_files_its_playlists_name(install, tmp_path, monkeypatch):  # noqa: F811
    clip = make_clip(tmp_path / "two-ranges.mp4", size="640x360", seconds=10, channels=2)
    job = install.add_job("recorded then unlucky", clip)
    real = workers.parts.finish_if_complete
    calls = []

    def unlucky(*args, **kwargs):
        calls.append(args[1].part_id)
        if len(calls) == 1:  # the first part to finish: recorded, then the store is gone
            raise ServiceRequestError("the blob store is unreachable")
        return real(*args, **kwargs)

    monkeypatch.setattr(workers.parts, "finish_if_complete", unlucky)
    run_until_idle(install.settings, install.stores)

    assert len(calls) >= 3, calls  # two ranges and the audio at least: the unlucky one was not the last
    assert install.job(job.id).state == JobState.succeeded
    with Session(install.engine) as s:
        video = s.get(Video, job.video_id)
        assert video is not None and video.status == VideoStatus.ready and video.media_root
        renditions = s.exec(select(Rendition).where(Rendition.video_id == job.video_id)).all()
    assert renditions
    missing = [
        f"{r.name}/{name}"
        for r in renditions
        for name in _uris(r.playlist or "")
        if not install.stores.media.exists(f"{video.media_root}{r.name}/{name}")
    ]
    assert missing == []
    assert all(_uris(r.playlist or "") for r in renditions)

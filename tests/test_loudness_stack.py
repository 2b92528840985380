"""Loudness on the real stack (PostgreSQL, Redis, Azurite, a worker process): the audio part measures the upload,
records what it measured and did on the job, and the audio players fetch is at the target."""

from tests.conftest import upload, wait_status
from tests.hls_checks import fetch_ladder
from tests.loudness import ebur128, joined, make_at_level


def test_a_quiet_upload_plays_at_the_target_and_its_job_says_why(stack, tmp_path):
    src = make_at_level(tmp_path / "quiet.mkv", -35.0, video=True)
    source = ebur128(src)
    with stack.client() as client:
        video = wait_status(client, upload(client, src, title="quiet").json()["id"])
        assert video["status"] == "ready", video["error"]
        _, variants = fetch_ladder(client, stack.url, video["playback_url"])
    audio = variants[0].audio
    assert audio is not None and all(v.audio is not None and v.audio.uri == audio.uri for v in variants)

    out = ebur128(joined(audio.init, [s.data for s in audio.segments], tmp_path / "published.mp4"))
    assert abs(out.integrated - -16.0) <= 1.0, out
    assert out.true_peak is not None and out.true_peak <= -1.0, out

    [job] = stack.sql("SELECT id, loudness FROM transcode_jobs WHERE video_id = %s", video["id"])
    loudness = job["loudness"]
    assert abs(loudness["input_i"] - source.integrated) <= 0.3, loudness
    assert (loudness["target_i"], loudness["target_tp"], loudness["silent"]) == (-16.0, -1.0, False)
    assert abs(loudness["gain_db"] - (-16.0 - loudness["input_i"])) <= 0.01
    assert stack.sql("SELECT kind FROM job_notes WHERE job_id = %s", job["id"]) == []

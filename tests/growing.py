"""A video that grows while a browser watches, built for real without workers (their range encoder is not
needed): real fMP4 ranges made by ffmpeg with the seamless-range recipe (docs: issue 13's shared design),
stored under the names core.progressive gives them, and the job_parts rows a chunked encode would write.

The test steps the encode by hand: `start()` publishes the first range (the video turns playable),
`publish(i)` lands range i, `finish()` makes the video ready with the final playlists exactly as
workers.parts does when its last part lands. An in-process install serves it over real HTTP (`serving`).
"""

import hashlib
import re
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from core.accounts import create_user, mint_token
from core.blobs import Stores
from core.media_keys import POSTER_NAME, encode_prefix
from core.parts import Generation, parts_of
from core.progressive import AUDIO_RENDITION, PartView, attempt_tag, init_file, published, segment_file
from schemas.tables import (
    JobPart,
    JobState,
    PartKind,
    PartState,
    TokenKind,
    TranscodeJob,
    Video,
    VideoStatus,
    utcnow,
)
from tests.conftest import free_port, wait_for
from tests.inprocess import LocalApp
from tests.media import ffmpeg

SEGMENT = 2  # seconds per segment, as gop_seconds
RUNGS = (("240p", 426, 240, 400), ("144p", 256, 144, 200))  # name, width, height, maxrate kb/s
AUDIO_KBPS = 64
EXTINF = re.compile(r"#EXTINF:([\d.]+),\s*\n(\S+)")


@dataclass(frozen=True)
class Range:
    index: int
    start: float
    end: float | None  # None: to the end of the source
    first_segment: int


@dataclass
class Encoded:
    """One rendition of one range (or the whole audio): its folder and [(sequence, duration, file)]."""

    folder: Path
    segments: list[tuple[int, float, Path]]


def plan_ranges(duration: float, lengths: tuple[float, ...]) -> list[Range]:
    out, start, seq = [], 0.0, 0
    for i, length in enumerate(lengths):
        last = start + length >= duration
        out.append(Range(i, start, None if last else start + length, seq))
        seq += round(length / SEGMENT)
        start += length
        if last:
            break
    return out


def _segments(folder: Path) -> list[tuple[int, float, Path]]:
    """(sequence, duration, file) from ffmpeg's own playlist of the folder."""
    text = (folder / "index.m3u8").read_text()
    out = []
    for duration, name in EXTINF.findall(text):
        seq = int(re.search(r"(\d+)\.m4s$", name).group(1))  # type: ignore[union-attr]  # ffmpeg's own names
        out.append((seq, float(duration), folder / name))
    return out


def encode_range(src: Path, rng: Range, rung: tuple[str, int, int, int], out: Path) -> Encoded:
    """One rung of one range with absolute timestamps and global sequence numbers (the recipe in COMMON.md):
    the ranges concatenate into one seamless rendition with range 0's init segment."""
    name, width, height, maxrate = rung
    folder = out / f"r{rng.index}" / name
    folder.mkdir(parents=True)
    length = ["-t", str(rng.end - rng.start)] if rng.end is not None else []
    ffmpeg(
        "-ss", str(rng.start), *length, "-i", str(src), "-an",
        "-vf", f"fps=30,scale={width}:{height}", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-b:v", f"{maxrate // 2}k", "-maxrate", f"{maxrate}k", "-bufsize", f"{maxrate * 2}k",
        "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT})", "-g", str(30 * SEGMENT), "-sc_threshold", "0",
        "-output_ts_offset", str(rng.start), "-avoid_negative_ts", "disabled",
        "-f", "hls", "-hls_time", str(SEGMENT), "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
        "-hls_segment_options", "movflags=+frag_discont", "-hls_flags", "independent_segments",
        "-start_number", str(rng.first_segment), "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", str(folder / "seg_%05d.m4s"), str(folder / "index.m3u8"),
    )  # fmt: skip
    return Encoded(folder, _segments(folder))


def encode_audio(src: Path, out: Path) -> Encoded:
    """The whole source's audio as its own rendition, as the audio part makes it."""
    folder = out / AUDIO_RENDITION
    folder.mkdir(parents=True)
    ffmpeg(
        "-i", str(src), "-vn", "-c:a", "aac", "-ac", "2", "-b:a", f"{AUDIO_KBPS}k",
        "-af", "aresample=async=1:first_pts=0",
        "-f", "hls", "-hls_time", str(SEGMENT), "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
        "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", str(folder / "seg_%05d.m4s"),
        str(folder / "index.m3u8"),
    )  # fmt: skip
    return Encoded(folder, _segments(folder))


def avc_codec(init: Path) -> str:
    """The RFC 6381 string of an H.264 init segment, from its avcC box (profile, constraints, level)."""
    data = init.read_bytes()
    at = data.index(b"avcC") + 4
    return f"avc1.{data[at + 1]:02x}{data[at + 2]:02x}{data[at + 3]:02x}"


@dataclass
class Media:
    """Every range of every rung and the audio, encoded once per test module."""

    duration: float
    ranges: list[Range]
    video: dict[tuple[int, str], Encoded]  # (range, rung) -> its files
    audio: Encoded
    poster: Path  # range 0 makes it


def make_media(src: Path, duration: float, out: Path, lengths: tuple[float, ...] = (4, 4, 8)) -> Media:
    ranges = plan_ranges(duration, lengths)
    video = {(r.index, rung[0]): encode_range(src, r, rung, out) for r in ranges for rung in RUNGS}
    poster = out / POSTER_NAME
    ffmpeg("-ss", "1", "-i", str(src), "-frames:v", "1", "-vf", "scale=426:240", str(poster))
    return Media(duration, ranges, video, encode_audio(src, out), poster)


def plan_summary(media: Media) -> dict:
    """What workers.job.plan_summary writes on the job."""
    return {
        "renditions": [
            {"name": n, "width": w, "height": h, "frame_rate": 30.0, "maxrate_kbps": kbps} for n, w, h, kbps in RUNGS
        ],
        "audio_kbps": AUDIO_KBPS,
        "target_duration": SEGMENT,
        "ranges": [[r.start, r.end] for r in media.ranges],
        "storyboard": False,
    }


@dataclass
class GrowingVideo:
    """One uploaded video whose chunked encode the test moves on by hand."""

    engine: Engine
    stores: Stores
    media: Media
    video_id: uuid.UUID
    job_id: uuid.UUID
    generation: uuid.UUID = field(default_factory=uuid.uuid4)
    audio_lease: uuid.UUID = field(default_factory=uuid.uuid4)
    audio_published: int = 0

    @property
    def root(self) -> str:
        return encode_prefix(self.video_id, self.generation)

    def plan(self) -> None:
        """What the planning attempt records: the job running in its generation, its parts queued."""
        now = utcnow()
        with Session(self.engine) as s:
            s.execute(
                update(TranscodeJob)
                .where(col(TranscodeJob.id) == self.job_id)
                .values(state=JobState.running, lease=self.generation, worker="test-host:1", attempts=1,
                        started_at=now, heartbeat_at=now, planned_at=now, plan=plan_summary(self.media),
                        plan_digest="0" * 64)
            )  # fmt: skip
            for r in self.media.ranges:
                s.add(
                    JobPart(job_id=self.job_id, video_id=self.video_id, generation=self.generation,
                            kind=PartKind.video, index=r.index, start_seconds=r.start, end_seconds=r.end,
                            first_segment=r.first_segment, segment_seconds=SEGMENT)
                )  # fmt: skip
            s.add(
                JobPart(job_id=self.job_id, video_id=self.video_id, generation=self.generation, kind=PartKind.audio,
                        segment_seconds=SEGMENT, state=PartState.running, lease=self.audio_lease,
                        worker="test-host:2", started_at=now, heartbeat_at=now)
            )  # fmt: skip
            s.execute(
                update(Video)
                .where(col(Video.id) == self.video_id)
                .values(status=VideoStatus.processing, progress=0.0, duration=self.media.duration)
            )
            s.commit()

    def publish(self, index: int) -> None:
        """Range `index` lands (every rung's files, then its row), with the audio up to its end."""
        rng = self.media.ranges[index]
        lease = uuid.uuid4()
        tag = attempt_tag(lease)
        segments: dict[str, list[list[float]]] = {}
        codecs: dict[str, str] = {}
        digests: dict[str, str] = {}
        for name, *_ in RUNGS:
            encoded = self.media.video[(index, name)]
            init = encoded.folder / "init.mp4"
            for seq, _, path in encoded.segments:
                self.stores.media.put_file(f"{self.root}{name}/{segment_file(tag, seq)}", path)
            if index == 0:
                self.stores.media.put_file(f"{self.root}{name}/{init_file(tag)}", init)
                self.stores.media.put_file(self.root + POSTER_NAME, self.media.poster)
            segments[name] = [[d, p.stat().st_size] for _, d, p in encoded.segments]
            codecs[name] = avc_codec(init)
            digests[name] = hashlib.sha256(init.read_bytes()).hexdigest()
        end = rng.end if rng.end is not None else self.media.duration
        self._publish_audio(lambda seq, start: start < end)
        with Session(self.engine) as s:
            s.execute(
                update(JobPart)
                .where(col(JobPart.job_id) == self.job_id, col(JobPart.kind) == PartKind.video,
                       col(JobPart.index) == index)
                .values(state=PartState.succeeded, lease=lease, worker="test-host:3", progress=1.0,
                        segments=segments, codecs=codecs, init_digests=digests, encode_seconds=1.0,
                        started_at=utcnow(), finished_at=utcnow())
            )  # fmt: skip
            self._update_edge(s)
            s.commit()

    def _publish_audio(self, wanted) -> None:
        """Audio segments out one by one (the audio part's on_segment), up to what `wanted(seq, start)` allows."""
        tag = attempt_tag(self.audio_lease)
        folder = self.media.audio.folder
        start = sum(d for _, d, _ in self.media.audio.segments[: self.audio_published])
        for seq, duration, path in self.media.audio.segments[self.audio_published :]:
            if not wanted(seq, start):
                break
            if seq == 0:
                self.stores.media.put_file(f"{self.root}{AUDIO_RENDITION}/{init_file(tag)}", folder / "init.mp4")
            self.stores.media.put_file(f"{self.root}{AUDIO_RENDITION}/{segment_file(tag, seq)}", path)
            self.audio_published += 1
            start += duration
        rows = [[d, p.stat().st_size] for _, d, p in self.media.audio.segments[: self.audio_published]]
        with Session(self.engine) as s:
            s.execute(
                update(JobPart)
                .where(col(JobPart.job_id) == self.job_id, col(JobPart.kind) == PartKind.audio)
                .values(segments={AUDIO_RENDITION: rows}, heartbeat_at=utcnow())
            )
            s.commit()

    def _views(self, s: Session) -> list[PartView]:
        return [PartView.of(p) for p in parts_of(s, self.job_id, self.generation)]

    def _update_edge(self, s: Session) -> None:
        """workers.parts._update_edge: the playable seconds, and the first time the video became playable."""
        video = s.get(Video, self.video_id)
        assert video is not None
        pub = published(self._views(s), self.media.duration)
        if not pub.playable(video.has_video, video.has_audio):
            return
        done = sum(1 for p in self._views(s) if p.kind == PartKind.video and p.state == PartState.succeeded)
        s.execute(
            update(Video)
            .where(col(Video.id) == self.video_id)
            .values(playable_seconds=round(pub.seconds(video.has_video, video.has_audio), 3),
                    progress=round(done / len(self.media.ranges), 4))
        )  # fmt: skip
        s.execute(
            update(TranscodeJob)
            .where(col(TranscodeJob.id) == self.job_id)
            .values(progress=round(done / len(self.media.ranges), 4), heartbeat_at=utcnow())
        )
        s.execute(
            update(TranscodeJob)
            .where(col(TranscodeJob.id) == self.job_id, col(TranscodeJob.first_playable_at).is_(None))
            .values(first_playable_at=utcnow())
        )

    def finish(self) -> None:
        """The last parts land: the remaining ranges, then the whole audio; the worker's own finishing step
        (workers.parts.finish_if_complete) then writes the final playlists and makes the video ready."""
        from workers.parts import finish_if_complete  # noqa: PLC0415 (the worker's code, run by the test)

        with Session(self.engine) as s:
            pending = [p.index for p in parts_of(s, self.job_id, self.generation)
                       if p.kind == PartKind.video and p.state != PartState.succeeded]  # fmt: skip
        for index in sorted(pending):
            self.publish(index)
        self._publish_audio(lambda seq, start: True)
        with Session(self.engine) as s:
            s.execute(
                update(JobPart)
                .where(col(JobPart.job_id) == self.job_id, col(JobPart.kind) == PartKind.audio)
                .values(state=PartState.succeeded, progress=1.0, codecs={AUDIO_RENDITION: "mp4a.40.2"},
                        finished_at=utcnow())
            )  # fmt: skip
            s.commit()
        done = finish_if_complete(
            self.engine, Generation(self.job_id, self.video_id, self.generation), self.stores, lambda _: None
        )
        assert done, "the video did not finish"


PASSWORD = "correct horse battery"  # as tests.conftest.make_user gives every account


def creator(install: LocalApp, *, operator: bool = False) -> tuple[str, str]:
    """An account with a password (to sign a browser in) and an API token."""
    email = f"grow-{secrets.token_hex(4)}@example.test"
    with Session(install.app.state.engine) as session:
        user = create_user(session, email, PASSWORD, is_operator=operator)
        token, _ = mint_token(session, user, TokenKind.api, name="tests")
    return email, token


def uploaded(install: LocalApp, media: Media, token: str, title: str, source: Path) -> GrowingVideo:
    """A real upload (its source stored, its job queued), then planned into parts as a worker would."""
    with source.open("rb") as f:
        r = install.client.post(
            "/api/v1/videos", files={"file": (source.name, f)}, data={"title": title}, headers=install.as_user(token)
        )
    assert r.status_code == 202, r.text
    video_id = uuid.UUID(r.json()["id"])
    engine = install.app.state.engine
    with Session(engine) as s:
        job = s.exec(select(TranscodeJob).where(TranscodeJob.video_id == video_id)).one()
    growing = GrowingVideo(engine, install.app.state.stores, media, video_id, job.id)
    growing.plan()
    return growing


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The in-process app over real HTTP for a browser; its lifespan already ran (tests.inprocess)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    wait_for(lambda: server.started, "in-process server", timeout=15)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

"""What of a chunked encode plays now: the published prefix of its parts, as pure data (no database, no I/O).

A video part publishes every rung of one time range at once; the audio part publishes segment by segment. The
playable prefix grows only by contiguous ranges: range 3 done before range 2 waits, unseen, until range 2 lands.
The API renders growing playlists from this, and the last part to finish renders the final ones the same way,
so a growing playlist and the finished one never disagree on a segment.

Files of one attempt at a part carry its tag (the start of its lease), so an attempt that lost its part can only
touch its own files, and a re-run never overwrites what a player may already have cached.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from core import hls
from core.encoding import VideoCodec
from core.media_keys import AUDIO_NAME
from schemas.tables import JobPart, PartKind, PartState, Rendition

AUDIO_RENDITION = AUDIO_NAME
INIT_SUFFIX = "init.mp4"
MIN_SEGMENTS = 2  # a player needs two segments of every rendition to start without stalling at once


def attempt_tag(lease: uuid.UUID) -> str:
    return lease.hex[:12]


def segment_file(tag: str, sequence: int) -> str:
    """A segment's name inside its rendition's folder (api.routes.playback checks names against SEGMENT_NAME)."""
    return f"{tag}.seg_{sequence:05d}.m4s"


def init_file(tag: str) -> str:
    return f"{tag}.{INIT_SUFFIX}"


@dataclass(frozen=True)
class PartView:
    """A part as the published prefix needs it: a job_parts row, or a test's stand-in."""

    kind: str
    index: int
    state: str
    start_seconds: float
    end_seconds: float | None
    first_segment: int
    lease: uuid.UUID | None
    segments: dict[str, list[list[float]]] | None  # rendition -> [[duration, bytes], ...]

    @classmethod
    def of(cls, row: JobPart) -> "PartView":
        return cls(row.kind, row.index, row.state, row.start_seconds, row.end_seconds, row.first_segment, row.lease,
                   row.segments)  # fmt: skip


@dataclass(frozen=True)
class Segment:
    uri: str  # relative to the encode folder: "<rendition>/<file>"
    duration: float
    size: int


@dataclass
class Published:
    renditions: dict[str, list[Segment]] = field(default_factory=dict)
    inits: dict[str, str] = field(default_factory=dict)  # rendition -> init's path in the encode folder
    video_seconds: float = 0.0
    audio_seconds: float = 0.0
    complete: bool = False  # every video and audio part has succeeded: the playlists are final

    def seconds(self, has_video: bool, has_audio: bool) -> float:
        edges = ([self.video_seconds] if has_video else []) + ([self.audio_seconds] if has_audio else [])
        return min(edges) if edges else 0.0

    def playable(self, has_video: bool, has_audio: bool) -> bool:
        wanted = [n for n in self.renditions if n != AUDIO_RENDITION] if has_video else []
        if has_video and not wanted:
            return False
        if has_audio:
            wanted.append(AUDIO_RENDITION)
        return all(len(self.renditions.get(n, [])) >= MIN_SEGMENTS for n in wanted)


def _segments(part: PartView, name: str) -> list[Segment]:
    assert part.lease is not None
    tag = attempt_tag(part.lease)
    rows = (part.segments or {}).get(name, [])
    return [
        Segment(f"{name}/{segment_file(tag, part.first_segment + i)}", float(d), int(b))
        for i, (d, b) in enumerate(rows)
    ]


def published(parts: Sequence[PartView], duration: float) -> Published:
    """The prefix that plays now: contiguous succeeded video ranges from the start, and the audio so far."""
    out = Published()
    video = sorted((p for p in parts if p.kind == PartKind.video), key=lambda p: p.index)
    done_video = True
    for part in video:
        if part.state != PartState.succeeded or part.lease is None:
            done_video = False
            break
        for name in part.segments or {}:
            if part.index == 0:
                out.inits[name] = f"{name}/{init_file(attempt_tag(part.lease))}"
            out.renditions.setdefault(name, []).extend(_segments(part, name))
        out.video_seconds = duration if part.end_seconds is None else part.end_seconds
    audio = next((p for p in parts if p.kind == PartKind.audio), None)
    done_audio = True
    if audio is not None:
        done_audio = audio.state == PartState.succeeded
        if audio.lease is not None and audio.state in (PartState.running, PartState.succeeded):
            segs = _segments(audio, AUDIO_RENDITION)
            if segs:
                out.renditions[AUDIO_RENDITION] = segs
                out.inits[AUDIO_RENDITION] = f"{AUDIO_RENDITION}/{init_file(attempt_tag(audio.lease))}"
            out.audio_seconds = duration if done_audio else sum(s.duration for s in segs)
    out.complete = bool(video or audio) and done_video and done_audio
    return out


def media_playlist(segments: Sequence[Segment], init_uri: str, *, target_duration: int, complete: bool) -> str:
    """One rendition's playlist of published segments (core.hls.media_playlist), URIs relative to its folder."""
    return hls.media_playlist(
        [s.duration for s in segments],
        target_duration=target_duration,
        complete=complete,
        init=init_uri.rpartition("/")[2],
        uris=[s.uri.rpartition("/")[2] for s in segments],
    )


def _rates(segments: Sequence[Segment]) -> tuple[int, int]:
    if not segments:
        return 0, 0
    return hls.bandwidths([s.size for s in segments], [s.duration for s in segments])


def first_range_codecs(parts: Sequence[JobPart]) -> dict[str, str]:
    """Each rung's CODECS, as the first range measured it (every range's init is the same: workers.parts)."""
    return next((p.codecs or {} for p in parts if p.kind == PartKind.video and p.index == 0), {})


def master_for(plan: dict, codecs: dict[str, str], pub: Published) -> tuple[str, list[Rendition]]:
    """The master playlist (core.hls) and rendition rows, from the plan and what is published: measured rates
    once segments exist, the planned caps before. A row holds its own rendition's rates (the audio has a row of
    its own: its playlist is served like a rung's); the master's BANDWIDTH adds the audio, as HLS wants."""
    audio: hls.AudioEntry | None = None
    if plan.get("audio_kbps"):
        peak, average = _rates(pub.renditions.get(AUDIO_RENDITION, []))
        if not peak:
            peak = average = plan["audio_kbps"] * 1000
        audio = hls.AudioEntry(peak, average, codecs.get(AUDIO_RENDITION, hls.AAC_LC))
    variants = []
    for r in plan["renditions"]:
        peak, average = _rates(pub.renditions.get(r["name"], []))
        if not peak:
            peak = average = r["maxrate_kbps"] * 1000
        codec = codecs.get(r["name"]) or hls.PLANNED_CODECS[VideoCodec(r.get("codec", VideoCodec.h264))]
        variants.append(hls.VariantEntry(r["name"], peak, average, codec, r["width"], r["height"], r["frame_rate"]))
    rows = [
        Rendition(video_id=uuid.UUID(int=0), name=v.name, width=v.width, height=v.height, frame_rate=v.frame_rate,
                  bandwidth=v.bandwidth, average_bandwidth=v.average_bandwidth,
                  codecs=f"{v.codecs},{audio.codecs}" if audio else v.codecs, playlist_key="")
        for v in variants
    ]  # fmt: skip
    if audio is not None:
        rows.append(
            Rendition(video_id=uuid.UUID(int=0), name=AUDIO_RENDITION, bandwidth=audio.bandwidth,
                      average_bandwidth=audio.average_bandwidth, codecs=audio.codecs, playlist_key="")
        )  # fmt: skip
    return hls.master_playlist(variants, audio), rows

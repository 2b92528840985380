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

from schemas.tables import JobPart, PartKind, PartState, Rendition

AUDIO_RENDITION = "audio"
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
    """One rendition's playlist: EVENT while parts are still landing (players poll it and never see a segment
    removed), VOD with ENDLIST once every part is in. URIs are the files' names in the rendition's folder."""
    target = max([target_duration, *(round(s.duration + 0.4999) for s in segments)])
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if complete else 'EVENT'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{init_uri.rpartition("/")[2]}"',
    ]
    for s in segments:
        lines += [f"#EXTINF:{s.duration:.6f},", s.uri.rpartition("/")[2]]
    if complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def bandwidths(segments: Sequence[Segment]) -> tuple[int, int]:
    """(peak, average) bits per second over the segments, as BANDWIDTH and AVERAGE-BANDWIDTH mean them."""
    if not segments:
        return 0, 0
    peak = max(s.size * 8 / s.duration for s in segments if s.duration > 0) if segments else 0
    total = sum(s.duration for s in segments)
    return round(peak), round(sum(s.size for s in segments) * 8 / total) if total else 0


def master_for(plan: dict, codecs: dict[str, str], pub: Published) -> tuple[str, list[Rendition]]:
    """The master playlist and rendition rows, from the plan and what is published: measured bandwidths once
    segments exist (peak and average of what was encoded), the planned caps before. A row holds its own
    rendition's rates (the audio has a row of its own); the master's BANDWIDTH adds the audio, as HLS wants."""
    audio_codec = codecs.get(AUDIO_RENDITION, "mp4a.40.2")
    audio_kbps = plan.get("audio_kbps")
    audio_peak, audio_avg = bandwidths(pub.renditions.get(AUDIO_RENDITION, []))
    if audio_kbps and not audio_peak:
        audio_peak = audio_avg = audio_kbps * 1000
    audio = (
        Rendition(video_id=uuid.UUID(int=0), name=AUDIO_RENDITION, bandwidth=audio_peak, average_bandwidth=audio_avg,
                  codecs=audio_codec, playlist_key="")
        if audio_kbps else None
    )  # fmt: skip
    rows: list[Rendition] = []
    for r in plan["renditions"]:
        peak, avg = bandwidths(pub.renditions.get(r["name"], []))
        if not peak:
            peak = avg = r["maxrate_kbps"] * 1000
        video_codec = codecs.get(r["name"]) or "avc1.640028"
        rows.append(
            Rendition(
                video_id=uuid.UUID(int=0), name=r["name"], width=r["width"], height=r["height"],
                frame_rate=r["frame_rate"], bandwidth=peak, average_bandwidth=avg,
                codecs=f"{video_codec},{audio_codec}" if audio else video_codec, playlist_key="",
            )
        )  # fmt: skip
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio and rows:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_RENDITION}",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,'
            f'CHANNELS="2",URI="{AUDIO_RENDITION}/index.m3u8"'
        )
    extra_peak, extra_avg = (audio.bandwidth, audio.average_bandwidth) if audio else (0, 0)
    for row in rows:
        attrs = [
            f"BANDWIDTH={row.bandwidth + extra_peak}",
            f"AVERAGE-BANDWIDTH={row.average_bandwidth + extra_avg}",
            f'CODECS="{row.codecs}"',
            f"RESOLUTION={row.width}x{row.height}",
            f"FRAME-RATE={row.frame_rate:.3f}",
        ]
        if audio:
            attrs.append(f'AUDIO="{AUDIO_RENDITION}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), f"{row.name}/index.m3u8"]
    if audio and not rows:  # an audio-only source: one variant, the audio rendition itself
        lines += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={audio.bandwidth},AVERAGE-BANDWIDTH={audio.average_bandwidth},"
            f'CODECS="{audio.codecs}"',
            f"{AUDIO_RENDITION}/index.m3u8",
        ]
    return "\n".join(lines) + "\n", rows + ([audio] if audio else [])

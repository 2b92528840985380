"""What GET /metrics tells Prometheus: numbers read from the database at scrape time.

Several API processes and workers run at once, so per-process counters would disagree with each other
and vanish on every restart; the database is the one shared truth. Every scrape, whichever API node
answers, reads the same aggregates (a handful of GROUP BY / SUM queries, no row is loaded).

The counters are counts of rows, so they only dip when rows go away: a deleted video takes its job with
it, and a retried or re-transcoded job leaves the state it was counted in. Prometheus reads any dip as a
counter reset, which rate() and increase() handle.

Labels are small fixed sets (states, statuses, failure kinds): no title, id, email or free text ever
leaves in a label, so the output is safe to hand to a monitoring system.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import case, extract, func
from sqlmodel import Session, col, select

from core.jobqueue import WORKER_ONLINE
from core.timeutil import aware
from schemas.tables import (
    FailureKind,
    ImportState,
    JobState,
    Rendition,
    TranscodeJob,
    Video,
    VideoImport,
    VideoStatus,
    WorkerNode,
    utcnow,
)

DURATION_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
SPEED_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
FIRST_PLAY_BUCKETS = (2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True)
class Histogram:
    count: int
    total: float
    le: tuple[int, ...]  # observations <= each bound, in bound order (cumulative by construction)


@dataclass(frozen=True)
class Facts:
    """Everything /metrics reports, as read from the database in one scrape."""

    jobs: dict[str, int]  # by state
    videos: dict[str, int]  # by status
    uploads: int
    upload_bytes: int
    media_bytes: float
    failures: dict[str, int]  # by failure kind
    encoded_seconds: float
    durations: Histogram
    speeds: Histogram
    first_playable: Histogram
    oldest_queued_seconds: float
    workers_online: int
    imports: dict[str, int] = field(default_factory=dict)  # imports from a URL, by state
    import_failures: dict[str, int] = field(default_factory=dict)  # failed imports, by failure kind


def _seconds_between(session: Session, start, end):
    """end - start in seconds, as SQL: PostgreSQL has intervals, SQLite (embedded installs) Julian days."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return extract("epoch", end - start)


def _histogram(session: Session, value, bounds: Sequence[float], *where) -> Histogram:
    columns = [func.count(), func.coalesce(func.sum(value), 0.0)]
    columns += [func.coalesce(func.sum(case((value <= bound, 1), else_=0)), 0) for bound in bounds]
    row = session.execute(select(*columns).select_from(TranscodeJob).where(*where)).one()
    return Histogram(count=int(row[0]), total=float(row[1]), le=tuple(int(n) for n in row[2:]))


def read_facts(session: Session) -> Facts:
    now = utcnow()
    jobs = {state.value: 0 for state in JobState}
    jobs.update(session.exec(select(TranscodeJob.state, func.count()).group_by(TranscodeJob.state)).all())
    videos = {status.value: 0 for status in VideoStatus}
    videos.update(session.exec(select(Video.status, func.count()).group_by(Video.status)).all())
    uploads, upload_bytes = session.exec(select(func.count(), func.coalesce(func.sum(Video.source_size), 0))).one()
    # HLS segment bytes: each rendition's average bitrate is measured from its own segments (workers.measure).
    media_bytes = session.exec(
        select(func.coalesce(func.sum(col(Rendition.average_bandwidth) * col(Video.duration) / 8.0), 0.0)).join(
            Video, col(Video.id) == Rendition.video_id
        )
    ).one()
    failures: dict[str, int] = {}
    kinds = session.exec(
        select(TranscodeJob.failure_kind, func.count())
        .where(TranscodeJob.state == JobState.failed)
        .group_by(TranscodeJob.failure_kind)
    ).all()
    for kind, n in kinds:  # none: failed by a worker of a version before kinds (a rolling upgrade)
        label = kind or FailureKind.other
        failures[label] = failures.get(label, 0) + n
    succeeded = TranscodeJob.state == JobState.succeeded
    encoded = session.exec(select(func.coalesce(func.sum(TranscodeJob.encoded_seconds), 0.0)).where(succeeded)).one()
    wall = _seconds_between(session, TranscodeJob.started_at, TranscodeJob.finished_at)
    durations = _histogram(
        session,
        wall,
        DURATION_BUCKETS,
        succeeded,
        col(TranscodeJob.started_at).is_not(None),
        col(TranscodeJob.finished_at).is_not(None),
    )
    speeds = _histogram(session, TranscodeJob.speed, SPEED_BUCKETS, succeeded, col(TranscodeJob.speed).is_not(None))
    first_playable = _histogram(
        session,
        _seconds_between(session, TranscodeJob.queued_at, TranscodeJob.first_playable_at),
        FIRST_PLAY_BUCKETS,
        col(TranscodeJob.first_playable_at).is_not(None),
    )
    oldest = session.exec(select(func.min(TranscodeJob.queued_at)).where(TranscodeJob.state == JobState.queued)).one()
    online = session.exec(
        select(func.count()).select_from(WorkerNode).where(WorkerNode.last_seen >= now - WORKER_ONLINE)
    ).one()
    imports = {state.value: 0 for state in ImportState}
    imports.update(session.exec(select(VideoImport.state, func.count()).group_by(VideoImport.state)).all())
    failed_imports = session.exec(
        select(VideoImport.failure_kind, func.count())
        .where(VideoImport.state == ImportState.failed)
        .group_by(VideoImport.failure_kind)
    ).all()
    import_failures = {kind or FailureKind.other: n for kind, n in failed_imports}
    return Facts(
        jobs=jobs,
        videos=videos,
        uploads=int(uploads),
        upload_bytes=int(upload_bytes),
        media_bytes=float(media_bytes),
        failures=failures,
        encoded_seconds=float(encoded or 0.0),
        durations=durations,
        speeds=speeds,
        first_playable=first_playable,
        oldest_queued_seconds=max(0.0, (now - aware(oldest)).total_seconds()) if oldest else 0.0,
        workers_online=int(online),
        imports=imports,
        import_failures=import_failures,
    )


def _buckets(h: Histogram, bounds: Sequence[float]) -> list[tuple[str, float]]:
    return [*((repr(float(b)), float(n)) for b, n in zip(bounds, h.le, strict=True)), ("+Inf", float(h.count))]


def _by_label(
    family: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, doc: str, label: str, counts: dict[str, int]
) -> GaugeMetricFamily | CounterMetricFamily:
    """One sample per label value, in a stable order."""
    metric = family(name, doc, labels=[label])
    for value, n in sorted(counts.items()):
        metric.add_metric([value], n)
    return metric


def metric_families(f: Facts) -> list[Metric]:
    """The exposition, built from facts alone (no I/O)."""
    jobs = _by_label(
        GaugeMetricFamily, "streamify_jobs", "Transcode jobs by state (queued = queue depth).", "state", f.jobs
    )
    videos = _by_label(GaugeMetricFamily, "streamify_videos", "Videos by status.", "status", f.videos)
    failures = _by_label(
        CounterMetricFamily, "streamify_job_failures", "Failed transcode jobs by kind of failure.", "reason", f.failures
    )
    imports = _by_label(GaugeMetricFamily, "streamify_imports", "Imports from a URL by state.", "state", f.imports)
    import_failures = _by_label(
        CounterMetricFamily,
        "streamify_import_failures",
        "Failed imports from a URL by kind of failure.",
        "reason",
        f.import_failures,
    )
    stored = GaugeMetricFamily(
        "streamify_stored_bytes",
        "Bytes kept in blob storage: kind=source (uploaded originals) and kind=media (HLS segments, from each "
        "rendition's measured average bitrate x duration; playlists, init segments and thumbnails not counted).",
        labels=["kind"],
    )
    stored.add_metric(["source"], f.upload_bytes)
    stored.add_metric(["media"], round(f.media_bytes))
    return [
        jobs,
        videos,
        failures,
        imports,
        import_failures,
        CounterMetricFamily("streamify_uploads", "Videos uploaded (and not deleted).", value=f.uploads),
        CounterMetricFamily("streamify_upload_bytes", "Bytes of uploaded sources (not deleted).", value=f.upload_bytes),
        CounterMetricFamily(
            "streamify_encoded_seconds", "Seconds of source video encoded by succeeded jobs.", value=f.encoded_seconds
        ),
        HistogramMetricFamily(
            "streamify_job_duration_seconds",
            "Wall time of succeeded jobs, from a worker taking the job to its output being published.",
            buckets=_buckets(f.durations, DURATION_BUCKETS),
            sum_value=f.durations.total,
        ),
        HistogramMetricFamily(
            "streamify_encode_speed_ratio",
            "ffmpeg's encode speed of succeeded jobs, in multiples of real time (2 = a minute of video in 30 s).",
            buckets=_buckets(f.speeds, SPEED_BUCKETS),
            sum_value=f.speeds.total,
        ),
        HistogramMetricFamily(
            "streamify_first_playable_seconds",
            "Time from a job being queued to its video's start playing (progressive publish), per job.",
            buckets=_buckets(f.first_playable, FIRST_PLAY_BUCKETS),
            sum_value=f.first_playable.total,
        ),
        stored,
        GaugeMetricFamily(
            "streamify_queue_oldest_seconds",
            "Age of the oldest queued job (0 when none waits).",
            value=f.oldest_queued_seconds,
        ),  # fmt: skip
        GaugeMetricFamily(
            "streamify_workers_online",
            f"Transcode worker processes seen in the last {WORKER_ONLINE.total_seconds():.0f} s.",
            value=f.workers_online,
        ),
    ]


class DatabaseCollector(Collector):
    """Reads the facts when Prometheus scrapes, never before."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        yield from metric_families(read_facts(self.session))


def exposition(session: Session, accept: str = "") -> tuple[bytes, str]:
    """(body, content type) in the format the scraper's Accept header asks for (Prometheus text 0.0.4 unless
    it asks for more). A registry of our own: no per-process metrics, they would differ between API nodes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(session))
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type

"""Database tables. Status strings are plain VARCHARs so adding a state never needs an enum migration."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class VideoStatus(StrEnum):
    importing = "importing"  # its source is being fetched from a URL (video_imports); then queued like an upload
    uploaded = "uploaded"
    queued = "queued"
    processing = "processing"
    ready = "ready"
    failed = "failed"
    cancelled = "cancelled"


class Visibility(StrEnum):
    public = "public"  # listed in the index, playable by anyone
    unlisted = "unlisted"  # playable by anyone with the link, never listed
    private = "private"  # only the owner


class TokenKind(StrEnum):
    session = "session"  # browser sign-in, sent as an HttpOnly cookie
    api = "api"  # minted by the creator for the CLI and scripts, sent as a Bearer token


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class PartKind(StrEnum):
    """What one part of a chunked encode makes (workers.parts)."""

    video = "video"  # one time range of the source -> every video rung
    audio = "audio"  # the whole source's audio -> the one audio rendition, published segment by segment
    storyboard = "storyboard"  # the ranges' tiles -> sprite sheets and the WebVTT track, after the video is ready
    quality = "quality"  # VMAF of every rung against the source, after the video is ready (workers.quality)
    download = "download"  # the owner's MP4 and M4A, remuxed from the published segments (workers.download_part)


class DownloadKind(StrEnum):
    """What a download holds (core.downloads)."""

    video = "video"  # MP4: one H.264 rung with the audio
    audio = "audio"  # M4A: the audio rendition alone


class DownloadState(StrEnum):
    pending = "pending"  # wanted: made once the video is ready (a download part queued or running)
    ready = "ready"  # in the media store at blob_key
    failed = "failed"  # the part could not make it (error says why); turning downloads on again retries


class NoteKind(StrEnum):
    """What a job could not do and went on without (job_notes): the video still publishes."""

    trial_failed = "trial_failed"  # the per-title trial encode failed: the fixed ladder was used
    vmaf_failed = "vmaf_failed"  # measuring a rung's VMAF failed: the rung has no score
    loudness_failed = "loudness_failed"  # measuring the loudness failed: the audio kept its level


class ImportState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"  # the source is stored and its transcode job queued
    failed = "failed"


class PartState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class FailureKind(StrEnum):
    """Why a job failed, in a fixed set: /metrics labels failures with it and the dashboard shows it, so a
    reworded error message never moves a failure to another kind. Set by the code that fails the job.

    A cancelled job has none: an operator stopping it is no failure."""

    ffmpeg = "ffmpeg"  # ffmpeg exited non-zero (workers.pipeline)
    incomplete_output = "incomplete_output"  # ffmpeg said fine but a rendition or the master is missing
    invalid_master = "invalid_master"  # the master playlist fails our checks (workers.master)
    thumbnails = "thumbnails"  # poster, storyboard tiles or sprite sheets
    corrupt_source = "corrupt_source"  # truncated or corrupt: unreadable, or only partly decodable
    no_decodable_stream = "no_decodable_stream"  # neither a video nor an audio stream decodes
    refused_format = "refused_format"  # not a container the allow-list accepts (core.sniff, core.probe)
    over_limit = "over_limit"  # over a media limit: pixels, streams, duration, frame or sample rate (core.media_limits)
    worker_lost = "worker_lost"  # its worker died MAX_ATTEMPTS times (core.jobqueue.reap_stale)
    stalled = "stalled"  # ffmpeg made no progress for ffmpeg_stall_seconds: killed by the watchdog
    too_long = "too_long"  # the encode outlasted its budget (a multiple of the source's duration)
    unavailable = "unavailable"  # storage or database unreachable through every retry (core.transient)
    disk_full = "disk_full"  # the worker's scratch disk filled up, through every retry
    internal = "internal"  # anything else raised during the job: our bug or an unreachable store
    # An import from a URL (video_imports, workers.imports): why the download itself was given up.
    fetch_failed = "fetch_failed"  # no answer, an error status, a broken connection, too many redirects
    fetch_blocked = "fetch_blocked"  # a hop (a redirect, a DNS answer) led to a non-public address (core.egress)
    fetch_too_large = "fetch_too_large"  # over max_upload_bytes, declared or received
    fetch_too_slow = "fetch_too_slow"  # under import_min_bytes_per_second over import_rate_window_seconds
    fetch_timeout = "fetch_timeout"  # the whole download outlasted import_timeout_seconds
    other = "other"  # failed before kinds were recorded, with an error no kind matched (migration 0005)


def _ts(*, nullable: bool, index: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(sa_type=String(254), unique=True, index=True)  # stored lower-cased
    display_name: str = Field(sa_type=String(100))
    password_hash: str = Field(sa_type=String(255))
    is_operator: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class AuthToken(SQLModel, table=True):
    """Sessions and API tokens. Only a SHA-256 of the secret is stored: a leaked table signs nobody in."""

    __tablename__ = "auth_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True))
    kind: str = Field(sa_type=String(16))
    name: str = Field(default="", sa_type=String(100))
    token_hash: str = Field(sa_type=String(64), unique=True, index=True)
    prefix: str = Field(sa_type=String(16))  # first characters, so a creator can tell tokens apart
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class LoginFailure(SQLModel, table=True):
    """A failed sign-in, counted per account and per client address (core.login_throttle). In the database so
    every API node counts the same; rows older than the window are deleted as new ones come."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_type=String(64))  # SHA-256 of "account:<email>" or "address:<ip, or its /64>"
    at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))


class Video(SQLModel, table=True):
    __tablename__ = "videos"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    title: str = Field(sa_type=String(200))
    description: str = Field(default="", sa_type=Text)
    visibility: str = Field(default=Visibility.public, sa_type=String(16), index=True)
    status: str = Field(default=VideoStatus.uploaded, sa_type=String(16), index=True)
    progress: float = 0.0
    error: str | None = Field(default=None, sa_type=Text)
    source_filename: str | None = Field(default=None, sa_type=String(255))
    source_key: str = Field(sa_type=String(255))
    source_size: int = Field(sa_type=BigInteger)  # sources above 2 GiB are normal
    source_format: str = Field(sa_type=String(32))
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    # Where the published encode lives: one folder per job attempt (core.media_keys.encode_prefix), switched
    # in the same transaction that makes the video ready. None: no encode, or one from before migration 0006.
    media_root: str | None = Field(default=None, sa_type=String(255))
    # The published master playlist and storyboard track, kept here as well as in the store: playback reads
    # them from the database, so a storage outage never reaches a viewer's playlist request (migration 0009).
    master_playlist: str | None = Field(default=None, sa_type=Text)
    storyboard_track: str | None = Field(default=None, sa_type=Text)
    has_video: bool = True
    has_audio: bool = True
    # Progressive publish: seconds from the start that play now, while the encode goes on (None: not playable
    # yet). Set with the parts that extend it; the duration once ready.
    playable_seconds: float | None = None
    # Bumped by the owner's "revoke playback links": tokens and media signatures of an earlier generation stop
    # working (core/playback_tokens.py).
    playback_generation: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # The owner's downloads choice (migration 0013): on or off, and the rung of the MP4 (None: the top H.264 rung,
    # resolved once the ladder is known). The files themselves are Download rows.
    downloads_enabled: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    download_rendition: str | None = Field(default=None, sa_type=String(32))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Rendition(SQLModel, table=True):
    __tablename__ = "renditions"
    __table_args__ = (UniqueConstraint("video_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    video_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("videos.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    name: str = Field(sa_type=String(32))
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    bandwidth: int
    average_bandwidth: int
    codecs: str = Field(sa_type=String(64))
    playlist_key: str = Field(sa_type=String(255))
    playlist: str | None = Field(default=None, sa_type=Text)  # the media playlist's text (see Video.master_playlist)
    vmaf: float | None = None  # measured against the source after publishing (workers.quality); None: not yet/failed
    vmaf_seconds: float | None = None  # how much of the video that measurement covered


class Caption(SQLModel, table=True):
    """A creator's subtitle file for one language: the cleaned WebVTT lives in the media store at blob_key."""

    __tablename__ = "captions"
    __table_args__ = (UniqueConstraint("video_id", "language"),)  # re-uploading a language replaces it

    id: int | None = Field(default=None, primary_key=True)
    video_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("videos.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    language: str = Field(sa_type=String(35))  # BCP 47, canonical case
    label: str = Field(sa_type=String(80))
    is_default: bool = False
    blob_key: str = Field(sa_type=String(255))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Download(SQLModel, table=True):
    """One downloadable file of a video: the MP4 of a rung or the M4A of its audio, remuxed from the published
    encode's segments by a download part (workers.download_part) and stored beside them (core.media_keys)."""

    __tablename__ = "downloads"
    __table_args__ = (UniqueConstraint("video_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    video_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("videos.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    kind: str = Field(sa_type=String(16))  # a DownloadKind
    rendition: str | None = Field(default=None, sa_type=String(32))  # None: the top rung, not known yet
    state: str = Field(default=DownloadState.pending, sa_type=String(16))  # a DownloadState
    blob_key: str | None = Field(default=None, sa_type=String(255))  # set when ready
    size: int | None = Field(default=None, sa_type=BigInteger)
    error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class TranscodeJob(SQLModel, table=True):
    """One encode of one video. The database is the queue; a Celery message only wakes a worker up."""

    __tablename__ = "transcode_jobs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    video_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("videos.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    state: str = Field(default=JobState.queued, sa_type=String(16), index=True)
    priority: int = 0  # raised by an operator: higher runs sooner
    cancel_requested: bool = False
    attempts: int = 0
    # The running attempt's identity: every write an attempt makes (scratch, blobs, progress, heartbeat,
    # publish, cleanup) is fenced by it, so a worker that froze and lost the job can touch nothing newer.
    lease: uuid.UUID | None = Field(default=None, sa_type=Uuid)
    not_before: datetime | None = Field(default=None, sa_column=_ts(nullable=True))  # retry after a transient failure
    transient_failures: int = 0  # storage/database/disk failures retried so far (core.jobqueue.retry_later)
    progress: float = 0.0
    speed: float | None = None  # x real time
    fps: float | None = None
    error: str | None = Field(default=None, sa_type=Text)  # in words, for people
    failure_kind: str | None = Field(default=None, sa_type=String(32))  # a FailureKind, set with error on failure
    log_tail: str | None = Field(default=None, sa_type=Text)
    worker: str | None = Field(default=None, sa_type=String(255))  # host:pid
    encoded_seconds: float | None = None  # source duration, once succeeded (throughput)
    # Set when the job's planning attempt split it into parts (core.parts): from then on its lease names the
    # encode (the parts' folder) and the parts, not one worker, carry the heartbeats.
    planned_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # What the parts need to agree on and the API needs for a master before anything is measured: the rungs
    # (name, size, frame rate, planned bandwidth), the audio bit rate, the ranges; and a digest of the ladder
    # plan, which every part recomputes and compares (a worker with other ladder settings must not mix in).
    plan: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    plan_digest: str | None = Field(default=None, sa_type=String(64))
    first_playable_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # The source's measured loudness and the gain its audio got (workers.loudness), written by the audio part.
    loudness: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    queued_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))
    started_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    heartbeat_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True, index=True))


class JobPart(SQLModel, table=True):
    """One piece of a job that any worker may take: a time range, the audio, or the storyboard (core.parts).

    Each attempt at a part has its own lease, like a job's: its files carry the lease's tag, so an attempt that
    lost its part (a frozen worker waking up) can only ever touch its own files; the winner's tag is recorded."""

    __tablename__ = "job_parts"
    __table_args__ = (UniqueConstraint("job_id", "kind", "index"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    job_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("transcode_jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    video_id: uuid.UUID = Field(sa_type=Uuid)
    generation: uuid.UUID = Field(sa_type=Uuid)  # the job's lease when it was planned: names the encode folder
    kind: str = Field(sa_type=String(16))  # a PartKind
    index: int = 0  # the range's position; 0 for audio and storyboard
    start_seconds: float = 0.0
    end_seconds: float | None = None  # None: to the end of the source
    first_segment: int = 0
    segment_seconds: int = 0
    state: str = Field(default=PartState.queued, sa_type=String(16), index=True)
    lease: uuid.UUID | None = Field(default=None, sa_type=Uuid)  # the running (or winning) attempt's
    worker: str | None = Field(default=None, sa_type=String(255))
    attempts: int = 0  # attempts started (a worker lost mid-part counts)
    failures: int = 0  # attempts that failed on their own (ffmpeg, a short output): the second fails the video
    transient_failures: int = 0  # storage/database/disk failures retried so far, each after a growing delay
    not_before: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    progress: float = 0.0
    # Per rendition, [[duration, bytes], ...] of the segments this part published, in order; the audio part
    # appends as it goes. With `lease`, they are all a playlist needs.
    segments: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    codecs: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # per rendition
    init_digests: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # per rendition
    encode_seconds: float | None = None  # wall time of the winning attempt (the scale-out model reads it)
    error: str | None = Field(default=None, sa_type=Text)
    failure_kind: str | None = Field(default=None, sa_type=String(32))
    log_tail: str | None = Field(default=None, sa_type=Text)
    queued_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    heartbeat_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class JobNote(SQLModel, table=True):
    """One thing a job went on without (NoteKind), for operators and the job page; appended, never edited."""

    __tablename__ = "job_notes"

    id: int | None = Field(default=None, primary_key=True)
    job_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("transcode_jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    kind: str = Field(sa_type=String(32))  # a NoteKind
    message: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class WorkerNode(SQLModel, table=True):
    """A transcode worker process, as it last reported itself."""

    __tablename__ = "worker_nodes"

    name: str = Field(sa_type=String(255), primary_key=True)  # host:pid
    host: str = Field(sa_type=String(255))
    pid: int
    started_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    last_seen: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))
    pids: str = Field(default="", sa_type=String(255))  # its own and its pool processes', comma-separated
    load1: float | None = None
    cpus: int | None = None


class VideoImport(SQLModel, table=True):
    """A video whose source a worker fetches from a URL (workers.imports). The database is the queue, like the
    transcode jobs': a worker claims a queued import with a lease and heartbeats it; the supervisor re-queues one
    whose worker died (core.imports.reap_stale_imports), and rings for any a lost doorbell left waiting.

    Once the source is stored and checked like an upload's, the same transaction records it on the video and
    queues its transcode job; the import row stays as the record of where the video came from."""

    __tablename__ = "video_imports"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    video_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("videos.id", ondelete="CASCADE"), nullable=False, unique=True, index=True)
    )
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    url: str = Field(sa_type=Text)  # as core.egress.check_url normalized it
    state: str = Field(default=ImportState.queued, sa_type=String(16), index=True)
    lease: uuid.UUID | None = Field(default=None, sa_type=Uuid)  # the running attempt's (core.imports.held_by)
    worker: str | None = Field(default=None, sa_type=String(255))
    attempts: int = 0  # attempts started (a worker lost mid-download counts)
    transient_failures: int = 0  # storage/database/disk failures retried so far
    not_before: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    bytes_received: int = Field(default=0, sa_type=BigInteger)
    bytes_total: int | None = Field(default=None, sa_type=BigInteger)  # the server's Content-Length, if it sent one
    error: str | None = Field(default=None, sa_type=Text)  # in words, for the creator
    failure_kind: str | None = Field(default=None, sa_type=String(32))  # a FailureKind, set with error
    queued_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    heartbeat_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class WebhookEventType(StrEnum):
    """What a webhook endpoint can subscribe to (core/webhook_outbox.py emits them)."""

    video_ready = "video.ready"  # the whole ladder is published
    video_failed = "video.failed"  # the encode failed for good (`data.error` says why)
    video_playable = "video.playable"  # the start plays while the rest still encodes (progressive publish)
    video_deleted = "video.deleted"  # its owner deleted it: rows and files are gone
    upload_refused = "upload.refused"  # the upload's bytes were refused (not media, corrupt, too large, over a limit)


class DeliveryState(StrEnum):
    pending = "pending"  # waiting for its next attempt (or one is under way: `claimed_until`)
    delivered = "delivered"  # a 2xx answer
    failed = "failed"  # every attempt of the schedule failed, or the address was blocked


class DeliveryError(StrEnum):
    """Why the last attempt of a delivery did not succeed, in a fixed set (never a parsed message)."""

    http_status = "http_status"  # the receiver answered, but not 2xx (`response_status` says what)
    timeout = "timeout"  # no complete answer within webhook_timeout_seconds
    connection = "connection"  # the host did not resolve, refused the connection, or TLS failed
    blocked = "blocked"  # the URL or a redirect resolves to a loopback, private, link-local or metadata address
    too_many_redirects = "too_many_redirects"
    worker_lost = "worker_lost"  # the worker sending it died mid-attempt (its lease expired): sent again


class EndpointDisabled(StrEnum):
    """Why an endpoint stopped receiving: its owner sees it on the library page and in the API."""

    failing = "failing"  # webhook_disable_after_failures deliveries in a row failed
    owner = "owner"  # its owner turned it off


class WebhookEndpoint(SQLModel, table=True):
    """A receiver a creator registered. The secret signs every delivery (HMAC, Standard Webhooks), so it is kept
    as given, not hashed: anyone who reads this table can forge deliveries to its owner's receiver."""

    __tablename__ = "webhook_endpoints"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    install_wide: bool = False  # an operator's: receives every creator's events
    url: str = Field(sa_type=String(2048))
    description: str = Field(default="", sa_type=String(200))
    event_types: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # WebhookEventType values
    secret: str = Field(sa_type=String(64))  # whsec_<base64>
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, sa_type=String(16))  # an EndpointDisabled
    disabled_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    consecutive_failures: int = 0  # deliveries that failed in a row (a delivered one resets it)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class WebhookEvent(SQLModel, table=True):
    """One thing that happened, written in the same transaction as the change it reports (the outbox): the
    database, not the broker, holds what must be delivered. Its id is every delivery's `webhook-id`."""

    __tablename__ = "webhook_events"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    type: str = Field(sa_type=String(32))  # a WebhookEventType
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    video_id: uuid.UUID | None = Field(default=None, sa_type=Uuid)  # no foreign key: video.deleted outlives it
    payload: dict = Field(sa_column=Column(JSON, nullable=False))  # {"type", "timestamp", "data"}: the body sent
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))


class WebhookDelivery(SQLModel, table=True):
    """One event to one endpoint. The database is its queue: a worker leases it (`claimed_until`, `lease`) for one
    attempt; a worker killed mid-attempt lets the lease run out and the supervisor's sweep rings for it again."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    event_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    endpoint_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    state: str = Field(default=DeliveryState.pending, sa_type=String(16))
    attempts: int = 0  # attempts started (one whose worker died counts: the receiver may have seen it)
    next_attempt_at: datetime | None = Field(default_factory=utcnow, sa_column=_ts(nullable=True))  # None once ended
    claimed_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))  # an attempt under way
    lease: uuid.UUID | None = Field(default=None, sa_type=Uuid)  # that attempt's identity: fences its record
    response_status: int | None = None  # the last attempt's HTTP status
    last_error: str | None = Field(default=None, sa_type=String(32))  # a DeliveryError; None once delivered
    last_error_detail: str | None = Field(default=None, sa_type=String(300))  # for the owner: no internals
    last_attempt_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))

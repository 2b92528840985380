"""What the API returns: kept apart from the tables so storage details never leak to clients."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import email_validator
from pydantic import AfterValidator, BaseModel, Field, field_validator

from schemas.tables import FailureKind, NoteKind, WebhookEventType

# Self-hosted installs live on intranet names (localhost, .local, .internal, .test): allow them. The
# library documents this list as the knob for it.
email_validator.SPECIAL_USE_DOMAIN_NAMES[:] = []

VisibilityName = Literal["public", "unlisted", "private"]


def _with_zone(ts: datetime) -> datetime:
    """SQLite hands timestamps back without a zone (they were written in UTC, core.timeutil.aware): an answer
    always carries one, as RFC 3339 and the schema's `date-time` format require."""
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_with_zone)]


class RenditionRead(BaseModel):
    name: str
    width: int | None
    height: int | None
    frame_rate: float | None
    bandwidth: int
    average_bandwidth: int
    codecs: str
    # VMAF (0-100, libvmaf's default model) of this rung against the source at the top rung's size, measured after
    # the video is ready (workers.quality_part): null until then, with measurement off, or if it failed (the
    # job's notes say why); and how many seconds of the video it covered (all of it, or a spread sample).
    vmaf: float | None
    vmaf_seconds: float | None


class DownloadRead(BaseModel):
    """A file to download (issue 15): the MP4 of one H.264 rung with the audio, or the M4A of the audio."""

    kind: Literal["video", "audio"]
    rendition: str | None  # the rung ("720p"), "audio"; null while the ladder is not known yet
    status: Literal["pending", "ready", "failed"]  # pending: made once the video is ready
    url: str | None  # once ready: from the media store like a segment, signed for a private video
    size: int | None  # bytes, once ready
    error: str | None  # why it failed (its owner only)


class VideoRead(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    visibility: str
    owner_name: str
    is_owner: bool  # whether the caller may edit and delete it
    status: str
    progress: float
    # Progressive publish: true once the start plays while the rest still encodes (status "processing"), and
    # how many seconds from the start play now; the whole duration once ready.
    playable: bool
    encoded_seconds: float | None
    error: str | None
    duration: float | None
    width: int | None
    height: int | None
    has_video: bool
    has_audio: bool
    created_at: Timestamp
    renditions: list[RenditionRead]
    playback_url: str | None
    poster_url: str | None  # JPEG at the top rendition's size, straight from the media store (may carry a SAS)
    storyboard_url: str | None  # WebVTT thumbnail track (sprite #xywh cues) for scrub previews
    watch_url: str
    downloads: list[DownloadRead] = []  # empty unless the owner turned downloads on


class VideoPage(BaseModel):
    items: list[VideoRead]
    total: int
    limit: int
    offset: int


class Problem(BaseModel):
    detail: str


class DownloadsUpdate(BaseModel):
    enabled: bool
    # An H.264 rung of the video ("720p"); null or absent: the top one.
    rendition: str | None = Field(default=None, min_length=1, max_length=32)


class VideoUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    visibility: VisibilityName | None = None
    downloads: DownloadsUpdate | None = None  # turn the MP4 and M4A downloads on (of a rung) or off


class SignUp(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=128)  # the policy (length, common passwords) is core.accounts'
    display_name: str = Field(default="", max_length=100)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        try:
            checked = email_validator.validate_email(value, check_deliverability=False, globally_deliverable=False)
        except email_validator.EmailNotValidError as exc:
            raise ValueError(f"not a valid email address: {exc}") from exc
        return checked.normalized


class SignIn(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=128)


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=128)
    new_password: str = Field(max_length=128)  # the policy (length, common passwords) is core.accounts'


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str
    is_operator: bool


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class TokenRead(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: Timestamp
    last_used_at: Timestamp | None
    expires_at: Timestamp | None


class TokenCreated(TokenRead):
    token: str  # the secret: shown once, never again


class LadderRungRead(BaseModel):
    """One rung the planner considered (transcode_jobs.plan["ladder"]), kept or dropped, and why."""

    name: str
    kept: bool
    crf: int | None = None
    maxrate_kbps: int | None = None
    reason: str = ""


class LadderRead(BaseModel):
    """How the job's ladder was chosen: per title (from measurements of the source, `inputs`) or the fixed one."""

    mode: str  # "per_title" | "fixed"
    inputs: dict[str, Any] | None = None
    rungs: list[LadderRungRead]


class LoudnessRead(BaseModel):
    """The source's measured loudness (EBU R128) and the gain its audio got (transcode_jobs.loudness)."""

    input_i: float | None = None  # integrated, LUFS
    input_tp: float | None = None  # true peak, dBTP
    input_lra: float | None = None  # loudness range, LU
    target_i: float | None = None
    target_tp: float | None = None
    gain_db: float | None = None
    limited: bool = False  # the true-peak ceiling held the gain back
    silent: bool = False  # nothing to normalize: left silent
    sampled: bool = False  # measured on windows of a long source, not the whole of it


class NoteRead(BaseModel):
    """Something the job could not measure and went on without (the video still published)."""

    kind: NoteKind
    message: str
    created_at: Timestamp


class JobRead(BaseModel):
    id: uuid.UUID
    video_id: uuid.UUID
    video_title: str
    owner_name: str
    state: str
    cancel_requested: bool
    priority: int
    position: int | None  # 1 = next to run; None unless queued
    attempts: int
    progress: float
    speed: float | None  # x real time
    fps: float | None
    eta_seconds: float | None
    duration: float | None  # of the source
    worker: str | None
    # A planned job's parts (time ranges, audio, storyboard) by state, and how long after it was queued its
    # start became playable (progressive publish).
    parts: dict[str, int]
    first_playable_seconds: float | None
    error: str | None  # in words, for people
    failure_kind: FailureKind | None  # for grouping and alerts (the /metrics label); None unless failed
    log_tail: str | None
    queued_at: Timestamp
    started_at: Timestamp | None
    heartbeat_at: Timestamp | None
    finished_at: Timestamp | None
    # Quality per bit: how the ladder was chosen (null before planning or for an encode from before it), the
    # loudness measured and applied (null until the audio part recorded it, or no audio), notes on what the job
    # went on without, and the video's renditions with their measured VMAF.
    ladder: LadderRead | None = None
    loudness: LoudnessRead | None = None
    notes: list[NoteRead] = []
    renditions: list[RenditionRead] = []


class WorkerRead(BaseModel):
    name: str
    host: str
    pid: int
    started_at: Timestamp
    last_seen: Timestamp
    load1: float | None
    cpus: int | None
    running_jobs: list[uuid.UUID]


class HourStats(BaseModel):
    hour: Timestamp
    jobs: int
    encoded_minutes: float
    mean_speed: float | None


class QueueSnapshot(BaseModel):
    at: Timestamp
    counts: dict[str, int]
    running: list[JobRead]
    queue: list[JobRead]
    failures: list[JobRead]
    finished: list[JobRead] = []  # the last jobs that succeeded, newest first (their pages show the measured VMAF)
    workers: list[WorkerRead]
    history: list[HourStats]


class PriorityUpdate(BaseModel):
    priority: int = Field(ge=-100, le=100)


class CaptionRead(BaseModel):
    language: str  # BCP 47, canonical case ("pt-BR")
    label: str  # what the player's caption menu shows
    is_default: bool  # players turn this track on by themselves
    created_at: Timestamp
    url: str  # the cleaned WebVTT file in the media store (may carry a SAS)
    playlist_url: str  # its HLS subtitle media playlist (the master lists it once the video is ready)


class CaptionCreated(CaptionRead):
    cue_count: int
    source_format: Literal["vtt", "srt"]  # what was uploaded; what is stored is always WebVTT


class PlaybackTokenCreate(BaseModel):
    ttl_seconds: int | None = Field(default=None, ge=60, description="lifetime; default STREAMIFY_PLAYBACK_TOKEN_TTL")


class PlaybackTokenRead(BaseModel):
    token: str  # HMAC-signed, expiring; opens this one video's playlists (and, through them, its segments)
    expires_at: Timestamp
    playback_url: str  # the master playlist with ?token=: plays in any HLS player
    watch_url: str  # the watch page with ?token=


class ImportCreate(BaseModel):
    """Import a video from a URL: a worker downloads it (http/https only, every hop to a public address), then it
    goes on as an upload would."""

    url: str = Field(min_length=1, max_length=2048, description="http:// or https:// URL of a video or audio file")
    title: str | None = Field(default=None, max_length=200, description="default: the URL's file name")
    description: str = Field(default="", max_length=5000)
    visibility: VisibilityName = "public"


class ImportRead(BaseModel):
    """Where a video came from and what became of its download (owner only)."""

    url: str
    state: Literal["queued", "running", "succeeded", "failed"]
    attempts: int
    bytes_received: int
    bytes_total: int | None  # the server's Content-Length, when it sent one
    error: str | None  # in words, for people
    failure_kind: FailureKind | None  # fetch_too_large, fetch_too_slow, fetch_blocked, refused_format, ...
    queued_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


class UploadState(StrEnum):
    """Where a resumable (tus) upload stands: ingest/tus.py moves it along, `GET /api/v1/uploads/{id}` tells it."""

    receiving = "receiving"  # waiting for more bytes
    ingesting = "ingesting"  # every byte is in; sniff/probe/store/record running
    done = "done"  # became `video_id`
    refused = "refused"  # `error` says why; the bytes are gone


class UploadRead(BaseModel):
    """What became of a resumable upload, for a client that lost the final PATCH's answer (not part of tus)."""

    id: str
    state: UploadState
    offset: int
    length: int
    filename: str | None
    title: str
    expires_at: datetime
    received_bytes: int
    patch_offsets: list[int]
    video_id: uuid.UUID | None
    watch_url: str | None
    error_status: int | None
    error: str | None


class WebhookCreate(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="http:// or https://, reachable from the internet")
    event_types: list[WebhookEventType] = Field(default_factory=lambda: list(WebhookEventType), min_length=1)
    description: str = Field(default="", max_length=200)
    install_wide: bool = Field(default=False, description="operators only: receive every creator's events")


class WebhookUpdate(BaseModel):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[WebhookEventType] | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = Field(default=None, description="true re-enables an endpoint disabled for failing")


class WebhookRead(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    install_wide: bool
    enabled: bool
    # Why it stopped receiving ("failing": too many deliveries in a row failed; "owner": turned off) and when;
    # `notice` says it in words for its owner (the library page shows the same).
    disabled_reason: str | None
    disabled_at: Timestamp | None
    notice: str | None
    consecutive_failures: int
    created_at: Timestamp


class WebhookCreated(WebhookRead):
    secret: str  # whsec_...: shown this once; verify deliveries with it (Standard Webhooks)


class WebhookDeliveryRead(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID  # the `webhook-id` header is "msg_" + this: the same on every retry and resend
    event_type: str
    video_id: uuid.UUID | None
    state: str  # pending, delivered, failed
    attempts: int
    response_status: int | None  # the last attempt's HTTP status
    last_error: str | None  # a fixed set: http_status, timeout, connection, blocked, too_many_redirects, ...
    last_error_detail: str | None
    next_attempt_at: Timestamp | None
    last_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    created_at: Timestamp


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDeliveryRead]
    total: int
    limit: int
    offset: int

"""The one settings object. Embedded defaults need no server; the real stack is env vars away.

Values are checked when the settings are read, so a process with a bad one refuses to start (the CLI says
which variable and why) instead of failing every job later.
"""

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.encoding import X264Preset, check_crf, check_gop, check_segment
from core.webhooks import parse_schedule

# Celery's --queues splits on commas and the embedded broker puts the name in file names: plain words only.
QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMIFY_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("streamify-data"), description="Root for every embedded default.")

    # Database: SQLite file under data_dir unless a URL is given (postgresql+psycopg://...).
    database_url: str | None = None
    # Celery broker: kombu's filesystem transport under data_dir unless a URL is given (redis://...).
    broker_url: str | None = None
    queue: str = Field(default="transcode", description="Broker queue the workers consume.")

    # Blob storage: local directories under data_dir unless an Azure connection string is given.
    azure_connection_string: str | None = None
    azure_media_container: str = "streamify-media"
    azure_source_container: str = "streamify-sources"
    # Browsers fetch segments straight from Blob Storage, so the account must allow these origins.
    azure_cors_origins: str = "*"
    # Segment URLs handed to players: a CDN or nginx prefix; default depends on the blob backend.
    segment_base_url: str | None = None
    sas_ttl_seconds: int = 6 * 3600

    # Private playback: tokens and signed segment URLs are HMACs of this secret. Unset on embedded defaults: one
    # is generated under data_dir. Required with an external database (nodes and nginx must share it).
    playback_secret: SecretStr | None = Field(default=None, min_length=32)
    playback_token_ttl_seconds: int = Field(default=6 * 3600, ge=60, description="The owner's own playback links.")
    playback_token_max_ttl_seconds: int = Field(default=30 * 86400, ge=60, description="Longest share link.")

    # Ingest.
    max_upload_bytes: int = 10 * 1024**3
    # Any request body but an upload's (JSON, forms): bounded in the app itself, with or without nginx in front.
    json_body_max_bytes: int = Field(default=64 * 1024, ge=1024, description="Body limit of non-upload routes.")
    # Resumable (tus) uploads: a partial upload untouched this long is deleted by the periodic cleanup.
    tus_expiry_seconds: int = Field(default=24 * 3600, ge=60)
    tus_cleanup_interval_seconds: int = Field(default=3600, ge=10)
    tus_max_open_uploads: int = Field(default=20, ge=1, description="Unfinished tus uploads per creator.")
    # The declared lengths of one creator's unfinished uploads, together: nobody reserves the shared disk budget.
    tus_max_reserved_bytes: int = Field(default=20 * 1024**3, ge=1, description="Open tus bytes per creator.")
    # A new upload is accepted only if the disk keeps this much free beyond what every open upload may still send.
    tus_disk_margin_bytes: int = Field(default=1024**3, ge=0, description="Free disk kept beyond open uploads.")
    # An upload `ingesting` this long with no live process on it (its node died) is refused: "upload again".
    tus_ingest_timeout_seconds: int = Field(default=15 * 60, ge=1, description="Bound on an interrupted ingest.")
    # A source blob whose video row was never committed (its API node died in between) is deleted by the same
    # periodic cleanup once it is this old: far longer than storing and recording take within one request.
    orphan_source_grace_seconds: int = Field(default=3600, ge=1, description="Age of a row-less source blob.")
    # Imports from a URL (POST /api/v1/videos/import): a worker downloads the source through core.egress (every hop
    # checked), within max_upload_bytes, a total time and a minimum rate, then checks it exactly like an upload.
    import_timeout_seconds: float = Field(default=3600, gt=0, description="Longest download of one import.")
    # Slower than this over the window (or silent for the whole window) is refused: a trickle must not hold a
    # worker for the whole timeout.
    import_min_bytes_per_second: int = Field(default=16 * 1024, ge=0, description="Rate floor (0: none).")
    import_rate_window_seconds: float = Field(default=60, gt=0, description="The rate floor's window.")
    import_max_open: int = Field(default=10, ge=1, description="Imports queued or running per creator.")

    # What a source may ask of a decoder (core/media_limits.py), checked from headers and packet timestamps before
    # any decode, at upload and again in the worker. A source over one is refused (422) naming the limit.
    media_max_pixels: int = Field(default=8192 * 4320, ge=320 * 240, description="Pixels per frame (8K DCI).")
    media_max_streams: int = Field(default=64, ge=2, le=1000, description="Streams of any kind (remuxes carry dozens).")
    media_max_duration_seconds: float = Field(default=6 * 3600, gt=0, description="Declared or timestamped length.")
    media_max_frame_rate: float = Field(default=240, gt=0, description="Video frames per second, declared or counted.")
    media_max_frame_gap_seconds: float = Field(default=300, gt=0, description="Longest time between two frames.")
    media_max_sample_rate: int = Field(default=192_000, ge=8000, description="Audio samples per second.")
    media_max_channels: int = Field(default=16, ge=2, description="Audio channels in one stream.")

    # Transcoding.
    ffmpeg_path: str | None = Field(default=None, description="System ffmpeg; default: imageio-ffmpeg's.")
    ladder_max_height: int = Field(default=1080, ge=240, le=2160)
    x264_preset: X264Preset = "veryfast"
    x264_crf: int = 21
    gop_seconds: int = Field(default=2, description="Keyframe interval, identical in every rendition.")
    segment_seconds: int = Field(default=4, description="HLS segment length: a whole number of keyframe intervals.")
    # Chunked encoding (workers.chunks): a short first range, cut into keyframe-interval segments, makes the start
    # playable within seconds; the ranges after it double up to range_seconds and any worker may encode them.
    first_range_seconds: int = Field(default=4, ge=1, le=60, description="The first time range (fast start).")
    range_seconds: int = Field(default=60, ge=0, le=3600, description="The longest time range; 0: one range.")
    # Quality per bit (issue 14). Per-title: a cheap trial encode of sampled windows picks each rung's rate
    # control and drops rungs not worth their bytes (workers.pertitle); off: the fixed ladder above for every source.
    per_title: bool = Field(default=True, description="Fit the ladder to each source's complexity.")
    # An AV1 ladder (SVT-AV1, fMP4) beside the H.264 one in the same master: devices that decode AV1 pick it.
    av1: bool = Field(default=False, description="Also encode every rung in AV1.")
    # Preset 6 is the fastest that measured >= 30 % fewer bytes than x264 veryfast at equal VMAF (preset 10 needed
    # more bytes than x264; 8 missed by a little): AV1 costs about 3x the H.264 encode CPU there (docs/quality.md).
    svtav1_preset: int = Field(default=6, ge=0, le=13, description="SVT-AV1 speed preset (higher: faster).")
    # Loudness (EBU R128): every output's audio is brought to one integrated loudness, true peak below a ceiling.
    loudness_normalize: bool = Field(default=True, description="Normalize every output's loudness.")
    loudness_target_lufs: float = Field(default=-16.0, ge=-40, le=-5, description="Integrated loudness target.")
    true_peak_dbtp: float = Field(default=-1.0, ge=-9, le=0, description="True peak ceiling of the output.")
    # Measured quality: VMAF of every rung against the source after the video is ready (a part after `ready`,
    # like the storyboard); on a sample of windows when the video is longer than vmaf_full_seconds.
    measure_vmaf: bool = Field(default=True, description="Measure each rung's VMAF after publishing.")
    vmaf_full_seconds: float = Field(default=60, ge=0, description="Measure the whole video up to this length.")
    vmaf_sample_seconds: float = Field(default=30, gt=0, description="Otherwise, this many seconds in windows.")
    # The ffmpeg watchdog (workers.pipeline): a stuck or stopped ffmpeg is killed and its job fails.
    worker_concurrency: int = Field(
        default=0, ge=0, le=256, description="Parts a worker encodes at once (0: one per CPU core)."
    )
    ffmpeg_stall_seconds: float = Field(default=120, gt=0, description="Kill an ffmpeg whose output stops growing.")
    encode_time_factor: float = Field(default=20, gt=0, description="Encode budget: this x the source's duration...")
    encode_time_floor_seconds: float = Field(default=600, gt=0, description="...but never less than this.")
    # A job that meets an unreachable store or database, or a full disk, waits and is retried (core.transient):
    # base, 3x base, 9x base... (capped at 5 minutes between tries) before it fails for good.
    transient_retries: int = Field(default=5, ge=0, description="Tries after a transient failure.")
    transient_retry_base_seconds: float = Field(default=10, gt=0, description="First wait; x3 each time.")
    azure_retry_total: int = Field(default=3, ge=0, description="The Azure client's own retries per request.")
    # A store that hangs must not hold an API thread for minutes (nginx gives up at 60 s and drops the node).
    azure_connect_timeout_seconds: float = Field(default=5, gt=0, description="Connecting to Blob Storage.")
    azure_read_timeout_seconds: float = Field(default=10, gt=0, description="Waiting for Blob Storage's answer.")

    # API.
    host: str = "127.0.0.1"
    port: int = 8000
    # The address people use (https://videos.example.com): with https, cookies are `Secure` even when a proxy in
    # front terminates TLS and the API itself is spoken to over plain HTTP.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+(/\S*)?$", description="Public base URL.")

    # Accounts.
    session_ttl_seconds: int = Field(default=30 * 86400, ge=300, description="Life of a browser sign-in.")
    api_token_ttl_days: int = Field(default=90, ge=1, le=3650, description="Life of an API token.")
    # Failed sign-ins within the window, per account and per client address: beyond them 429 with Retry-After.
    login_max_failures_per_account: int = Field(default=10, ge=1)
    login_max_failures_per_address: int = Field(default=50, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=10)
    # Argon2 hashes at once in one process (each takes 64 MiB): more sign-ins wait, then get 503 with Retry-After.
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    password_hash_wait_seconds: float = Field(default=10.0, ge=0)

    # Observability. json: API and workers log one JSON object a line, with job_id/video_id during a job.
    log_format: Literal["text", "json"] = "text"
    # GET /metrics answers an operator, or a scraper sending `Authorization: Bearer <metrics_token>`.
    metrics_token: str | None = Field(default=None, min_length=16, description="Prometheus scrape token.")

    # nginx front (`streamify up --nodes N`, compose): segments are served by nginx, never by Python.
    nginx_path: str | None = Field(default=None, description="nginx binary; default: on PATH, then /usr/sbin/nginx.")
    # Azure backend: nginx's disk cache of media blobs, and the lifetime of the read-only SAS only nginx holds
    # (minted each time the config is rendered).
    nginx_cache_max_size: str = "10g"
    nginx_blob_sas_days: int = Field(default=365, ge=1)
    # The media account's read-only secondary (RA-GRS / RA-GZRS: https://<account>-secondary.blob.core.windows.net,
    # the same SAS is valid there): nginx fetches what it has not cached from it while the primary fails, so a
    # storage outage costs viewers nothing but replication lag. Only nginx reads it; writes go to the primary.
    azure_secondary_blob_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._-]+)*/?$",
        description="Read-only secondary blob endpoint of the media account (RA-GRS), nginx's fallback origin.",
    )
    # A second storage account (another region) that every media write also goes to before it is recorded, and
    # every delete leaves first: nginx's fallback origin with nothing missing (RA-GRS's secondary lacks what the
    # last replication round had not copied). Twice the writes; a write fails, and is retried, if either store
    # refuses it. One fallback origin: this or azure_secondary_blob_endpoint.
    azure_mirror_connection_string: str | None = Field(
        default=None, description="Connection string of a second account every media write also goes to."
    )
    # How long nginx trusts an API node's answer to "may this video's media be served without a signature?"
    # (public/unlisted yes, private no): a video made private locks its unsigned URLs within this delay.
    nginx_access_cache_seconds: int = Field(default=10, ge=1, le=3600)
    nginx_trusted_proxies: str = Field(default="", description="CIDRs in front of nginx (comma-separated).")

    # Outbound requests to URLs users give (webhook endpoints, imports) never reach a loopback, private, link-local
    # or reserved address (core/egress.py), except the hosts listed here: names or IP literals, comma-separated.
    egress_allowed_hosts: str = Field(default="", description="Hosts outbound requests may reach though internal.")

    # Webhooks (core/webhooks.py, workers/webhook_delivery.py). One attempt is bounded as a whole (a receiver that
    # trickles its answer cannot hold a worker); a failed one is tried again after each wait of the schedule
    # (Standard Webhooks' suggestion: a day and more in all), then the delivery fails. An endpoint whose deliveries
    # keep failing, this many in a row, is disabled and its owner told.
    webhook_timeout_seconds: float = Field(default=15, gt=0, le=120, description="One delivery attempt, in all.")
    webhook_connect_timeout_seconds: float = Field(default=5, gt=0, le=60, description="Connecting to a receiver.")
    webhook_retry_schedule: str = Field(
        default="5s,5m,30m,2h,5h,10h,10h", description="Waits before each retry (s, m, h, d units), comma-separated."
    )
    webhook_disable_after_failures: int = Field(default=5, ge=1, description="Failed deliveries in a row.")

    @field_validator("queue")
    @classmethod
    def _plain_queue_name(cls, value: str) -> str:
        if not QUEUE_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a queue name: use 1 to 100 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit (a comma would make workers consume two queues, a '/' breaks the embedded broker)"
            )
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("x264_crf")
    @classmethod
    def _crf(cls, value: int) -> int:
        return check_crf(value)

    @field_validator("gop_seconds")
    @classmethod
    def _gop(cls, value: int) -> int:
        return check_gop(value)

    @field_validator("segment_seconds")
    @classmethod
    def _segment(cls, value: int, info: ValidationInfo) -> int:
        gop = info.data.get("gop_seconds")  # absent when it was refused itself: that error is enough
        return check_segment(value, gop) if gop else value

    @field_validator("tus_max_reserved_bytes")
    @classmethod
    def _room_for_one_upload(cls, value: int, info: ValidationInfo) -> int:
        largest = info.data.get("max_upload_bytes")
        if largest is not None and value < largest:
            raise ValueError(
                f"must be at least the largest upload allowed ({largest} bytes), or no creator could start one so big"
            )
        return value

    @field_validator("azure_mirror_connection_string")
    @classmethod
    def _one_fallback_origin(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:  # compose passes an unset variable as ""
            return None
        if not info.data.get("azure_connection_string"):
            raise ValueError("a mirror needs STREAMIFY_AZURE_CONNECTION_STRING: it copies the media account's writes")
        if info.data.get("azure_secondary_blob_endpoint"):
            raise ValueError(
                "set a mirror or STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT, not both: nginx has one fallback origin"
            )
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'streamify.db').resolve()}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def uses_azure(self) -> bool:
        return bool(self.azure_connection_string)


@lru_cache
def get_settings() -> Settings:
    return Settings()


def refusal(exc: ValidationError) -> str:
    """Why the settings were refused, in one paragraph naming each environment variable. Pydantic's input is
    left out: it may be a secret (a validator's own message quotes a value only where it is not)."""
    prefix = Settings.model_config["env_prefix"]
    problems = []
    for error in exc.errors(include_url=False):
        field = "_".join(str(part) for part in error["loc"])
        # A validator's own ValueError reads best without pydantic's "Value error, " in front of it.
        words = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        problems.append(f"{prefix}{field.upper()}: {words}" if field else words)
    return "Invalid settings, nothing started. " + "; ".join(problems) + "."

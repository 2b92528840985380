"""The one settings object. Embedded defaults need no server; the real stack is env vars away."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, computed_field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMIFY_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("streamify-data"), description="Root for every embedded default.")

    # Database: SQLite file under data_dir unless a URL is given (postgresql+psycopg://...).
    database_url: str | None = None
    # Celery broker: kombu's filesystem transport under data_dir unless a URL is given (redis://...).
    broker_url: str | None = None
    queue: str = "transcode"

    # Blob storage: local directories under data_dir unless an Azure connection string is given.
    azure_connection_string: str | None = None
    azure_media_container: str = "streamify-media"
    azure_source_container: str = "streamify-sources"
    # Browsers fetch segments straight from Blob Storage, so the account must allow these origins.
    azure_cors_origins: str = "*"
    # Segment URLs handed to players: a CDN or nginx prefix; default depends on the blob backend.
    segment_base_url: str | None = None
    sas_ttl_seconds: int = 6 * 3600

    # Ingest.
    max_upload_bytes: int = 10 * 1024**3

    # Transcoding.
    ffmpeg_path: str | None = Field(default=None, description="System ffmpeg; default: imageio-ffmpeg's.")
    ladder_max_height: int = Field(default=1080, ge=240, le=2160)
    x264_preset: str = "veryfast"
    x264_crf: int = 21
    segment_seconds: int = 4
    gop_seconds: int = 2

    # API.
    host: str = "127.0.0.1"
    port: int = 8000

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

"""What a complete local source file is, checked once for every way a source arrives: an upload (ingest.intake) and
an import from a URL (workers.imports) meet the same sniffing (core.sniff: the allow-listed demuxers) and probing
(core.probe: the media limits, before any decode), so a URL's bytes are refused exactly as the same bytes uploaded
would be."""

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from core.errors import Refusal, Refused, too_large_detail
from core.media_limits import MediaLimits
from core.probe import SourceInfo, probe
from core.settings import Settings
from core.sniff import sniff_demuxer


class SourceFields(TypedDict):
    """The Video columns that describe its source."""

    source_size: int
    source_format: str
    duration: float
    width: int | None
    height: int | None
    has_video: bool
    has_audio: bool


@dataclass(frozen=True)
class CheckedSource:
    """What `check_source` found in a local file: its size, the one demuxer allowed to open it, and its streams."""

    size: int
    demuxer: str
    info: SourceInfo

    def video_fields(self) -> SourceFields:
        """The Video columns that describe the source, for a new row (upload) or an existing one (import)."""
        info = self.info
        return SourceFields(
            source_size=self.size,
            source_format=self.demuxer,
            duration=info.duration,
            width=info.display_width or None,
            height=info.display_height or None,
            has_video=info.has_video,
            has_audio=info.has_audio,
        )


def check_source(path: Path, settings: Settings) -> CheckedSource:
    """Sniff and probe a complete local file: the one check of what a source is (Refused, with its FailureKind)."""
    size = path.stat().st_size
    if size > settings.max_upload_bytes:
        raise Refused(Refusal.too_large, too_large_detail(settings.max_upload_bytes))
    demuxer = sniff_demuxer(path)  # also refuses an empty file
    info = probe(path, demuxer, MediaLimits.from_settings(settings))  # limits before any decode
    return CheckedSource(size, demuxer, info)

"""Poster and storyboard (scrub-preview sprite sheets + WebVTT thumbnail track), planned as pure data.

The frames come from the encode's own decode: build_range_argv adds a poster output (in the range that holds
poster_at) and the range's tiles to its ffmpeg, so thumbnails never read or decode the source a second time;
once every range is done, a tiny ffmpeg (build_sheets_argv) lays the tiles out on sprite sheets.
"""

import math
from dataclasses import dataclass, replace
from pathlib import Path

import ffmpeg

from core.media_keys import POSTER_NAME, SPRITE_PATTERN, TILE_PATTERN, TILES_DIR, sprite_name
from core.probe import SourceInfo
from workers.ladder import LadderPlan

MAX_TILES = 100  # a scrub bar has no use for more previews: longer videos get a longer interval
MIN_INTERVAL = 2  # seconds between tiles of a short video
TILE_WIDTH = 160
MAX_TILE_HEIGHT = 320  # a 9:16 phone video is 160x284; only taller shapes get narrower tiles
COLUMNS = 10
ROWS_PER_SHEET = 5  # 50 tiles (1600x450 for 16:9) per sheet: the first previews arrive with a small file
POSTER_FRACTION = 0.1  # past fades from black and title cards
POSTER_MAX_SECONDS = 5.0
POSTER_QUALITY = 3  # mjpeg qscale: 2 best .. 31 worst
SPRITE_QUALITY = 5
TILE_QUALITY = 2  # the tiles are compressed again on the sheets: lose little the first time


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


@dataclass(frozen=True)
class StoryboardPlan:
    interval: int  # seconds between tiles: tile k shows the frame at k * interval
    tiles: int
    tile_width: int
    tile_height: int
    columns: int
    rows: int  # per sheet; every sheet has the full grid, the last one padded
    duration_ms: int

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    @property
    def sheets(self) -> int:
        return math.ceil(self.tiles / self.per_sheet)

    @property
    def sheet_size(self) -> tuple[int, int]:
        return self.columns * self.tile_width, self.rows * self.tile_height

    @property
    def sheet_names(self) -> list[str]:
        return [sprite_name(i) for i in range(self.sheets)]

    def tile_box(self, k: int) -> tuple[str, int, int, int, int]:
        """Sheet name and x, y, w, h of tile k."""
        sheet, j = divmod(k, self.per_sheet)
        row, col = divmod(j, self.columns)
        w, h = self.tile_width, self.tile_height
        return sprite_name(sheet), col * w, row * h, w, h


@dataclass(frozen=True)
class ThumbnailPlan:
    poster_at: float  # seconds into the source
    poster_width: int
    poster_height: int
    storyboard: StoryboardPlan

    @property
    def image_sizes(self) -> dict[str, tuple[int, int]]:
        """Every JPEG the encode must leave in the output directory, with its pixel size."""
        sizes = {POSTER_NAME: (self.poster_width, self.poster_height)}
        sizes.update((name, self.storyboard.sheet_size) for name in self.storyboard.sheet_names)
        return sizes


def tile_size(display_width: int, display_height: int) -> tuple[int, int]:
    """TILE_WIDTH wide at the display aspect, even sizes, never upscaled, very tall shapes boxed."""
    width = min(TILE_WIDTH, max(2, display_width // 2 * 2))
    height = _even(width * display_height / display_width)
    if height > MAX_TILE_HEIGHT:
        height = MAX_TILE_HEIGHT
        width = _even(height * display_width / display_height)
    return width, height


def plan_storyboard(
    duration: float,
    display_width: int,
    display_height: int,
    *,
    max_tiles: int = MAX_TILES,
    columns: int = COLUMNS,
    rows_per_sheet: int = ROWS_PER_SHEET,
) -> StoryboardPlan:
    """Whole-second interval (at least MIN_INTERVAL) giving at most max_tiles; a short video gets a small grid."""
    if duration <= 0 or display_width <= 0 or display_height <= 0:
        raise ValueError("a storyboard needs a video with a duration and a size")
    duration_ms = max(1, round(duration * 1000))
    interval = max(MIN_INTERVAL, math.ceil(duration_ms / (max_tiles * 1000)))
    tiles = math.ceil(duration_ms / (interval * 1000))
    cols = min(columns, tiles)
    rows = min(rows_per_sheet, math.ceil(tiles / cols))
    width, height = tile_size(display_width, display_height)
    return StoryboardPlan(interval, tiles, width, height, cols, rows, duration_ms)


def plan_thumbnails(info: SourceInfo, ladder: LadderPlan) -> ThumbnailPlan | None:
    """Poster at the top rendition's (upright) size plus a storyboard; None for audio-only sources."""
    if ladder.audio_only or not info.has_video:
        return None
    top = ladder.renditions[0]
    return ThumbnailPlan(
        poster_at=round(min(info.duration * POSTER_FRACTION, POSTER_MAX_SECONDS), 3),
        poster_width=top.width,
        poster_height=top.height,
        storyboard=plan_storyboard(info.duration, info.display_width, info.display_height),
    )


def poster_output(plan: ThumbnailPlan, src, out_dir: Path, at: float):
    """poster.jpg from the frame at `at` seconds into the range's decode.

    ffmpeg prints no -progress until every output has its first frame (and the watchdog would see a stall), so
    the poster output also gets the range's frame 0, which the frame at `at` then overwrites (update=1).
    """
    poster = (
        src.filter("select", f"eq(n,0)+gte(t,{at:g})*lt(prev_selected_t,{at:g})")
        # JPEG viewers assume BT.601 full range: convert, or a BT.709 source's colours shift.
        .filter(
            "scale", plan.poster_width, plan.poster_height, flags="lanczos", out_color_matrix="bt601", out_range="full"
        )
        .filter("setsar", "1")
    )
    return ffmpeg.output(
        poster,
        str(out_dir / POSTER_NAME),
        f="image2",
        update=1,
        **{"c:v": "mjpeg", "frames:v": 2, "q:v": POSTER_QUALITY, "fps_mode": "passthrough"},
        map_metadata=-1,
    )


def tiles_output(plan: StoryboardPlan, src, out_dir: Path, first: int, count: int, range_start: float):
    """Tiles first..first+count-1 of the storyboard as JPEG files numbered globally (tiles/tile_%05d.jpg), so the
    ranges of one video, encoded anywhere, together hold every tile once. Tile k is the first frame at or after
    k * interval: `selected_n` counts the tiles this range has written."""
    at = first * plan.interval - range_start  # the range's first tile, in the range's own time
    tiles = (
        src.filter("select", f"gte(t,{at:g}+{plan.interval}*selected_n)")
        .filter("scale", plan.tile_width, plan.tile_height, flags="lanczos", out_color_matrix="bt601", out_range="full")
        .filter("setsar", "1")
        .filter("format", "yuvj444p")  # an intermediate: full chroma, the sheets subsample once
    )
    return ffmpeg.output(
        tiles,
        str(out_dir / TILES_DIR / TILE_PATTERN),
        f="image2",
        start_number=first,
        map_metadata=-1,
        # passthrough: the image2 muxer would otherwise repeat frames to a constant rate (one file per frame)
        **{"c:v": "mjpeg", "frames:v": count, "q:v": TILE_QUALITY, "fps_mode": "passthrough"},
    )


def sheets_output(plan: StoryboardPlan, tiles_src, out_dir: Path):
    """The sprite sheets storyboard_0.jpg, storyboard_1.jpg, ... from the tiles, `columns` x `rows` each."""
    return ffmpeg.output(
        tiles_src.filter("tile", f"{plan.columns}x{plan.rows}").filter("format", "yuv420p"),  # not 4:4:4: smaller
        str(out_dir / SPRITE_PATTERN),
        f="image2",
        start_number=0,
        map_metadata=-1,
        **{"c:v": "mjpeg", "frames:v": plan.sheets, "q:v": SPRITE_QUALITY},
    )


def fit_tiles(plan: ThumbnailPlan, frames: int) -> ThumbnailPlan:
    """The plan for the tiles the encode really wrote: a video stream ending early leaves no blank cue."""
    if frames < 1:
        raise ValueError("the encode wrote no storyboard tiles")
    return replace(plan, storyboard=replace(plan.storyboard, tiles=min(plan.storyboard.tiles, frames)))


def vtt_timestamp(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def storyboard_vtt(plan: StoryboardPlan) -> str:
    """The WebVTT thumbnail track: one cue per tile, contiguous from 0 to the duration, URIs relative to it."""
    lines = ["WEBVTT", ""]
    step = plan.interval * 1000
    for k in range(plan.tiles):
        start = k * step
        end = plan.duration_ms if k == plan.tiles - 1 else (k + 1) * step
        name, x, y, w, h = plan.tile_box(k)
        lines += [f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}", f"{name}#xywh={x},{y},{w},{h}", ""]
    return "\n".join(lines)


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame marker; ValueError if it is not a JPEG."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("corrupt JPEG marker stream")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if i + 9 > len(data):
                break
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    raise ValueError("JPEG has no start-of-frame marker")

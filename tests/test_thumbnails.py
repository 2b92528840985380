"""Poster and storyboard: the pure planner, argv and WebVTT writer without ffmpeg, the real encode on a
rotated clip, and the published images and track fetched like a browser on the real stack (Azurite)."""

import io
import re
import uuid
from fractions import Fraction
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import av
import httpx
import pytest
from azure.storage.blob import BlobServiceClient

from api.access import Signer
from api.presenters import video_read
from api.storyboard import rewrite_storyboard_vtt
from core.blobs import LocalBlobStore
from core.media_keys import POSTER_NAME, STORYBOARD_VTT, TILES_DIR
from core.probe import SourceInfo, probe
from core.settings import Settings
from schemas.tables import User, Video, VideoStatus
from tests.conftest import upload, wait_finished, wait_status
from tests.media import ffmpeg
from workers.chunks import TimeRange
from workers.command import build_range_argv, build_sheets_argv, range_playlist
from workers.ladder import plan_ladder
from workers.pipeline import Prepared, TranscodeError, make_storyboard, transcode
from workers.thumbnails import (
    MAX_TILES,
    fit_tiles,
    jpeg_size,
    plan_storyboard,
    plan_thumbnails,
    storyboard_vtt,
)

WHOLE = TimeRange(0, 0.0, None, 0, 4)

TIMING = re.compile(r"^(\d{2,}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2,}):(\d{2}):(\d{2})\.(\d{3})$")
PAYLOAD = re.compile(r"^(?P<uri>[^#\s]+)#xywh=(?P<x>\d+),(?P<y>\d+),(?P<w>\d+),(?P<h>\d+)$")


def video(width: int, height: int, duration: float = 30.0, **kw) -> SourceInfo:
    return SourceInfo(
        demuxer="mov", duration=duration, has_video=True, has_audio=True, width=width, height=height, **kw
    )


def parse_vtt(text: str) -> list[tuple[float, float, str, tuple[int, int, int, int]]]:
    """(start, end, sprite uri, (x, y, w, h)) per cue, read with no help from the module under test."""
    blocks = text.strip().split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = []
    for block in blocks[1:]:
        timing, payload = block.split("\n")
        t = TIMING.match(timing)
        p = PAYLOAD.match(payload)
        assert t and p, block
        v = [int(g) for g in t.groups()]
        start = v[0] * 3600 + v[1] * 60 + v[2] + v[3] / 1000
        end = v[4] * 3600 + v[5] * 60 + v[6] + v[7] / 1000
        cues.append((start, end, p["uri"], (int(p["x"]), int(p["y"]), int(p["w"]), int(p["h"]))))
    return cues


def assert_inside(box: tuple[int, int, int, int], sheet: tuple[int, int]) -> None:
    x, y, w, h = box
    assert min(x, y) >= 0 and w > 0 and h > 0 and x + w <= sheet[0] and y + h <= sheet[1], (box, sheet)


def assert_cues_cover(cues, duration: float) -> None:
    assert cues[0][0] == 0.0
    for (_, end, _, _), (start, _, _, _) in zip(cues, cues[1:], strict=False):
        assert start == end  # contiguous: no gap and no overlap under the scrub bar
    assert all(end > start for start, end, _, _ in cues)
    assert abs(cues[-1][1] - duration) < 0.0015


# --- planning, pure -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "interval", "tiles"),
    [(0.4, 2, 1), (5.0, 2, 3), (9.0, 2, 5), (200.0, 2, 100), (200.5, 3, 67), (600.0, 6, 100), (3600.0, 36, 100)],
)
def test_interval_keeps_at_most_a_hundred_tiles(duration, interval, tiles):
    plan = plan_storyboard(duration, 1920, 1080)
    assert (plan.interval, plan.tiles) == (interval, tiles)


@pytest.mark.parametrize("duration", [0.01, 1.999, 2.0, 2.001, 99.9, 199.999, 1234.5, 7200.0, 86399.0])
def test_every_duration_gets_few_tiles_that_span_it(duration):
    plan = plan_storyboard(duration, 1280, 720)
    assert 1 <= plan.tiles <= MAX_TILES
    assert (plan.tiles - 1) * plan.interval < duration <= plan.tiles * plan.interval + 0.0005
    assert plan.sheets == -(-plan.tiles // plan.per_sheet)


def test_short_video_gets_a_small_grid_long_video_several_sheets():
    short = plan_storyboard(5.0, 1280, 720)
    assert (short.columns, short.rows, short.sheets, short.sheet_size) == (3, 1, 1, (480, 90))
    long = plan_storyboard(3600.0, 1920, 1080)
    assert (long.columns, long.rows, long.per_sheet, long.sheets) == (10, 5, 50, 2)
    assert long.sheet_size == (1600, 450)
    assert long.sheet_names == ["storyboard_0.jpg", "storyboard_1.jpg"]
    assert long.tile_box(0) == ("storyboard_0.jpg", 0, 0, 160, 90)
    assert long.tile_box(49) == ("storyboard_0.jpg", 1440, 360, 160, 90)
    assert long.tile_box(50) == ("storyboard_1.jpg", 0, 0, 160, 90)
    assert long.tile_box(61) == ("storyboard_1.jpg", 160, 90, 160, 90)


@pytest.mark.parametrize(
    ("size", "tile"),
    [
        ((1920, 1080), (160, 90)),
        ((640, 480), (160, 120)),
        ((720, 1280), (160, 284)),  # portrait phone video
        ((1920, 804), (160, 68)),  # 2.39:1
        ((853, 479), (160, 90)),  # odd sizes still give even tiles
        ((101, 57), (100, 56)),  # never upscaled
        ((200, 2000), (32, 320)),  # very tall: boxed, aspect kept
    ],
)
def test_tiles_are_160_wide_at_the_display_aspect_with_even_sizes(size, tile):
    plan = plan_storyboard(60.0, *size)
    assert (plan.tile_width, plan.tile_height) == tile
    assert plan.tile_width % 2 == 0 and plan.tile_height % 2 == 0


def test_poster_is_early_at_the_top_rung_size_and_upright():
    src = video(1920, 1080, duration=9.0, fps=30)
    plan = plan_thumbnails(src, plan_ladder(src))
    assert plan is not None
    assert (plan.poster_at, plan.poster_width, plan.poster_height) == (0.9, 1920, 1080)
    long = video(1920, 1080, duration=3600.0, fps=30)
    assert plan_thumbnails(long, plan_ladder(long, max_height=720)).poster_at == 5.0
    phone = video(1280, 720, rotation=90, duration=5.0, fps=30)
    plan = plan_thumbnails(phone, plan_ladder(phone))
    assert (plan.poster_width, plan.poster_height) == (720, 1280)
    assert (plan.storyboard.tile_width, plan.storyboard.tile_height) == (160, 284)
    anamorphic = video(720, 576, sample_aspect=Fraction(16, 11), fps=25)
    plan = plan_thumbnails(anamorphic, plan_ladder(anamorphic))
    assert (plan.storyboard.tile_width, plan.storyboard.tile_height) == (160, 88)


def test_audio_only_source_gets_no_pictures():
    music = SourceInfo(demuxer="mp3", duration=30.0, has_video=False, has_audio=True, audio_channels=2)
    plan = plan_ladder(music)
    assert plan_thumbnails(music, plan) is None
    with pytest.raises(ValueError):
        build_range_argv(
            plan,
            WHOLE,
            Path("/a.mp3"),
            "mp3",
            Path("/o"),
            thumbnails=plan_thumbnails(video(640, 360), plan_ladder(video(640, 360))),
        )


# --- WebVTT, pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "size"), [(5.0, (1280, 720)), (9.0, (720, 1280)), (3725.5, (1920, 1080))])
def test_track_cues_cover_the_video_and_point_inside_their_sprite(duration, size):
    plan = plan_storyboard(duration, *size)
    cues = parse_vtt(storyboard_vtt(plan))
    assert len(cues) == plan.tiles
    assert_cues_cover(cues, duration)
    for start, _, uri, box in cues:
        assert uri in plan.sheet_names and "/" not in uri  # relative to the track
        assert box[2:] == (plan.tile_width, plan.tile_height)
        assert_inside(box, plan.sheet_size)
        assert start % plan.interval == 0
    boxes = [(uri, box) for _, _, uri, box in cues]
    assert len(set(boxes)) == len(boxes)


def test_track_timestamps_past_an_hour():
    plan = plan_storyboard(3725.5, 1920, 1080)
    assert (plan.interval, plan.tiles) == (38, 99)
    text = storyboard_vtt(plan)
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:38.000\nstoryboard_0.jpg#xywh=0,0,160,90\n\n")
    assert text.endswith("\n01:02:04.000 --> 01:02:05.500\nstoryboard_1.jpg#xywh=1280,360,160,90\n")


def test_fewer_tiles_than_planned_still_cover_the_video():
    src = video(1280, 720, duration=9.0, fps=30)
    plan = plan_thumbnails(src, plan_ladder(src))
    fitted = fit_tiles(plan, 4)
    assert fitted.storyboard.tiles == 4 and fitted.storyboard.sheet_size == plan.storyboard.sheet_size
    cues = parse_vtt(storyboard_vtt(fitted.storyboard))
    assert len(cues) == 4
    assert_cues_cover(cues, 9.0)
    assert fit_tiles(plan, 50).storyboard.tiles == plan.storyboard.tiles  # extra frames are never referenced
    with pytest.raises(ValueError):
        fit_tiles(plan, 0)


def test_rewrite_gives_each_cue_an_absolute_signed_url():
    text = storyboard_vtt(plan_storyboard(120.0, 1280, 720))
    prefix = "https://acct.blob.core.windows.net/streamify-media/abc/"
    rewritten = rewrite_storyboard_vtt(text, lambda name: f"{prefix}{name}?sv=2025&sp=r&sig=x%2By")
    cues = parse_vtt(rewritten)
    assert [c[:2] for c in cues] == [c[:2] for c in parse_vtt(text)]
    for _, _, uri, _ in cues:
        assert re.fullmatch(re.escape(prefix) + r"storyboard_\d\.jpg\?sv=2025&sp=r&sig=x%2By", uri), uri
    local = rewrite_storyboard_vtt(text, LocalBlobStore(Path("/nowhere"), "/media").url_for)
    assert parse_vtt(local)[0][2] == "/media/storyboard_0.jpg"


@pytest.mark.parametrize(
    "line",
    [
        "../other-video/storyboard_0.jpg#xywh=0,0,160,90",
        "https://evil.example/x.jpg#xywh=0,0,160,90",
        "storyboard_0.jpg",
        "NOTE something",
        "master.m3u8#xywh=0,0,1,1",
    ],
)
def test_rewrite_refuses_lines_it_did_not_write(line):
    text = f"WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n{line}\n"
    with pytest.raises(ValueError):
        rewrite_storyboard_vtt(text, lambda name: "signed:" + name)


# --- argv, pure -----------------------------------------------------------------------------------------


def opt(args: list[str], name: str) -> str:
    assert args.count(name) == 1, (name, args)
    return args[args.index(name) + 1]


def outputs(argv: list[str], *paths: Path) -> list[list[str]]:
    """The options of each output, in argv order: from after the previous output's path to its own path."""
    ends = [argv.index(str(p)) for p in paths]
    assert ends == sorted(ends)
    starts = [argv.index("-filter_complex") + 2, *(e + 1 for e in ends[:-1])]
    return [argv[a : b + 1] for a, b in zip(starts, ends, strict=True)]


@pytest.mark.parametrize(
    "src",
    [video(1920, 1080, fps=30), video(320, 240, fps=15), video(1280, 720, rotation=90, fps=30)],
    ids=["ladder", "single rung", "rotated"],
)
def test_thumbnails_ride_on_the_one_decode(src, tmp_path):
    plan = plan_ladder(src)
    thumbs = plan_thumbnails(src, plan)
    out_dir = tmp_path / "hls"
    assert thumbs is not None
    argv = build_range_argv(plan, WHOLE, tmp_path / "src.bin", "mov", out_dir, thumbnails=thumbs)
    assert argv.count("-i") == 1  # the source is read once, with the transcode's safe input options
    i = argv.index("-i")
    assert opt(argv[:i], "-f") == "mov" and opt(argv[:i], "-protocol_whitelist") == "file"
    assert opt(argv[:i], "-enable_drefs") == "0"
    graph = opt(argv, "-filter_complex")
    assert graph.count("[0:v:0]") == 1
    assert re.findall(r"\[0:v:0\]split=(\d+)", graph) == [str(len(plan.renditions) + 2)]
    # HLS first, so -progress and its fps describe the ladder.
    tiles_pattern = out_dir / TILES_DIR / "tile_%05d.jpg"  # a folder the publisher leaves out
    hls, poster, tiles = outputs(argv, out_dir / "%v" / range_playlist(WHOLE), out_dir / POSTER_NAME, tiles_pattern)
    assert argv[-1] == str(tiles_pattern) and opt(hls, "-f") == "hls"
    assert (opt(poster, "-f"), opt(poster, "-c:v"), opt(poster, "-update")) == ("image2", "mjpeg", "1")
    assert opt(poster, "-frames:v") == "2"  # frame 0 starts the output (and -progress), the chosen one replaces it
    assert (opt(tiles, "-f"), opt(tiles, "-c:v"), opt(tiles, "-start_number")) == ("image2", "mjpeg", "0")
    assert opt(tiles, "-frames:v") == str(thumbs.storyboard.tiles)
    assert f"select=eq(n\\,0)+gte(t\\,{thumbs.poster_at:g})*lt(prev_selected_t\\,{thumbs.poster_at:g})" in graph
    top = plan.renditions[0]
    assert f"scale={top.width}:{top.height}:flags=lanczos:out_color_matrix=bt601:out_range=full" in graph
    sb = thumbs.storyboard
    assert f"select=gte(t\\,0+{sb.interval}*selected_n)" in graph  # the first frame at or after each tile time
    assert f"scale={sb.tile_width}:{sb.tile_height}:flags=lanczos" in graph
    assert "-noautorotate" not in argv  # poster and tiles sizes are upright sizes


def test_sheets_argv_opens_the_tiles_as_warily_as_a_source(tmp_path):
    plan = plan_storyboard(3600.0, 1920, 1080)
    tiles = tmp_path / "hls" / TILES_DIR
    argv = build_sheets_argv(plan, tiles, tmp_path / "hls", ffmpeg_exe="/opt/ffmpeg")
    assert argv[0] == "/opt/ffmpeg" and argv.count("-i") == 1
    i = argv.index("-i")
    assert argv[i + 1] == f"file:{tiles.resolve()}/tile_%05d.jpg"
    assert opt(argv[:i], "-f") == "image2" and opt(argv[:i], "-protocol_whitelist") == "file"
    assert "tile=10x5" in opt(argv, "-filter_complex")
    out = argv[i + 2 :]
    assert out[-1] == str(tmp_path / "hls" / "storyboard_%d.jpg")
    assert (opt(out, "-start_number"), opt(out, "-frames:v"), opt(out, "-c:v")) == ("0", "2", "mjpeg")


def test_jpeg_size_reads_the_start_of_frame():
    app0 = b"\xff\xe0" + (16).to_bytes(2, "big") + b"JFIF\x00" + bytes(9)
    sof = b"\xff\xc0" + (17).to_bytes(2, "big") + b"\x08" + (284).to_bytes(2, "big") + (160).to_bytes(2, "big")
    jpeg = b"\xff\xd8" + app0 + b"\xff\xff" + sof + bytes(12) + b"\xff\xd9"
    assert jpeg_size(jpeg) == (160, 284)
    progressive = jpeg.replace(b"\xff\xc0", b"\xff\xc2")
    assert jpeg_size(progressive) == (160, 284)
    for bad in (b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8" + app0, b"\xff\xd8\x00\x00"):
        with pytest.raises(ValueError):
            jpeg_size(bad)


# --- API presentation -----------------------------------------------------------------------------------


def test_urls_are_given_only_for_a_ready_video_with_pictures(tmp_path):
    owner = User(email="a@example.test", display_name="A", password_hash="x")
    signer = Signer(b"s" * 32, LocalBlobStore(tmp_path, "/media"), direct_sas=False, ttl_seconds=600)

    def read(**kw):
        v = Video(owner_id=owner.id, title="t", source_key="k", source_size=1, source_format="mov", **kw)
        return v, video_read(v, [], owner=owner, viewer=None, playback=signer.grant(v, None, None))

    v, ready = read(status=VideoStatus.ready)
    assert ready.poster_url == f"/media/{v.id}/poster.jpg"
    assert ready.storyboard_url == f"/api/v1/videos/{v.id}/storyboard.vtt"
    for kw in ({"status": VideoStatus.processing}, {"status": VideoStatus.failed}, {"has_video": False}):
        _, other = read(**{"status": VideoStatus.ready, **kw})
        assert other.poster_url is None and other.storyboard_url is None


# --- the real encode ------------------------------------------------------------------------------------


def test_rotated_phone_clip_gets_upright_poster_and_sprites(clips, tmp_path):
    out = tmp_path / "hls"
    result = transcode(clips["phone"], out, Settings(data_dir=tmp_path / "data"))
    names = {p.relative_to(out).as_posix() for p in result.files}
    assert {POSTER_NAME, STORYBOARD_VTT, "storyboard_0.jpg"} <= names
    assert not (out / TILES_DIR).exists()  # the intermediate tiles are gone
    with av.open(str(out / POSTER_NAME)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (720, 1280)
    cues = parse_vtt((out / STORYBOARD_VTT).read_text())
    assert_cues_cover(cues, result.source.duration)
    sheet = jpeg_size((out / "storyboard_0.jpg").read_bytes())
    for _, _, uri, box in cues:
        assert uri == "storyboard_0.jpg" and box[2:] == (160, 284)
        assert_inside(box, sheet)


def test_many_tiles_are_laid_out_on_several_sheets(tmp_path):
    """The sheet step on its own, with tiles as the ranges write them (JPEGs numbered globally): 63 tiles of a
    126 s video at 2 s make two 10x5 sheets, the second one partly filled."""
    src = video(1280, 720, duration=126.0, fps=30)
    ladder = plan_ladder(src)
    plan = plan_thumbnails(src, ladder)
    assert plan is not None and (plan.storyboard.tiles, plan.storyboard.sheets) == (63, 2)
    out = tmp_path / "hls"
    (out / TILES_DIR).mkdir(parents=True)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=1", "-frames:v", "63", "-start_number", "0",
           "-c:v", "mjpeg", str(out / TILES_DIR / "tile_%05d.jpg"))  # fmt: skip
    make_storyboard(Prepared(src, ladder, (), plan), out / TILES_DIR, out, Settings(data_dir=tmp_path / "data"))
    assert [jpeg_size((out / f"storyboard_{i}.jpg").read_bytes()) for i in range(2)] == [(1600, 450)] * 2
    assert not (out / "storyboard_2.jpg").exists()
    cues = parse_vtt((out / STORYBOARD_VTT).read_text())
    assert len(cues) == 63
    assert_cues_cover(cues, 126.0)
    assert [c[2] for c in cues].count("storyboard_1.jpg") == 13
    assert cues[-1][2:] == ("storyboard_1.jpg", (320, 90, 160, 90))


def test_a_thumbnail_failure_is_a_readable_transcode_error(clips, tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    out = tmp_path / "hls"
    out.mkdir()
    (out / POSTER_NAME).mkdir()  # ffmpeg cannot write the poster: the encode fails, the reason says why
    with pytest.raises(TranscodeError) as failed:
        transcode(clips["silent"], out, settings)
    reason = failed.value.reason
    assert reason.startswith("ffmpeg exited with status") and "Could not open file" in reason, reason
    assert reason.endswith(str(out / POSTER_NAME))

    # The storyboard step checks what the ranges left: no tiles, or tiles that are no pictures.
    src = probe(clips["silent"])
    ladder = plan_ladder(src)
    prepared = Prepared(src, ladder, (), plan_thumbnails(src, ladder))
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    with pytest.raises(TranscodeError, match="thumbnails failed: the encode wrote no storyboard tiles"):
        make_storyboard(prepared, tiles, tmp_path, settings)
    (tiles / "tile_00000.jpg").write_bytes(b"<html>not a picture</html>")
    with pytest.raises(TranscodeError, match="thumbnails failed: sprite sheets: ffmpeg exited"):
        make_storyboard(prepared, tiles, tmp_path, settings)
    assert not (tmp_path / STORYBOARD_VTT).exists()  # no track pointing at pictures that failed


# --- the real stack -------------------------------------------------------------------------------------


def _jpeg(r: httpx.Response) -> tuple[int, int]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    with av.open(io.BytesIO(r.content), format="image2pipe") as c:  # decodes, not only a header
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == jpeg_size(r.content)
    return frame.width, frame.height


def test_poster_and_storyboard_reach_the_browser_from_azurite(stack, clips, azurite):
    source = probe(clips["720p_short"])
    with stack.client() as client:
        video_id = upload(client, clips["720p_short"], title="thumbnails").json()["id"]
        video = wait_finished(client, video_id)
        top = video["renditions"][0]

        # The poster: a read-only SAS URL on the media container, fetched with no credentials.
        poster_url = video["poster_url"]
        encode = rf"/devstoreaccount1/streamify-media/{video_id}/enc-[0-9a-f]{{32}}/poster\.jpg"
        assert re.fullmatch(encode, urlsplit(poster_url).path), poster_url  # in the published encode's folder
        assert "sig=" in poster_url and "sp=r" in poster_url
        assert _jpeg(httpx.get(poster_url)) == (top["width"], top["height"]) == (1280, 720)

        # The track comes through the API with absolute, signed sprite URLs.
        track = client.get(video["storyboard_url"])
        assert track.status_code == 200
        assert track.headers["content-type"].startswith("text/vtt")
        assert track.headers["cache-control"].startswith("public, max-age=")
        cues = parse_vtt(track.text)
        assert_cues_cover(cues, source.duration)
        sheets: dict[str, tuple[int, int]] = {}
        for _, _, uri, box in cues:
            assert urlsplit(uri).scheme == "http" and "sig=" in uri
            if uri not in sheets:
                sheets[uri] = _jpeg(httpx.get(uri))
            assert box[2:] == (160, 90)
            assert_inside(box, sheets[uri])
        assert [urlsplit(u).path.rsplit("/", 1)[1] for u in sheets] == ["storyboard_0.jpg"]
        # An anonymous viewer of a public video gets the same track.
        with stack.client(anonymous=True) as viewer:
            assert parse_vtt(viewer.get(urljoin(stack.url, video["storyboard_url"])).text)[0][:2] == (0.0, 2.0)

        media = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
            "streamify-media"
        )
        blobs = {b.name: b.content_settings for b in media.list_blobs(name_starts_with=f"{video_id}/")}
        [track_key] = [n for n in blobs if n.endswith(f"/{STORYBOARD_VTT}")]
        assert blobs[track_key].content_type == "text/vtt"
        assert blobs[track_key].cache_control == "public, max-age=86400"
        assert not [n for n in blobs if n.endswith((".nut", ".log"))]

        # Deleting the video removes the pictures with everything else.
        assert client.delete(f"/api/v1/videos/{video_id}").status_code == 204
        assert not list(media.list_blobs(name_starts_with=f"{video_id}/"))
        assert httpx.get(poster_url).status_code == 404
        assert client.get(f"/api/v1/videos/{video_id}/storyboard.vtt").status_code == 404


def test_audio_only_upload_has_no_pictures(stack, clips, azurite):
    with stack.client() as client:
        music = wait_status(client, upload(client, clips["audio"]).json()["id"])
        assert music["status"] == "ready", music["error"]
        assert music["poster_url"] is None and music["storyboard_url"] is None
        assert client.get(f"/api/v1/videos/{music['id']}/storyboard.vtt").status_code == 404
        assert client.get(f"/api/v1/videos/{uuid.uuid4()}/storyboard.vtt").status_code == 404
    media = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client("streamify-media")
    names = [b.name for b in media.list_blobs(name_starts_with=f"{music['id']}/")]
    assert names and not [n for n in names if n.endswith((".jpg", ".vtt"))]

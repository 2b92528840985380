"""build_range_argv / build_audio_argv: the ffmpeg argvs of a chunked encode, inspected without running ffmpeg."""

import math
import re
from pathlib import Path

import pytest

from core.media_keys import INIT_NAME, TILES_DIR
from core.probe import HdrTransfer, SourceInfo
from workers.chunks import TimeRange
from workers.command import AUDIO_FFMPEG_PLAYLIST, build_audio_argv, build_range_argv, range_playlist
from workers.ladder import LadderPlan, plan_ladder
from workers.thumbnails import plan_thumbnails

GLOBAL_OPTIONS = ("-hide_banner", "-nostdin", "-y")


def video(width: int, height: int, *, audio: bool = True, demuxer: str = "mov", **kw) -> SourceInfo:
    return SourceInfo(demuxer=demuxer, duration=30.0, has_video=True, has_audio=audio, width=width, height=height, **kw)


SOURCES = {
    "ladder": video(1920, 1080, fps=30, video_bitrate=8_000_000),
    "ladder 60fps": video(1920, 1080, fps=60, video_bitrate=12_000_000),
    "no audio": video(1280, 720, audio=False, fps=25),
    "rotated": video(1920, 1080, rotation=90, fps=30),
    "single rung": video(320, 240, fps=15, demuxer="matroska"),
    "single rung no audio": video(320, 240, audio=False, demuxer="matroska"),
    "audio only": SourceInfo(demuxer="mp3", duration=30.0, has_video=False, has_audio=True, audio_channels=6),
}


WHOLE = TimeRange(0, 0.0, None, 0, 4)


def build(
    src: SourceInfo, tmp_path: Path, plan: LadderPlan | None = None, rng: TimeRange = WHOLE, **kw
) -> tuple[LadderPlan, list[str]]:
    """The range argv of a source with video, the audio argv of an audio-only one."""
    plan = plan or plan_ladder(src)
    if plan.audio_only:
        return plan, build_audio_argv(plan, tmp_path / "src.bin", src.demuxer, tmp_path / "hls", **kw)
    return plan, build_range_argv(plan, rng, tmp_path / "src.bin", src.demuxer, tmp_path / "hls", **kw)


def output_path(plan: LadderPlan, tmp_path: Path) -> str:
    if plan.audio_only:
        return str(tmp_path / "hls" / "audio" / AUDIO_FFMPEG_PLAYLIST)
    return str(tmp_path / "hls" / "%v" / range_playlist(WHOLE))


def opt(argv: list[str], name: str) -> str:
    """The value of an option that must occur exactly once."""
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


def opts(argv: list[str], prefix: str) -> dict[str, str]:
    """Every `-<prefix>...` option with its value, e.g. prefix "-maxrate:v:"."""
    return {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith(prefix)}


def filter_chains(argv: list[str]) -> list[str]:
    return opt(argv, "-filter_complex").split(";")


def var_streams(argv: list[str]) -> list[dict[str, str]]:
    out = []
    for entry in opt(argv, "-var_stream_map").split(" "):
        fields = dict(part.split(":", 1) for part in entry.split(","))
        out.append(fields)
    return out


@pytest.mark.parametrize("kind", SOURCES, ids=SOURCES.keys())
def test_one_forced_format_file_only_input_after_global_options(kind, tmp_path):
    src = SOURCES[kind]
    plan, argv = build(src, tmp_path)
    assert all(isinstance(a, str) for a in argv)
    assert argv[0] == "ffmpeg"
    assert argv.count("-i") == 1
    i = argv.index("-i")
    assert argv[i + 1] == f"file:{(tmp_path / 'src.bin').resolve()}"
    before = argv[1:i]
    # The sniffed demuxer is forced and only the file protocol may be opened, both as input options.
    fmt = before.index("-f")
    assert before[fmt + 1] == src.demuxer
    wl = before.index("-protocol_whitelist")
    assert before[wl + 1] == "file"
    # Global options come before any input option.
    for g in GLOBAL_OPTIONS:
        assert g in before and before.index(g) < fmt, g
    assert before.index("-progress") < fmt and before[before.index("-progress") + 1] == "pipe:1"
    # Exactly one output, ffmpeg's own HLS playlist (never the published one), at the very end.
    assert argv[-1] == output_path(plan, tmp_path)
    assert opt(argv[i:], "-f") == "hls"


def test_mov_input_disables_external_data_references(tmp_path):
    _, argv = build(SOURCES["ladder"], tmp_path)
    i = argv.index("-i")
    assert opt(argv[:i], "-enable_drefs") == "0"


def test_other_demuxers_are_not_given_mov_options(tmp_path):
    _, argv = build(SOURCES["single rung"], tmp_path)
    assert "-enable_drefs" not in argv


@pytest.mark.parametrize("kind", SOURCES, ids=SOURCES.keys())
def test_hls_fmp4_output_without_source_metadata(kind, tmp_path):
    plan, argv = build(SOURCES[kind], tmp_path)
    out = argv[argv.index("-i") + 2 :]  # output options
    folder = "audio" if plan.audio_only else "%v"
    assert opt(out, "-hls_segment_type") == "fmp4"
    assert opt(out, "-hls_fmp4_init_filename") == INIT_NAME
    assert opt(out, "-hls_segment_filename") == str(tmp_path / "hls" / folder / "seg_%05d.m4s")
    assert "-master_pl_name" not in out  # core.hls writes the master from every part's facts
    assert "independent_segments" in opt(out, "-hls_flags")
    assert opt(out, "-map_metadata") == "-1"
    assert opt(out, "-map_chapters") == "-1"
    hls_time = int(opt(out, "-hls_time"))
    assert hls_time == plan.segment_seconds
    assert hls_time % plan.gop_seconds == 0


@pytest.mark.parametrize("kind", ["ladder", "ladder 60fps", "no audio", "rotated", "single rung"])
def test_one_video_only_variant_per_rung_named_like_the_rung(kind, tmp_path):
    plan, argv = build(SOURCES[kind], tmp_path)
    streams = var_streams(argv)
    assert [s["name"] for s in streams] == [r.name for r in plan.renditions]
    assert [s["v"] for s in streams] == [str(i) for i in range(len(plan.renditions))]
    assert all("a" not in s for s in streams)  # the audio is its own rendition (build_audio_argv)
    assert argv.count("-map") == len(plan.renditions)
    graph = opt(argv, "-filter_complex")
    assert "0:a" not in graph and "aformat" not in graph and "-c:a" not in argv


def test_range_is_cut_from_the_source_and_put_back_at_its_absolute_time(tmp_path):
    rng = TimeRange(2, 12.0, 28.0, 4, 4)
    plan, argv = build(SOURCES["ladder"], tmp_path, rng=rng)
    i = argv.index("-i")
    assert opt(argv[:i], "-ss") == "12" and opt(argv[:i], "-t") == "16"  # input seeking: decode from START
    out = argv[i + 2 :]
    assert opt(out, "-output_ts_offset") == "12"
    assert opt(out, "-avoid_negative_ts") == "disabled"  # no B-frame delay shift in range 0 alone
    assert opt(out, "-hls_segment_options") == "movflags=+frag_discont"  # tfdt carries it, not an edit list
    assert opt(out, "-start_number") == "4"  # global segment numbers
    assert opt(out, "-hls_time") == "4" and opt(out, "-hls_playlist_type") == "vod"
    assert argv[-1] == str(tmp_path / "hls" / "%v" / range_playlist(rng))


def test_ranges_after_the_first_start_the_rate_buffer_half_full(tmp_path):
    """x264 starts its VBV buffer nearly full, right at the video's start; mid-stream it gave every range a burst."""
    plan, first = build(SOURCES["ladder"], tmp_path, rng=TimeRange(0, 0.0, 4.0, 0, 2))
    assert not opts(first, "-rc_init_occupancy")
    _, later = build(SOURCES["ladder"], tmp_path, rng=TimeRange(1, 4.0, 12.0, 2, 4))
    assert opts(later, "-rc_init_occupancy:v:") == {
        f"-rc_init_occupancy:v:{i}": str(r.bufsize_kbps * 500) for i, r in enumerate(plan.renditions)
    }


def test_first_range_has_no_seek_and_short_segments_and_the_last_no_length(tmp_path):
    _, first = build(SOURCES["ladder"], tmp_path, rng=TimeRange(0, 0.0, 4.0, 0, 2))
    assert "-ss" not in first and opt(first, "-t") == "4" and opt(first, "-hls_time") == "2"
    _, last = build(SOURCES["ladder"], tmp_path, rng=TimeRange(3, 28.0, None, 8, 4))
    assert opt(last, "-ss") == "28" and "-t" not in last


@pytest.mark.parametrize("kind", ["ladder", "ladder 60fps", "no audio", "rotated", "single rung"])
def test_keyframes_on_a_fixed_time_grid(kind, tmp_path):
    plan, argv = build(SOURCES[kind], tmp_path)
    expr = opt(argv, "-force_key_frames")
    m = re.fullmatch(r"expr:gte\(t,n_forced\*(\d+(?:\.\d+)?)\)", expr)
    assert m, expr
    assert float(m.group(1)) == plan.gop_seconds
    assert opt(argv, "-sc_threshold") == "0"  # no extra keyframes at scene cuts: rungs stay aligned
    top_fps = max(r.fps for r in plan.renditions)
    assert int(opt(argv, "-g")) == math.ceil(top_fps * plan.gop_seconds)


def test_keyframe_grid_and_segment_length_follow_the_plan(tmp_path):
    src = SOURCES["ladder"]
    plan = plan_ladder(src, segment_seconds=6, gop_seconds=1)
    _, argv = build(src, tmp_path, plan=plan, rng=TimeRange(1, 6.0, 12.0, 6, 6))
    assert opt(argv, "-force_key_frames") == "expr:gte(t,n_forced*1)"
    assert opt(argv, "-hls_time") == "6"
    assert opt(argv, "-g") == "30"


@pytest.mark.parametrize("kind", ["ladder", "ladder 60fps", "no audio", "rotated", "single rung"])
def test_video_encoder_settings_per_stream(kind, tmp_path):
    plan, argv = build(SOURCES[kind], tmp_path)
    assert opt(argv, "-c:v") == "libx264"
    assert opt(argv, "-crf") == str(plan.crf)
    assert opt(argv, "-preset") == plan.preset
    assert opt(argv, "-profile:v") == "high"
    n = len(plan.renditions)
    assert opts(argv, "-maxrate:v:") == {f"-maxrate:v:{i}": f"{r.maxrate_kbps}k" for i, r in enumerate(plan.renditions)}
    assert opts(argv, "-bufsize:v:") == {f"-bufsize:v:{i}": f"{r.bufsize_kbps}k" for i, r in enumerate(plan.renditions)}
    assert len(opts(argv, "-maxrate")) == n  # no global maxrate that would override the per-rung ones


@pytest.mark.parametrize("kind", ["ladder", "ladder 60fps", "no audio", "rotated", "single rung"])
def test_filtergraph_decodes_once_and_scales_once_per_rung(kind, tmp_path):
    plan, argv = build(SOURCES[kind], tmp_path)
    graph = opt(argv, "-filter_complex")
    n = len(plan.renditions)
    splits = re.findall(r"\[0:v:0\]split=(\d+)", graph)
    if n > 1:
        assert splits == [str(n)], graph
    else:
        assert splits == [] and "split" not in graph
    assert graph.count("[0:v:0]") == 1
    scales = re.findall(r"scale=(\d+):(\d+)", graph)
    assert sorted((int(w), int(h)) for w, h in scales) == sorted((r.width, r.height) for r in plan.renditions)
    # Constant frame rate from the range's start (a VFR source, or one whose video starts late, gets even frames).
    rates = re.findall(r"fps=fps=([\d/]+):start_time=0", graph)
    assert sorted(rates) == sorted(str(r.fps) for r in plan.renditions)
    assert graph.count("setsar=1") == n
    assert graph.count("format=yuv420p") == n


@pytest.mark.parametrize("kind", ["ladder", "ladder 60fps", "rotated", "single rung", "audio only"])
def test_audio_is_one_stereo_aac_rendition_for_the_whole_file(kind, tmp_path):
    src = SOURCES[kind]
    plan = plan_ladder(src)
    argv = build_audio_argv(plan, tmp_path / "src.bin", src.demuxer, tmp_path / "hls")
    i = argv.index("-i")
    assert "-ss" not in argv and "-t" not in argv  # whole file: no seams to click at
    graph = opt(argv, "-filter_complex")
    assert graph.count("[0:a:0]") == 1 and "0:v" not in graph and "scale" not in graph
    assert "first_pts=0" in graph and "async=1" in graph  # starts at 0, silence before a late start
    assert len(re.findall(r"aformat=[^;\[]*channel_layouts=stereo", graph)) == 1 and "sample_rates=48000" in graph
    out = argv[i + 2 :]
    assert opt(out, "-c:a") == "aac" and opt(out, "-b:a") == f"{plan.audio_kbps}k" == "128k"
    # EVENT + temp_file: ffmpeg lists each segment once it is complete, so it can be published at once.
    assert opt(out, "-hls_playlist_type") == "event" and "temp_file" in opt(out, "-hls_flags")
    assert argv[-1] == str(tmp_path / "hls" / "audio" / AUDIO_FFMPEG_PLAYLIST)
    for video_opt in ("-c:v", "-force_key_frames", "-g", "-crf", "-sc_threshold", "-var_stream_map"):
        assert video_opt not in argv
    assert argv.count("-map") == 1


@pytest.mark.parametrize("kind", ["no audio", "single rung no audio"])
def test_silent_source_has_no_audio_rendition(kind, tmp_path):
    plan = plan_ladder(SOURCES[kind])
    assert plan.audio_kbps is None
    with pytest.raises(ValueError):
        build_audio_argv(plan, tmp_path / "src.bin", "mov", tmp_path / "hls")


def test_audio_only_source_has_no_video_range(tmp_path):
    plan = plan_ladder(SOURCES["audio only"])
    with pytest.raises(ValueError):
        build_range_argv(plan, WHOLE, tmp_path / "src.bin", "mp3", tmp_path / "hls")


@pytest.mark.parametrize(
    ("rng", "poster", "first_tile", "count"),
    [
        (TimeRange(0, 0.0, 2.0, 0, 2), False, 0, 1),  # tile 0 at 0 s; the poster (3 s) is later
        (TimeRange(1, 2.0, 6.0, 1, 4), True, 1, 2),  # tiles at 2 and 4 s, the poster at 3 s
        (TimeRange(2, 6.0, None, 3, 4), False, 3, 12),  # tiles 6, 8 ... 28 s
    ],
)
def test_each_range_writes_its_share_of_the_pictures(rng, poster, first_tile, count, tmp_path):
    src = SOURCES["ladder"]
    plan = plan_ladder(src)
    thumbs = plan_thumbnails(src, plan)
    assert thumbs is not None and thumbs.poster_at == 3.0 and thumbs.storyboard.interval == 2
    _, argv = build(src, tmp_path, plan=plan, rng=rng, thumbnails=thumbs)
    tiles = str(tmp_path / "hls" / TILES_DIR / "tile_%05d.jpg")
    poster_path = str(tmp_path / "hls" / "poster.jpg")
    assert (poster_path in argv) == poster
    assert argv[-1] == tiles  # the HLS output comes first, so -progress describes the ladder
    previous = poster_path if poster else str(tmp_path / "hls" / "%v" / range_playlist(rng))
    tile_opts = argv[argv.index(previous) + 1 : argv.index(tiles)]
    assert opt(tile_opts, "-start_number") == str(first_tile)  # numbered globally
    assert opt(tile_opts, "-frames:v") == str(count)
    assert opt(tile_opts, "-fps_mode") == "passthrough"  # one file per tile, never a repeated frame
    graph = opt(argv, "-filter_complex")
    assert f"split={len(plan.renditions) + 1 + poster}" in graph
    at = first_tile * 2 - rng.start
    assert f"select=gte(t\\,{at:g}+2*selected_n)" in graph


def test_rotated_source_is_scaled_to_its_upright_display_size(tmp_path):
    plan, argv = build(SOURCES["rotated"], tmp_path)
    scales = [(int(w), int(h)) for w, h in re.findall(r"scale=(\d+):(\d+)", opt(argv, "-filter_complex"))]
    assert scales and all(h > w for w, h in scales)
    assert scales[0] == (1080, 1920)
    # The scale sizes assume ffmpeg's autorotation: it must not be turned off.
    assert "-noautorotate" not in argv and "-autorotate" not in argv


@pytest.mark.parametrize(
    "name",
    [
        "my holiday video.mp4",
        'it\'s a "quoted" name.mov',
        "x.mp4; rm -rf ~ && echo $(id) `id` | tee >out",
        "-i.mp4",
        "semi;colon[0:v]split.mkv",
    ],
)
def test_paths_cannot_inject_arguments(name, tmp_path):
    src_dir = tmp_path / "up loads $HOME"
    out_dir = tmp_path / "out 'dir'; echo"
    src = src_dir / name
    plan = plan_ladder(SOURCES["ladder"])
    argv = build_range_argv(plan, WHOLE, src, "mov", out_dir)
    baseline = build_range_argv(plan, WHOLE, Path("/a.mp4"), "mov", Path("/o"))
    # Same shape: each path is one argv element, nothing was split or added.
    assert len(argv) == len(baseline)
    assert argv.count("-i") == 1
    assert argv[argv.index("-i") + 1] == f"file:{src.resolve()}"
    assert argv[-1] == str(out_dir / "%v" / range_playlist(WHOLE))
    holding_name = [a for a in argv if name in a]
    assert holding_name == [f"file:{src.resolve()}"]
    # The filtergraph never embeds a path.
    assert str(src_dir) not in opt(argv, "-filter_complex")


def test_relative_source_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = plan_ladder(SOURCES["ladder"])
    argv = build_range_argv(plan, WHOLE, Path("-y.mp4"), "mov", tmp_path / "hls")
    assert argv[argv.index("-i") + 1] == f"file:{tmp_path.resolve() / '-y.mp4'}"


def test_ffmpeg_executable_is_configurable(tmp_path):
    _, argv = build(SOURCES["ladder"], tmp_path, ffmpeg_exe="/opt/ffmpeg/bin/ffmpeg")
    assert argv[0] == "/opt/ffmpeg/bin/ffmpeg"
    assert "ffmpeg" not in argv[1:]


# Real-world sources (issue 12, finding 10): the picture is prepared once, before the split into rungs.


def prepared_chain(argv: list[str]) -> str:
    """The filters between the source stream and the split (or the single rung's fps filter)."""
    graph = opt(argv, "-filter_complex")
    end = min(i for i in (graph.find("split="), graph.find("fps=fps")) if i >= 0)
    return re.sub(r"\[s\d+\];\[s\d+\]", ",", graph[:end]).rstrip(",")  # "a[s0];[s0]b[s1];[s1]" -> "a,b"


@pytest.mark.parametrize("kind", SOURCES, ids=SOURCES.keys())
def test_progressive_sdr_sources_get_no_deinterlacer_or_tone_mapping(kind, tmp_path):
    _, argv = build(SOURCES[kind], tmp_path)
    graph = opt(argv, "-filter_complex")
    for name in ("bwdif", "yadif", "zscale", "tonemap"):
        assert name not in graph
    assert "-color_primaries" not in argv and "-color_trc" not in argv


@pytest.mark.parametrize("kind", ["ladder", "single rung"])
def test_interlaced_source_is_deinterlaced_once_before_the_rungs(kind, tmp_path):
    base = SOURCES[kind]
    src = SourceInfo(**{**base.__dict__, "interlaced": True})
    plan, argv = build(src, tmp_path, thumbnails=None)
    graph = opt(argv, "-filter_complex")
    assert graph.count("bwdif") == 1
    assert prepared_chain(argv) == "[0:v:0]bwdif=deint=interlaced:mode=send_field:parity=auto", graph
    rates = re.findall(r"fps=fps=([\d/]+)", graph)
    assert sorted(rates) == sorted(str(r.fps) for r in plan.renditions)
    assert plan.renditions[0].fps == 2 * base.fps  # one frame per field
    assert opt(argv, "-g") == str(math.ceil(plan.renditions[0].fps * plan.gop_seconds))


@pytest.mark.parametrize("transfer", list(HdrTransfer))
def test_hdr_source_is_tone_mapped_once_to_bt709_and_tagged(transfer, tmp_path):
    src = SourceInfo(**{**SOURCES["ladder"].__dict__, "hdr": transfer})
    plan, argv = build(src, tmp_path)
    chain = prepared_chain(argv)
    top = plan.renditions[0]
    # Scaled to the top rung first: the float conversions cost per pixel (a 4K source has 4x those of 1080p).
    assert chain.startswith(f"[0:v:0]scale={top.width}:{top.height}:flags=lanczos,")
    assert f",zscale=min=bt2020nc:npl=100:pin=bt2020:t=linear:tin={transfer.value}," in chain
    steps = [step.split("=")[0] for step in chain.removeprefix("[0:v:0]").split(",")]
    assert steps == ["scale", "zscale", "format", "zscale", "tonemap", "zscale", "format"], chain
    assert "tonemap=desat=0:tonemap=mobius" in chain
    assert chain.endswith("zscale=m=bt709:r=tv:t=bt709,format=yuv420p")
    assert len(re.findall(r"\]tonemap=", opt(argv, "-filter_complex"))) == 1  # once per source frame, not per rung
    # 8-bit High profile H.264 that says what it is.
    assert opt(argv, "-profile:v") == "high"
    assert (opt(argv, "-color_primaries"), opt(argv, "-color_trc"), opt(argv, "-colorspace")) == ("bt709",) * 3
    assert opt(argv, "-color_range") == "tv"
    assert opt(argv, "-filter_complex").count("format=yuv420p") == len(plan.renditions) + 1


def test_interlaced_hdr_is_deinterlaced_before_tone_mapping(tmp_path):
    src = SourceInfo(**{**SOURCES["ladder"].__dict__, "interlaced": True, "hdr": HdrTransfer.hlg})
    _, argv = build(src, tmp_path)
    chain = prepared_chain(argv)
    assert chain.index("bwdif") < chain.index("zscale") < chain.index("tonemap")


def test_chosen_streams_are_read_by_absolute_index(tmp_path):
    """Cover art skipped and the default audio track chosen by the probe: `0:1` and `0:3`, not `0:v:0`/`0:a:0`."""
    src = SourceInfo(**{**SOURCES["ladder"].__dict__, "video_stream": 1, "audio_stream": 3})
    plan, argv = build(src, tmp_path)
    graph = opt(argv, "-filter_complex")
    audio = opt(build_audio_argv(plan, tmp_path / "src.bin", "mov", tmp_path / "hls"), "-filter_complex")
    assert graph.count("[0:1]") == 1 and audio.count("[0:3]") == 1
    assert "[0:v" not in graph and "[0:a" not in audio
    assert "-map" in argv and all(not argv[i + 1].startswith("0:") for i, a in enumerate(argv) if a == "-map")


def test_audio_only_plan_reads_the_chosen_audio_track(tmp_path):
    src = SourceInfo(demuxer="mp3", duration=30.0, has_video=False, has_audio=True, audio_stream=1, audio_channels=1)
    plan, argv = build(src, tmp_path)
    graph = opt(argv, "-filter_complex")
    assert plan.audio_only and graph.startswith("[0:1]aresample=48000")
    assert "0:0" not in graph and "0:v" not in graph  # the cover (stream 0) is not read

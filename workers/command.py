"""Turn a ladder plan into one ffmpeg argv: decode once, split/scale, encode every rung, mux HLS (plus the
poster and storyboard tiles, from the same decoded frames; build_sheets_argv lays the tiles out).

Pure: builds a list of strings with ffmpeg-python and runs nothing.
"""

import math
from pathlib import Path

import ffmpeg

from core.media_keys import INIT_NAME, MASTER_NAME, MEDIA_PLAYLIST, SEGMENT_PATTERN
from workers.ladder import LadderPlan
from workers.thumbnails import StoryboardPlan, ThumbnailPlan, sheets_output, thumbnail_outputs


def _input(src: Path, demuxer: str) -> ffmpeg.nodes.FilterableStream:
    # Force the sniffed demuxer and the file protocol: ffmpeg must not probe or follow references.
    opts: dict[str, str] = {"f": demuxer, "protocol_whitelist": "file"}
    if demuxer == "mov":
        opts["enable_drefs"] = "0"
    return ffmpeg.input(f"file:{src.resolve()}", **opts)


def build_transcode_argv(
    plan: LadderPlan,
    src: Path,
    demuxer: str,
    out_dir: Path,
    *,
    ffmpeg_exe: str = "ffmpeg",
    has_audio: bool,
    thumbnails: ThumbnailPlan | None = None,
) -> list[str]:
    if thumbnails is not None and plan.audio_only:
        raise ValueError("thumbnails need a video stream")
    inp = _input(src, demuxer)
    streams: list = []
    stream_opts: dict[str, object] = {}
    variants: list[str] = []
    n = len(plan.renditions)

    if plan.audio_only:
        streams.append(_stereo(inp, plan.audio_stream))
        stream_opts.update({"c:a": "aac", "b:a": f"{plan.audio_kbps}k"})
        variants.append("a:0,name:audio")
    else:
        branches = n + (2 if thumbnails is not None else 0)
        picture = _picture(inp, plan)
        video = picture.split() if branches > 1 else None
        audio = _stereo(inp, plan.audio_stream).asplit() if has_audio and n > 1 else None
        for i, r in enumerate(plan.renditions):
            v = video.stream(i) if video is not None else picture
            v = (
                v.filter("fps", fps=str(r.fps))
                .filter("scale", r.width, r.height, flags="lanczos")
                .filter("setsar", "1")
                .filter("format", "yuv420p")
            )
            streams.append(v)
            stream_opts.update({f"maxrate:v:{i}": f"{r.maxrate_kbps}k", f"bufsize:v:{i}": f"{r.bufsize_kbps}k"})
            if has_audio:
                streams.append(audio.stream(i) if audio is not None else _stereo(inp, plan.audio_stream))
                stream_opts[f"b:a:{i}"] = f"{r.audio_kbps}k"
                variants.append(f"v:{i},a:{i},name:{r.name}")
            else:
                variants.append(f"v:{i},name:{r.name}")
        top_fps = max(r.fps for r in plan.renditions)
        stream_opts.update(
            {
                "c:v": "libx264",
                "preset": plan.preset,
                "profile:v": "high",
                "crf": plan.crf,
                # Keyframes on a time grid, identical in every rung: switching lands on aligned segments.
                "force_key_frames": f"expr:gte(t,n_forced*{plan.gop_seconds})",
                "g": math.ceil(top_fps * plan.gop_seconds),
                "sc_threshold": 0,
            }
        )
        if plan.tonemap is not None:  # say what the tone mapper made; players guess otherwise (BT.601 for SD)
            stream_opts.update(_BT709_TAGS)
        if has_audio:
            stream_opts["c:a"] = "aac"

    out = ffmpeg.output(
        *streams,
        str(out_dir / "%v" / MEDIA_PLAYLIST),
        f="hls",
        hls_time=plan.segment_seconds,
        hls_playlist_type="vod",
        hls_segment_type="fmp4",
        hls_flags="independent_segments",
        hls_fmp4_init_filename=INIT_NAME,
        hls_segment_filename=str(out_dir / "%v" / SEGMENT_PATTERN),
        master_pl_name=MASTER_NAME,
        var_stream_map=" ".join(variants),
        map_metadata=-1,  # strip creator metadata (GPS, device) from what viewers download
        map_chapters=-1,
        **stream_opts,
    )
    outputs = [out]
    if thumbnails is not None:  # after HLS, so -progress and its fps describe the ladder
        assert video is not None  # with thumbnails there are always at least three branches
        outputs += thumbnail_outputs(thumbnails, video.stream(n), video.stream(n + 1), out_dir)
    return _argv(ffmpeg_exe, ffmpeg.merge_outputs(*outputs))


def build_sheets_argv(plan: StoryboardPlan, tiles: Path, out_dir: Path, *, ffmpeg_exe: str = "ffmpeg") -> list[str]:
    """Storyboard tiles (written by the transcode) -> sprite sheets; the input is opened as warily as a source."""
    return _argv(ffmpeg_exe, sheets_output(plan, _input(tiles, "nut")["v:0"], out_dir))


def _argv(ffmpeg_exe: str, out) -> list[str]:
    # Global options go first: newer ffmpeg ignores (and warns about) options after the last output.
    return [ffmpeg_exe, "-hide_banner", "-nostdin", "-nostats", "-y", "-progress", "pipe:1", *out.get_args()]


def _source_stream(inp: ffmpeg.nodes.FilterableStream, index: int | None, kind: str):
    """The planned source stream by absolute index (`0:3`), or the first of its kind (`0:v:0`)."""
    return inp[str(index) if index is not None else f"{kind}:0"]


_BT709_TAGS = {"color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709", "color_range": "tv"}


def _picture(inp: ffmpeg.nodes.FilterableStream, plan: LadderPlan):
    """The source picture made ready for every rung (and the thumbnails): deinterlaced, tone mapped; once,
    before the split, so each filter runs once per source frame."""
    v = _source_stream(inp, plan.video_stream, "v")
    if plan.deinterlace:
        # bwdif: the motion-adaptive deinterlacer that keeps the most detail among ffmpeg's CPU ones; one frame
        # per field; parity from the stream; frames flagged progressive (mixed content) pass untouched.
        v = v.filter("bwdif", mode="send_field", parity="auto", deint="interlaced")
    if plan.tonemap is not None:
        # HDR -> SDR on the CPU (libplacebo needs a GPU): zscale to linear light (npl 100: SDR white at 1.0),
        # BT.2020 -> BT.709 primaries in float, Mobius curve (keeps what is within SDR range as it is and rolls
        # off only the highlights, measured closer to the SDR original than hable or reinhard), back to BT.709.
        # The float work costs per pixel: first scale to the top rung (a 4K phone video to 1080p, 4x fewer
        # pixels; scale passes frames through untouched when the source is that size already).
        top = plan.renditions[0]
        v = (
            v.filter("scale", top.width, top.height, flags="lanczos")
            .filter("zscale", tin=plan.tonemap.value, min="bt2020nc", pin="bt2020", t="linear", npl=100)
            .filter("format", "gbrpf32le")
            .filter("zscale", p="bt709")
            .filter("tonemap", tonemap="mobius", desat=0)
            .filter("zscale", t="bt709", m="bt709", r="tv")
            .filter("format", "yuv420p")
        )
    return v


def _stereo(inp: ffmpeg.nodes.FilterableStream, index: int | None = None):
    """AAC stereo 48 kHz whatever the layout in: aformat makes swresample down/up-mix."""
    return (
        _source_stream(inp, index, "a")
        .filter("aresample", 48000)
        .filter("aformat", sample_fmts="fltp", sample_rates=48000, channel_layouts="stereo")
    )

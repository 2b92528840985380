"""Turn a ladder plan into ffmpeg argvs: per time range, decode once, split/scale, encode every video rung, mux
HLS (plus the poster and storyboard tiles, from the same decoded frames); the audio once for the whole file;
and the sprite sheets from the tiles.

Pure: builds a list of strings with ffmpeg-python and runs nothing.
"""

import math
from collections.abc import Sequence
from pathlib import Path

import ffmpeg

from core.encoding import VideoCodec
from core.media_keys import AUDIO_NAME, INIT_NAME, SEGMENT_PATTERN, TILE_PATTERN
from workers.chunks import TimeRange
from workers.ladder import LadderPlan, VideoRendition, av1_crf
from workers.loudness import LevelPlan, Window
from workers.pertitle import TrialWindow
from workers.thumbnails import StoryboardPlan, ThumbnailPlan, poster_output, sheets_output, tiles_output


def _input(src: Path, demuxer: str, **seek: object) -> ffmpeg.nodes.FilterableStream:
    # Force the sniffed demuxer and the file protocol: ffmpeg must not probe or follow references.
    opts: dict[str, object] = {"f": demuxer, "protocol_whitelist": "file", **seek}
    if demuxer == "mov":
        opts["enable_drefs"] = "0"
    return ffmpeg.input(f"file:{src.resolve()}", **opts)


def _rung(v, r: VideoRendition, length: float | None):
    """One rung cut from the shared picture: constant frame rate (a VFR source gets evenly spaced frames, and a
    range that starts before the source's first frame gets one at its start), exactly the range's frames (fps
    stretches a last frame to its duration, which may reach past the range's end), scaled, square pixels, 4:2:0."""
    v = v.filter("fps", fps=str(r.fps), start_time=0)
    if length is not None:
        v = v.filter("trim", end=f"{length:g}")
    return v.filter("scale", r.width, r.height, flags="lanczos").filter("setsar", "1").filter("format", "yuv420p")


# Where a range after the first starts x264's VBV buffer, as a share of it. x264 starts at 0.9 (nearly full), right
# for a video's start but not mid-stream: on a source that hits a rung's cap, each range began with a burst, and
# a 60 s 1080p clip came out 3.8 % bigger chunked than in one piece; at half full, as a capped encode runs in its
# steady state, a range's bytes matched the one-piece encode's within 1 % (measured on /tmp/exp/src60.mp4).
MID_STREAM_VBV_FILL = 0.5


def _av1_opts(i: int, r: VideoRendition, plan: LadderPlan) -> dict[str, object]:
    """An AV1 rung's encoder: SVT-AV1 in capped CRF (its CRF, with -maxrate/-bufsize as its peak: libsvtav1 passes
    them on as SVT-AV1's `mbr` and buffer size), 8-bit main profile. They override the x264 options given to every
    stream (ffmpeg-python writes options sorted, so `-crf:v:3` follows `-crf`, and the later match wins).
    Keyframes: the shared -force_key_frames grid makes each grid frame a KEY frame (libsvtav1 always enables
    SVT-AV1's forced key frames), closed GOP (libsvtav1's default `+cgop` flag: irefresh-type 2), -g as the
    intra period and scene-change detection off (SVT-AV1's default): nothing in a segment refers across its start,
    so ranges encoded apart join like the H.264 ones."""
    return {
        f"c:v:{i}": "libsvtav1",
        f"preset:v:{i}": plan.svtav1_preset,
        f"crf:v:{i}": r.crf if r.crf is not None else av1_crf(plan.crf),
        f"profile:v:{i}": "main",
    }


def _video_opts(plan: LadderPlan, mid_stream: bool) -> dict[str, object]:
    opts: dict[str, object] = {}
    for i, r in enumerate(plan.renditions):
        opts.update({f"maxrate:v:{i}": f"{r.maxrate_kbps}k", f"bufsize:v:{i}": f"{r.bufsize_kbps}k"})
        if r.codec == VideoCodec.av1:
            opts.update(_av1_opts(i, r, plan))
            continue
        if r.crf is not None and r.crf != plan.crf:  # per-title: this rung's own rate control
            opts[f"crf:v:{i}"] = r.crf
        if mid_stream:
            opts[f"rc_init_occupancy:v:{i}"] = int(r.bufsize_kbps * 1000 * MID_STREAM_VBV_FILL)
    top_fps = max(r.fps for r in plan.renditions)
    opts.update(
        {
            "c:v": "libx264",
            "preset": plan.preset,
            "profile:v": "high",
            "crf": plan.crf,
            # Keyframes on a time grid, identical in every rung (switching lands on aligned segments) and in
            # every range: each range starts on the grid, so its relative grid is the absolute one.
            "force_key_frames": f"expr:gte(t,n_forced*{plan.gop_seconds})",
            "g": math.ceil(top_fps * plan.gop_seconds),
            "sc_threshold": 0,
        }
    )
    if plan.tonemap is not None:  # say what the tone mapper made; players guess otherwise (BT.601 for SD)
        opts.update(_BT709_TAGS)
    return opts


_HLS_FMP4 = {"f": "hls", "hls_playlist_type": "vod", "hls_segment_type": "fmp4", "hls_fmp4_init_filename": INIT_NAME}
_NO_METADATA = {"map_metadata": -1, "map_chapters": -1}  # strip creator metadata (GPS, device) from the output


def range_playlist(rng: TimeRange) -> str:
    """ffmpeg's own playlist of one range (read for the segment list, then removed): never the published one."""
    return f"range_{rng.index:05d}.m3u8"


def build_range_argv(
    plan: LadderPlan,
    rng: TimeRange,
    src: Path,
    demuxer: str,
    out_dir: Path,
    *,
    ffmpeg_exe: str = "ffmpeg",
    thumbnails: ThumbnailPlan | None = None,
    duration: float | None = None,
) -> list[str]:
    """One time range of every video rung (no audio: encode_audio does it once for the whole file), plus the
    range's share of the poster and storyboard tiles from the same decode.

    Input seeking (-ss before -i) decodes from the keyframe before START and drops what precedes it, so an open
    or long GOP costs decode time, never a wrong frame. -output_ts_offset puts the range back at its absolute
    time; frag_discont writes that time into each fragment's tfdt (not an edit list), and -avoid_negative_ts
    disabled keeps range 0 from being shifted by the B-frame delay, so ranges encoded apart join frame-exactly
    and their init segments are byte-identical. -start_number gives the segments their global numbers.
    The last range ends at `duration` (the source's, when given), like the others at their end: a variable-rate
    source's last frame would otherwise be stretched to its own duration and give a frame past the end.
    """
    if plan.audio_only:
        raise ValueError("an audio-only source has no video ranges")
    seek: dict[str, object] = {}
    if rng.start > 0:
        seek["ss"] = f"{rng.start:g}"
    end = rng.end if rng.end is not None else duration
    if end is not None:
        seek["t"] = f"{end - rng.start:g}"
    inp = _input(src, demuxer, **seek)
    n = len(plan.renditions)
    tiles = _range_tiles(thumbnails, rng) if thumbnails is not None else None
    poster = (
        thumbnails is not None
        and rng.start <= thumbnails.poster_at
        and (rng.end is None or thumbnails.poster_at < rng.end)
    )
    branches = n + (tiles is not None) + poster
    picture = _picture(inp, plan)
    video = picture.split() if branches > 1 else None
    length = end - rng.start if end is not None else None
    streams = [
        _rung(video.stream(i) if video is not None else picture, r, length) for i, r in enumerate(plan.renditions)
    ]
    out = ffmpeg.output(
        *streams,
        str(out_dir / "%v" / range_playlist(rng)),
        hls_time=rng.segment_seconds,
        hls_flags="independent_segments",
        hls_segment_options="movflags=+frag_discont",
        hls_segment_filename=str(out_dir / "%v" / SEGMENT_PATTERN),
        start_number=rng.first_segment,
        output_ts_offset=f"{rng.start:g}",
        avoid_negative_ts="disabled",
        var_stream_map=" ".join(f"v:{i},name:{r.name}" for i, r in enumerate(plan.renditions)),
        **_HLS_FMP4,
        **_NO_METADATA,
        **_video_opts(plan, mid_stream=rng.start > 0),
    )
    outputs = [out]  # HLS first, so -progress and its fps describe the ladder
    branch = n
    if poster:
        assert thumbnails is not None and video is not None
        outputs.append(poster_output(thumbnails, video.stream(branch), out_dir, thumbnails.poster_at - rng.start))
        branch += 1
    if tiles is not None:
        assert thumbnails is not None and video is not None
        first, count = tiles
        outputs.append(tiles_output(thumbnails.storyboard, video.stream(branch), out_dir, first, count, rng.start))
    return _argv(ffmpeg_exe, ffmpeg.merge_outputs(*outputs))


def build_trial_argv(
    plan: LadderPlan, src: Path, demuxer: str, out_dir: Path, *, windows: Sequence[TrialWindow],
    sizes: Sequence[tuple[int, int]], crf: int, ffmpeg_exe: str = "ffmpeg", max_pixels: int | None = None,
    reference: bool = False,
) -> list[str]:  # fmt: skip
    """The per-title trial (workers.pertitle): a few short windows of the source, each from the keyframe at or
    before its start (-noaccurate_seek: no decoding of frames that are then thrown away, whatever the source's
    GOP), made ready as for the ladder, joined, and encoded at each of `sizes` with the real preset at `crf`,
    a keyframe at each window's start, into out_dir/trial_<w>x<h>.mp4. Every input is opened as warily as the
    ranges open the source, with the decoders' pixel cap on each (-max_pixels is an option of one input).
    `reference`: also the joined pictures at the larger size, lossless (out_dir/TRIAL_REFERENCE), for the AV1
    trial to encode and to be measured against."""
    if plan.audio_only or not sizes:
        raise ValueError("a trial needs a video ladder and at least one size")
    fps = plan.renditions[0].fps
    pictures = []
    for w in windows:
        opts: dict[str, object] = {"ss": f"{w.start:g}", "t": f"{w.seconds:g}", "noaccurate_seek": None}
        if max_pixels is not None:
            opts["max_pixels"] = max_pixels
        frames = max(1, round(w.seconds * fps))
        v = _picture(_input(src, demuxer, **opts), plan).filter("fps", fps=str(fps))
        v = v.filter("trim", end_frame=frames).filter("setpts", "PTS-STARTPTS")
        pictures.append(
            v.filter("scale", *sizes[-1], flags="lanczos").filter("setsar", "1").filter("format", "yuv420p")
        )
    joined = ffmpeg.concat(*pictures, v=1, a=0) if len(pictures) > 1 else pictures[0]
    branches = len(sizes) + reference
    split = joined.split() if branches > 1 else None
    window_frames = trial_window_frames(plan, windows)
    outputs = []
    if reference and split is not None:
        ref = split.stream(len(sizes))
        outputs.append(ffmpeg.output(ref, str(out_dir / TRIAL_REFERENCE), an=None, f="nut", **{"c:v": "ffv1"}))
    for i, (width, height) in enumerate(sizes):
        v = split.stream(i) if split is not None else joined
        if (width, height) != sizes[-1]:
            v = v.filter("scale", width, height, flags="lanczos").filter("setsar", "1")
        outputs.append(
            ffmpeg.output(
                v,
                str(out_dir / trial_file(width, height)),
                an=None,
                **{"c:v": "libx264", "preset": plan.preset, "profile:v": "high", "crf": crf},
                force_key_frames=f"expr:eq(mod(n,{window_frames}),0)",
                g=window_frames * len(windows),
                sc_threshold=0,
                **_NO_METADATA,
            )
        )
    return _argv(ffmpeg_exe, ffmpeg.merge_outputs(*outputs))


def trial_file(width: int, height: int) -> str:
    return f"trial_{width}x{height}.mp4"


TRIAL_REFERENCE = "trial_reference.nut"


def trial_window_frames(plan: LadderPlan, windows: Sequence[TrialWindow]) -> int:
    """Frames per trial window: each starts with a keyframe."""
    return max(1, round(min(w.seconds for w in windows) * plan.renditions[0].fps))


def build_reference_trial_argv(
    plan: LadderPlan, out_dir: Path, out_name: str, *, windows: Sequence[TrialWindow], encoder: dict[str, object],
    ffmpeg_exe: str = "ffmpeg",
) -> list[str]:  # fmt: skip
    """A trial of the AV1 match (workers.pertitle.av1_match): the trial's lossless reference pictures encoded with
    `encoder` (codec, preset, CRF; capped nowhere: it measures what the CRF costs), keyframes where the H.264
    trial has them, into out_dir/out_name."""
    frames = trial_window_frames(plan, windows)
    v = _input(out_dir / TRIAL_REFERENCE, "nut")["v:0"]
    out = ffmpeg.output(
        v,
        str(out_dir / out_name),
        an=None,
        **encoder,
        force_key_frames=f"expr:eq(mod(n,{frames}),0)",
        g=frames * len(windows),
        **_NO_METADATA,
    )
    return _argv(ffmpeg_exe, out)


def av1_trial_encoder(crf: int, preset: int) -> dict[str, object]:
    return {"c:v": "libsvtav1", "preset": preset, "crf": crf, "profile:v": "main"}


def h264_trial_encoder(crf: int, preset: str) -> dict[str, object]:
    return {"c:v": "libx264", "preset": preset, "crf": crf, "profile:v": "high", "sc_threshold": 0}


def av1_trial_file(crf: int) -> str:
    return f"av1_trial_{crf}.mp4"


def _range_tiles(thumbnails: ThumbnailPlan, rng: TimeRange) -> tuple[int, int] | None:
    """(first tile, count) of the storyboard tiles whose time k * interval falls in the range; None if none."""
    sb = thumbnails.storyboard
    first = math.ceil(rng.start / sb.interval - 1e-9)
    stop = sb.tiles if rng.end is None else min(sb.tiles, math.ceil(rng.end / sb.interval - 1e-9))
    return (first, stop - first) if stop > first else None


def build_audio_argv(
    plan: LadderPlan, src: Path, demuxer: str, out: Path, *, ffmpeg_exe: str = "ffmpeg", level: LevelPlan | None = None
) -> list[str]:
    """The one audio rendition, for the whole file: AAC has no keyframes to cut at, so audio encoded in ranges
    would click at every seam. EVENT type and temp_file make ffmpeg rewrite its playlist after each segment
    is complete (a VOD playlist is written only at the end), so the caller can publish segments as they land.
    `level`: the loudness normalization (workers.loudness) applied to the stereo downmix before the encoder."""
    if plan.audio_kbps is None:
        raise ValueError("the source has no audio")
    stream = _stereo(_input(src, demuxer), plan.audio_stream)
    if level is not None:
        stream = _leveled(stream, level)
    hls = ffmpeg.output(
        stream,
        str(out / AUDIO_NAME / AUDIO_FFMPEG_PLAYLIST),
        hls_time=plan.segment_seconds,
        hls_flags="+temp_file+independent_segments",
        hls_segment_filename=str(out / AUDIO_NAME / SEGMENT_PATTERN),
        **{**_HLS_FMP4, "hls_playlist_type": "event"},
        **_NO_METADATA,
        **{"c:a": "aac", "b:a": f"{plan.audio_kbps}k"},
    )
    return _argv(ffmpeg_exe, hls)


AUDIO_FFMPEG_PLAYLIST = "ffmpeg.m3u8"  # ffmpeg's growing playlist; the published audio/index.m3u8 is core.hls's


def _leveled(stream, level: LevelPlan):
    """A constant gain (volume), then a lookahead peak limiter when the plan has one. alimiter: `level` off (its
    default raises the output to the limit: a second, moving gain), `latency` on (its lookahead delay is taken
    back, so the audio stays in sync with the video), 5 ms attack and 50 ms release (ffmpeg's defaults: short
    enough that only the transients over the ceiling are touched)."""
    if level.gain_db != 0:
        stream = stream.filter("volume", f"{level.gain_db:.2f}dB")
    if level.limit_dbfs is not None:
        stream = stream.filter("alimiter", limit=f"{10 ** (level.limit_dbfs / 20):.4f}", level=0, latency=1)
    return stream


def build_loudness_argv(
    plan: LadderPlan, src: Path, demuxer: str, windows: tuple[Window, ...] | None, *, ffmpeg_exe: str = "ffmpeg"
) -> list[str]:
    """Measure the audio exactly as build_audio_argv will encode it (the same stream, the same 48 kHz stereo
    downmix) with ebur128 (integrated loudness, LRA, true peak), into a null output: ffmpeg prints the summary
    that workers.loudness.parse_ebur128 reads. `windows`: measure only these stretches (input seeking, one
    input each, joined), for a file too long to measure whole before its audio starts."""
    if plan.audio_kbps is None:
        raise ValueError("the source has no audio")
    if windows is None:
        stream = _stereo(_input(src, demuxer), plan.audio_stream)
    else:
        parts = [
            _stereo(_input(src, demuxer, ss=f"{w.start:g}", t=f"{w.length:g}"), plan.audio_stream) for w in windows
        ]
        stream = ffmpeg.concat(*parts, v=0, a=1) if len(parts) > 1 else parts[0]
    # framelog=verbose: the 10 lines a second of momentary loudness stay out of the log; the summary stays in.
    measured = stream.filter("ebur128", peak="true", framelog="verbose")
    return _argv(ffmpeg_exe, ffmpeg.output(measured, "-", f="null"))


def build_sheets_argv(plan: StoryboardPlan, tiles_dir: Path, out_dir: Path, *, ffmpeg_exe: str = "ffmpeg") -> list[str]:
    """Storyboard tiles (JPEGs written by the ranges) -> sprite sheets; opened as warily as a source."""
    inp = _input(tiles_dir / TILE_PATTERN, "image2", start_number=0)
    return _argv(ffmpeg_exe, sheets_output(plan, inp["v:0"], out_dir))


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
    """AAC stereo 48 kHz whatever the layout in: aformat makes swresample down/up-mix. async/first_pts: the
    rendition starts at 0 with silence when the source's audio starts later, so it lines up with the video."""
    return (
        _source_stream(inp, index, "a")
        .filter("aresample", 48000, first_pts=0, **{"async": 1})
        .filter("aformat", sample_fmts="fltp", sample_rates=48000, channel_layouts="stereo")
    )

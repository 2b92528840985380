"""Downloads, the pure parts: which stored files make a rendition's stream, the remux command (copy only, local
files only, ISO BMFF only, faststart), and which rung and rows a downloads choice means (core.downloads)."""

import uuid
from pathlib import Path

import pytest

from core.downloads import choose_rendition, h264_rungs, planned_rungs, wanted_rows
from core.errors import Refusal, Refused
from schemas.tables import DownloadKind, DownloadState, Rendition, Video
from workers.remux import BadPlaylist, build_remux_argv, rendition_files

PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="3f2a9c1d0e4b.init.mp4"
#EXTINF:4.000,
3f2a9c1d0e4b.seg_00000.m4s
#EXTINF:4.000,
77aa00bb11cc.seg_00001.m4s
#EXTINF:1.500,
77aa00bb11cc.seg_00002.m4s
#EXT-X-ENDLIST
"""


def test_rendition_files_are_the_init_then_the_segments_in_playlist_order():
    files = rendition_files(PLAYLIST)
    assert files.init == "3f2a9c1d0e4b.init.mp4"
    assert files.names == (
        "3f2a9c1d0e4b.init.mp4",
        "3f2a9c1d0e4b.seg_00000.m4s",
        "77aa00bb11cc.seg_00001.m4s",
        "77aa00bb11cc.seg_00002.m4s",
    )
    # Encodes from before per-attempt tags name plain files.
    assert rendition_files('#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4,\nseg_00000.m4s\n').segments == ("seg_00000.m4s",)


@pytest.mark.parametrize(
    "name",
    ["../other/seg_00001.m4s", "http://169.254.169.254/x.m4s", "/etc/passwd", "sub/seg.m4s", "seg.m3u8", ".m4s",
     "file:seg.m4s", "seg_00001.m4s?x=1"],
)  # fmt: skip
def test_a_playlist_naming_anything_but_its_own_segment_files_is_refused(name):
    with pytest.raises(BadPlaylist, match="not a segment file"):
        rendition_files(f'#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4,\n{name}\n')
    with pytest.raises(BadPlaylist):
        rendition_files(f'#EXT-X-MAP:URI="{name}"\n#EXTINF:4,\nseg_00000.m4s\n')


def test_a_playlist_without_init_or_segments_or_with_two_inits_is_refused():
    for text in ("#EXTM3U\nseg_00000.m4s\n", '#EXT-X-MAP:URI="init.mp4"\n#EXT-X-ENDLIST\n',
                 '#EXT-X-MAP:URI="a.mp4"\n#EXT-X-MAP:URI="b.mp4"\nseg_00000.m4s\n'):  # fmt: skip
        with pytest.raises(BadPlaylist):
            rendition_files(text)


def _inputs(argv: list[str]) -> list[list[str]]:
    """The options of each input: what comes after the previous -i (or the globals) up to and with its -i."""
    out, current = [], []
    for i, arg in enumerate(argv):
        current.append(arg)
        if argv[i - 1] == "-i":
            out.append(current)
            current = []
    return out


def test_remux_copies_the_rung_and_the_audio_into_a_faststart_mp4_and_the_audio_into_an_m4a(tmp_path: Path):
    video, audio = tmp_path / "video.mp4", tmp_path / "audio.mp4"
    mp4, m4a = tmp_path / "out.mp4", tmp_path / "out.m4a"
    argv = build_remux_argv(video, audio, mp4, m4a, ffmpeg_exe="/usr/bin/ffmpeg")
    assert argv[0] == "/usr/bin/ffmpeg" and "-nostdin" in argv and argv[argv.index("-progress") + 1] == "pipe:1"
    inputs = _inputs(argv)
    assert [i[-1] for i in inputs] == [f"file:{video}", f"file:{audio}"]
    for opts in inputs:  # every input hardened the same way
        pairs = dict(zip(opts[-10::2], opts[-9::2], strict=True))
        assert pairs == {"-protocol_whitelist": "file", "-format_whitelist": "mov,mp4,m4a,3gp,3g2,mj2", "-f": "mov",
                         "-enable_drefs": "0", "-i": opts[-1]}  # fmt: skip
    tail = argv[argv.index(f"file:{audio}") + 1 :]
    first = tail[: tail.index(f"file:{mp4}") + 1]
    second = tail[len(first) :]
    assert first == ["-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1",
                     "-movflags", "+faststart", "-f", "mp4", f"file:{mp4}"]  # fmt: skip
    assert second == ["-map", "1:a:0", "-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1",
                      "-movflags", "+faststart", "-f", "ipod", f"file:{m4a}"]  # fmt: skip
    assert not any(a.startswith(("-c:v", "-c:a", "-vf", "-af", "-filter")) for a in argv)  # nothing re-encoded


def test_remux_without_sound_makes_the_mp4_of_the_picture_and_without_picture_the_m4a_alone(tmp_path: Path):
    video, audio, mp4, m4a = (tmp_path / n for n in ("v.mp4", "a.mp4", "o.mp4", "o.m4a"))
    silent = build_remux_argv(video, None, mp4, None)
    assert silent.count("-i") == 1 and silent[silent.index("-map") : silent.index("-map") + 2] == ["-map", "0:v:0"]
    assert "1:a:0" not in silent and "0:a:0" not in silent and silent[-1] == f"file:{mp4}"
    audio_only = build_remux_argv(None, audio, None, m4a)
    assert audio_only.count("-i") == 1 and audio_only[audio_only.index("-map") :][:2] == ["-map", "0:a:0"]
    assert audio_only[-3:] == ["-f", "ipod", f"file:{m4a}"]
    with pytest.raises(ValueError, match="needs the video rung"):
        build_remux_argv(None, audio, mp4, m4a)
    with pytest.raises(ValueError, match="needs the audio"):
        build_remux_argv(video, None, mp4, m4a)


def _rendition(name: str, height: int | None, bandwidth: int, codecs: str) -> Rendition:
    return Rendition(name=name, height=height, bandwidth=bandwidth, average_bandwidth=bandwidth, codecs=codecs,
                     playlist_key=f"x/{name}/index.m3u8")  # fmt: skip


def test_the_rungs_offered_are_the_h264_ones_best_first():
    rows = [
        _rendition("360p", 360, 800_000, "avc1.64001e"),
        _rendition("audio", None, 128_000, "mp4a.40.2"),
        _rendition("720p-av1", 720, 1_500_000, "av01.0.05M.08"),
        _rendition("720p", 720, 3_000_000, "avc1.64001f"),
    ]
    assert h264_rungs(rows) == ["720p", "360p"]
    plan = {"renditions": [{"name": "360p", "height": 360, "codec": "h264"}, {"name": "720p", "height": 720,
            "codec": "h264"}, {"name": "720p-av1", "height": 720, "codec": "av1"}]}  # fmt: skip
    assert planned_rungs(plan) == ["720p", "360p"]
    assert planned_rungs(None) is None and planned_rungs({}) is None


def test_choosing_a_rung():
    rungs = ["720p", "360p"]
    assert choose_rendition(None, rungs, has_video=True) == "720p"  # the top H.264 rung by default
    assert choose_rendition("360p", rungs, has_video=True) == "360p"
    with pytest.raises(Refused) as bad:
        choose_rendition("1080p", rungs, has_video=True)
    assert bad.value.reason == Refusal.invalid and "'1080p'" in bad.value.detail and "720p, 360p" in bad.value.detail
    with pytest.raises(Refused) as av1:
        choose_rendition("720p-av1", rungs, has_video=True)
    assert av1.value.reason == Refusal.invalid
    assert choose_rendition(None, None, has_video=True) is None  # made with the top rung once it is known
    with pytest.raises(Refused) as early:
        choose_rendition("360p", None, has_video=True)
    assert early.value.reason == Refusal.conflict and "not planned yet" in early.value.detail
    with pytest.raises(Refused) as no_picture:
        choose_rendition("360p", None, has_video=False)
    assert no_picture.value.reason == Refusal.invalid and "no picture" in no_picture.value.detail


def _video(**kw) -> Video:
    return Video(id=uuid.uuid4(), owner_id=uuid.uuid4(), title="t", source_key="k", source_size=1,
                 source_format="mp4", **kw)  # fmt: skip


def test_the_rows_wanted_follow_the_streams_and_a_rung_a_new_ladder_lacks_fails_its_row():
    both = wanted_rows(_video(), "720p", ["720p", "360p"])
    assert [(r.kind, r.rendition, r.state) for r in both] == [
        (DownloadKind.video, "720p", DownloadState.pending),
        (DownloadKind.audio, "audio", DownloadState.pending),
    ]
    assert [r.kind for r in wanted_rows(_video(has_audio=False), "720p", ["720p"])] == [DownloadKind.video]
    assert [r.kind for r in wanted_rows(_video(has_video=False), None, [])] == [DownloadKind.audio]
    gone = wanted_rows(_video(download_rendition="1080p"), "1080p", ["720p"])[0]
    assert gone.state == DownloadState.failed and gone.error == "1080p is not in this video's ladder"
    early = wanted_rows(_video(), None, None)[0]  # enabled while the ladder is not planned: pending, rung unknown
    assert early.state == DownloadState.pending and early.rendition is None

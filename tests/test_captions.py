"""Caption files in (WebVTT, SRT; hostile ones too) -> clean WebVTT out; captions -> HLS master/subtitle text.
Pure functions: no services."""

import io
import uuid

import m3u8
import pytest
import webvtt

from api.captions import (
    MAX_CAPTION_BYTES,
    MAX_CUE_CHARS,
    MAX_CUES,
    clean_label,
    default_label,
    normalize_language,
    parse_captions,
)
from api.errors import status_for
from api.subtitles import (
    GROUP_ID,
    SubtitleRendition,
    playlist_uri,
    renditions_for,
    subtitle_playlist,
    with_subtitles,
)
from core.blobs import LocalBlobStore
from core.errors import Refused
from core.media_keys import caption_key
from schemas.tables import Caption
from tests.test_master import FACTS, MASTER
from workers.job import clear_encodes

SRT = (
    '1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Olá,\r\nmundo</i> {\\an8}<font color="red">vermelho</font>\r\n\r\n'
    "2\r\n00:00:03,000 --> 00:00:04,000\r\nTom &amp; Jerry\r\n"
)


def reparse(vtt: str) -> list[webvtt.Caption]:
    """What a WebVTT reader makes of the output: it must be valid WebVTT with exactly the cues we meant."""
    return webvtt.from_buffer(io.StringIO(vtt)).captions


def refused(data: bytes) -> Refused:
    with pytest.raises(Refused) as info:
        parse_captions(data)
    return info.value


# --- parsing and cleaning ------------------------------------------------------------------------------


def test_srt_becomes_webvtt_with_its_cues_text_and_italics():
    clean = parse_captions(SRT.encode())
    assert clean.source_format == "srt" and clean.cue_count == 2
    assert clean.vtt.startswith("WEBVTT\n")
    cues = reparse(clean.vtt)
    assert [(c.start, c.end) for c in cues] == [("00:00:01.000", "00:00:02.500"), ("00:00:03.000", "00:00:04.000")]
    # Italics spanning two lines survive; SSA overrides and <font> go, their text stays.
    assert cues[0].raw_text == "<i>Olá,\nmundo</i> vermelho"
    assert cues[1].raw_text == "Tom &amp; Jerry" and cues[1].text == "Tom &amp; Jerry"


def test_webvtt_keeps_timings_and_valid_settings_but_drops_styles_regions_notes_and_ids():
    source = (
        "WEBVTT - a title\n\nSTYLE\n::cue { background: url(https://evil.test/x) }\n\n"
        "REGION\nid:r width:40%\n\nNOTE a note\n\n"
        "intro\n00:00.500 --> 00:02.000 region:r line:0 align:start position:bogus\n"
        "<v Bob>Hi <c.red>there</c>, <b.loud>you</b>\n"
    )
    clean = parse_captions(source.encode())
    assert clean.source_format == "vtt"
    for gone in ("STYLE", "evil.test", "REGION", "NOTE", "intro", "region:", "bogus", "<v", "<c"):
        assert gone not in clean.vtt
    (cue,) = reparse(clean.vtt)
    assert (cue.start, cue.end) == ("00:00:00.500", "00:00:02.000")
    assert str(cue.settings) == "line:0 align:start"
    assert cue.raw_text == "Hi there, <b>you</b>"


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(document.cookie)</script>",
        "<SCRIPT src=//evil.test/x.js></SCRIPT >",
        "<style>video { display: none }</style>",
        '<img src=x onerror="alert(1)">',
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "<iframe srcdoc='<script>alert(1)</script>'>",
        "<a href=javascript:alert(1)>click</a>",
        "<b onclick=alert(1)>bold</b>",
    ],
)
def test_markup_in_cue_text_cannot_reach_a_player_as_markup(hostile):
    clean = parse_captions(f"WEBVTT\n\n00:00.000 --> 00:01.000\nbefore {hostile} after\n".encode())
    (cue,) = reparse(clean.vtt)
    lowered = cue.raw_text.lower()
    for tag in ("<script", "<style", "<img", "<iframe", "<a ", "onclick", "onerror"):
        assert tag not in lowered, cue.raw_text
    # The only markup left is what WebVTT itself defines and renders harmlessly.
    assert cue.raw_text.replace("<b>", "").replace("</b>", "").count("<") == 0
    assert cue.raw_text.startswith("before") and cue.raw_text.endswith("after")
    assert "alert(document.cookie)" not in cue.raw_text  # a script's body goes with it


def test_srt_text_that_looks_like_a_timing_line_cannot_add_cues():
    """SRT text may hold '-->' (WebVTT's cue separator): escaped, it stays text of the same cue."""
    source = "1\n00:00:00,000 --> 00:00:01,000\na < b, and --> arrows, <3\n00:00:05,000 --> 00:00:06,000 x\n"
    clean = parse_captions(source.encode())
    cues = reparse(clean.vtt)
    assert len(cues) == 1 == clean.cue_count
    assert cues[0].raw_text == "a &lt; b, and --&gt; arrows, &lt;3\n00:00:05,000 --&gt; 00:00:06,000 x"


def test_blank_and_tag_only_lines_never_split_a_cue():
    source = "1\n00:00:01,000 --> 00:00:02,000\n<i></i>\nline one\n<font>  </font>\nline two\n"
    cues = reparse(parse_captions(source.encode()).vtt)
    assert len(cues) == 1 and cues[0].raw_text == "line one\nline two"


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param(SRT.encode("utf-8-sig"), id="utf-8 with BOM"),
        pytest.param(SRT.encode("utf-16"), id="utf-16 with BOM (little-endian)"),
        pytest.param(b"\xfe\xff" + SRT.encode("utf-16-be"), id="utf-16 big-endian with BOM"),
        pytest.param(SRT.replace("\r\n", "\r").encode(), id="old Mac line ends"),
    ],
)
def test_encodings_and_line_ends_editors_save(encoded):
    cues = reparse(parse_captions(encoded).vtt)
    assert cues[0].raw_text.startswith("<i>Olá,") and len(cues) == 2


def test_timestamps_past_an_hour_survive():
    source = "1\n01:02:03,456 --> 01:02:05,000\nlate\n\n2\n100:00:00,000 --> 100:00:01,500\nvery late\n"
    cues = reparse(parse_captions(source.encode()).vtt)
    assert [(c.start, c.end) for c in cues] == [("01:02:03.456", "01:02:05.000"), ("100:00:00.000", "100:00:01.500")]


def test_cues_come_out_in_start_order_and_empty_or_zero_length_ones_are_dropped():
    source = (
        "WEBVTT\n\n00:05.000 --> 00:06.000\nsecond\n\n00:01.000 --> 00:02.000\nfirst\n\n"
        "00:03.000 --> 00:04.000\n<i> </i>\n\n00:07.000 --> 00:07.000\nnever shown\n"
    )
    clean = parse_captions(source.encode())
    assert [c.text for c in reparse(clean.vtt)] == ["first", "second"] and clean.cue_count == 2


def test_digest_follows_the_content():
    a, b = parse_captions(SRT.encode()), parse_captions(SRT.encode("utf-16"))
    c = parse_captions(SRT.replace("mundo", "world").encode())
    assert a.digest == b.digest != c.digest and len(a.digest) == 16


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 422, "empty"),
        (b"  \n\n", 422, "empty"),
        ("1\n00:00:01,000 --> 00:00:02,000\nação\n".encode("latin-1"), 422, "UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 422, "UTF-8"),
        (b"WEBVTT\n\n00:00.000 --> 00:01.000\nnul\x00byte\n", 422, "binary"),
        (b"Hello, this is a letter, not subtitles.\n", 422, "WebVTT"),
        (b"[Script Info]\nScriptType: v4.00+\n", 422, "SRT"),
        (b"WEBVTT\n\n00:05.000 --> 00:01.000\nbackwards\n", 422, "cue 1 ends"),
        (b"WEBVTT\n\nNOTE only a note\n", 422, "no cue with text"),
    ],
)
def test_bad_files_are_refused_naming_the_problem(data, status, words):
    error = refused(data)
    assert status_for(error.reason) == status and words in error.detail, error.detail


def test_too_large_file_is_413_before_anything_is_parsed():
    error = refused(b"WEBVTT\n\n" + b"x" * MAX_CAPTION_BYTES)
    assert status_for(error.reason) == 413 and str(MAX_CAPTION_BYTES) in error.detail


def test_too_many_cues_is_refused():
    cues = "".join(f"{i}\n00:00:{i % 60:02d},000 --> 00:00:{i % 60:02d},500\nx\n\n" for i in range(MAX_CUES + 1))
    error = refused(cues.encode())
    assert status_for(error.reason) == 422 and "too many cues" in error.detail


@pytest.mark.parametrize("filler", ["<script", "{\\", "<b>", "&amp;", "< "])
def test_huge_pathological_cue_is_refused_not_stuck(filler):
    """~1.9 MB of one repeated fragment in one cue: cleaned in linear time, then refused as too long."""
    body = filler * ((MAX_CAPTION_BYTES - 100) // len(filler))
    error = refused(f"WEBVTT\n\n00:00.000 --> 00:01.000\n{body}\n".encode())
    assert status_for(error.reason) == 422
    assert "characters of text" in error.detail or "no cue with text" in error.detail


def test_cue_text_limit_counts_cleaned_text():
    ok = "a" * MAX_CUE_CHARS
    clean = parse_captions(f"WEBVTT\n\n00:00.000 --> 00:01.000\n<c.x>{ok}</c><script>x</script>\n".encode())
    assert reparse(clean.vtt)[0].raw_text == ok
    error = refused(f"WEBVTT\n\n00:00.000 --> 00:01.000\n{ok}b\n".encode())
    assert "cue 1 has" in error.detail


# --- languages and labels ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("en", "en"), ("EN-us", "en-US"), ("pt-br", "pt-BR"), ("zh-hant", "zh-Hant"), (" de ", "de"), ("iw", "he")],
)
def test_language_tags_are_canonical(given, canonical):
    assert normalize_language(given) == canonical


@pytest.mark.parametrize("bad", ["", "english", "en_US", "../en", "en/../x", "e", "xx", "en-", "a" * 40, "en US"])
def test_bad_language_tags_are_refused(bad):
    with pytest.raises(Refused) as info:
        normalize_language(bad)
    assert status_for(info.value.reason) == 422 and "BCP 47" in info.value.detail


def test_labels_default_to_the_language_own_name():
    assert default_label("en") == "English"
    assert default_label("pt-BR") == "Português (Brasil)"
    assert default_label("de") == "Deutsch"
    assert clean_label(None, "fr") == "Français"
    assert clean_label("   ", "es") == "Español"
    assert clean_label("  English  (SDH) ", "en") == "English (SDH)"


@pytest.mark.parametrize("bad", ["two\nlines", "x" * 81, "bell\x07", "zero\u200bwidth"])
def test_bad_labels_are_refused(bad):
    with pytest.raises(Refused) as info:
        clean_label(bad, "en")
    assert status_for(info.value.reason) == 422 and "label" in info.value.detail


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ("English <img src=x onerror=alert(1)>", "'<' or '>'"),
        ("<script>", "'<' or '>'"),
        ("a > b", "'>'"),
        ("Tom &amp; Jerry", "'&'"),
        ("&lt;b&gt;", "'&'"),
        ('say "hi"', "'\"'"),
    ],
)
def test_labels_with_markup_characters_are_refused_naming_them(bad, named):
    """A player may write the label as HTML (Plyr over Safari's native tracks): markup never gets stored."""
    with pytest.raises(Refused) as info:
        clean_label(bad, "en")
    assert status_for(info.value.reason) == 422
    assert info.value.detail.startswith(f"label must not contain {named} "), info.value.detail


def test_labels_keep_other_punctuation_and_any_script():
    for label in ("Français (l'équipe)", "English (SDH) - Director's cut", "中文（简体）", "العربية", "A+B; C=D"):
        assert clean_label(label, "en") == label


# --- HLS text ------------------------------------------------------------------------------------------

EN = SubtitleRendition("en", "English", "captions/en/aaaa.m3u8", default=True)
PT = SubtitleRendition("pt-BR", "Português (Brasil)", "captions/pt-BR/bbbb.m3u8")


def test_master_gains_a_subtitles_group_every_variant_points_at():
    text = with_subtitles(MASTER, [EN, PT])
    master = m3u8.loads(text)
    subs = [m for m in master.media if m.type == "SUBTITLES"]
    assert [(m.language, m.name, m.uri, m.default, m.autoselect, m.group_id) for m in subs] == [
        ("en", "English", "captions/en/aaaa.m3u8", "YES", "YES", GROUP_ID),
        ("pt-BR", "Português (Brasil)", "captions/pt-BR/bbbb.m3u8", "NO", "YES", GROUP_ID),
    ]
    stream_infs = [line for line in text.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(stream_infs) == len(FACTS) and all(f'SUBTITLES="{GROUP_ID}"' in line for line in stream_infs)
    # The ladder itself is untouched.
    before, after = m3u8.loads(MASTER), master
    assert [(p.uri, p.stream_info.bandwidth, p.stream_info.codecs) for p in before.playlists] == [
        (p.uri, p.stream_info.bandwidth, p.stream_info.codecs) for p in after.playlists
    ]


def test_master_without_captions_is_unchanged():
    assert with_subtitles(MASTER, []) == MASTER


def test_rebuilding_replaces_the_group_instead_of_adding_to_it():
    text = with_subtitles(with_subtitles(MASTER, [EN, PT]), [PT])
    subs = [m for m in m3u8.loads(text).media if m.type == "SUBTITLES"]
    assert [m.language for m in subs] == ["pt-BR"]
    assert text.count('SUBTITLES="subs"') == len(FACTS)


def test_names_stay_unique_and_quotable():
    twin = SubtitleRendition("en-GB", "English", "captions/en-GB/cccc.m3u8")
    quoted = SubtitleRendition("fr", 'Le "français"', "captions/fr/dddd.m3u8")
    names = [m.name for m in m3u8.loads(with_subtitles(MASTER, [EN, twin, quoted])).media if m.type == "SUBTITLES"]
    assert names == ["English", "English (en-GB)", "Le 'français'"]


def test_a_label_stored_before_markup_was_refused_reaches_no_player_as_markup():
    legacy = SubtitleRendition("de", "Deutsch <img src=x onerror=alert(1)> & co", "captions/de/eeee.m3u8")
    text = with_subtitles(MASTER, [legacy])
    assert "<" not in text and ">" not in text and "&" not in text
    assert [m.name for m in m3u8.loads(text).media if m.type == "SUBTITLES"] == [
        "Deutsch \u2039img src=x onerror=alert(1)\u203a \uff06 co"
    ]


def test_renditions_come_from_caption_rows_with_a_content_hash_in_the_uri():
    row = Caption(
        video_id=None, language="pt-BR", label="PT", is_default=True, blob_key="v/captions/pt-BR/0123abcd.vtt"
    )
    assert playlist_uri(row) == "captions/pt-BR/0123abcd.m3u8"
    assert renditions_for([row]) == [SubtitleRendition("pt-BR", "PT", "captions/pt-BR/0123abcd.m3u8", True)]


def test_subtitle_playlist_is_one_vod_segment_spanning_the_video():
    url = "http://127.0.0.1:10000/devstoreaccount1/media/v/captions/en/abc.vtt?se=2026&sp=r&sig=a%2Bb%3D"
    text = subtitle_playlist(url, 125.4321)
    playlist = m3u8.loads(text)
    assert playlist.playlist_type == "vod" and playlist.is_endlist and playlist.target_duration == 126
    (segment,) = playlist.segments
    assert segment.uri == url and segment.duration == pytest.approx(125.432)
    assert "#EXT-X-ENDLIST" in text and "#EXT-X-PLAYLIST-TYPE:VOD" in text


# --- storage layout ------------------------------------------------------------------------------------


def test_a_new_encode_clears_the_old_one_but_keeps_the_captions(tmp_path):
    """A re-transcode (or a failed one) wipes the video's media prefix: captions attached meanwhile stay."""
    store = LocalBlobStore(tmp_path, "/media")
    video, neighbour = uuid.uuid4(), uuid.uuid4()
    caption = caption_key(video, "pt-BR", "0123456789abcdef")
    assert caption == f"{video}/captions/pt-BR/0123456789abcdef.vtt"
    encode = ["master.m3u8", "poster.jpg", "720p/index.m3u8", "720p/init.mp4", "720p/seg_0.m4s", "storyboard.vtt"]
    for name in [*encode, caption.removeprefix(f"{video}/")]:
        store.put_stream(f"{video}/{name}", io.BytesIO(b"x"))
    store.put_stream(f"{neighbour}/master.m3u8", io.BytesIO(b"x"))
    clear_encodes(store, video)
    assert store.list(f"{video}/") == [caption]
    assert store.list(f"{neighbour}/") == [f"{neighbour}/master.m3u8"]
    clear_encodes(store, uuid.uuid4())  # a video with nothing stored yet

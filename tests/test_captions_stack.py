"""Captions on the real stack (PostgreSQL, Redis, Azurite, a worker, the API): a creator attaches WebVTT and
SRT files per language while the video processes or once it is ready; the master playlist lists them as
SUBTITLES renditions whose one segment comes from Azurite; others cannot touch them; refusals and deletions
leave nothing behind; and headless Chromium lists the tracks on the watch page and renders their cues."""

from urllib.parse import urljoin, urlsplit

import httpx
import m3u8
import pytest

from api.captions import MAX_CAPTION_BYTES, MAX_CUES
from core.blobs import make_stores
from tests.browser import SHOTS
from tests.conftest import upload, wait_status

EN_SRT = "1\r\n00:00:01,000 --> 00:00:02,500\r\nHello <i>there</i>\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\nBye\r\n"
EN_VTT_V2 = "WEBVTT\n\n00:00.500 --> 00:02.000\nHello again\n"
PT_VTT = (
    "WEBVTT\n\nSTYLE\n::cue { color: red }\n\n00:00.200 --> 00:04.800 line:10%\n<b>Olá</b>, <script>x()</script>mundo\n"
)


def attach(client: httpx.Client, video_id: str, language: str, text: str | bytes, name: str = "subs.vtt", **form):
    data = {"language": language, **{k: str(v).lower() if isinstance(v, bool) else v for k, v in form.items()}}
    body = text.encode() if isinstance(text, str) else text
    return client.post(f"/api/v1/videos/{video_id}/captions", files={"file": (name, body)}, data=data)


def caption_blobs(stack, video_id: str) -> list[str]:
    return make_stores(stack.settings()).media.list(f"{video_id}/captions/")


def subtitles_in(master_text: str) -> dict[str, m3u8.Media]:
    master = m3u8.loads(master_text)
    stream_infs = [line for line in master_text.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert stream_infs and all('SUBTITLES="subs"' in line for line in stream_infs), master_text
    return {m.language: m for m in master.media if m.type == "SUBTITLES"}


def test_owner_attaches_while_processing_then_lists_replaces_and_deletes(stack, clips):
    with stack.client() as owner:
        video_id = upload(owner, clips["720p_short"], title="captions").json()["id"]
        assert owner.get(f"/api/v1/videos/{video_id}").json()["status"] != "ready"

        # Attached before the encode is done: converted from SRT, cleaned, stored in Azurite.
        r = attach(owner, video_id, "en", EN_SRT, "english.srt")
        assert r.status_code == 201, r.text
        en = r.json()
        assert (en["language"], en["label"], en["is_default"], en["cue_count"], en["source_format"]) == (
            "en",
            "English",
            False,
            2,
            "srt",
        )
        stored = httpx.get(en["url"])  # a signed Azurite URL, no credentials
        assert stored.status_code == 200 and stored.headers["content-type"] == "text/vtt"
        assert stored.text.startswith("WEBVTT") and "00:00:01.000 --> 00:00:02.500\nHello <i>there</i>" in stored.text

        video = wait_status(owner, video_id)
        assert video["status"] == "ready", video["error"]

        # The encode (which clears the video's media prefix first) kept the caption.
        (listed,) = owner.get(f"/api/v1/videos/{video_id}/captions").json()
        assert listed["language"] == "en" and httpx.get(listed["url"]).text == stored.text

        # A second language once ready, as the default track; its tag is written canonically.
        r = attach(owner, video_id, "pt-br", PT_VTT, default=True)
        assert r.status_code == 201, r.text
        pt = r.json()
        assert (pt["language"], pt["label"], pt["is_default"], pt["source_format"]) == (
            "pt-BR",
            "Português (Brasil)",
            True,
            "vtt",
        )
        listed = owner.get(f"/api/v1/videos/{video_id}/captions").json()
        assert [(c["language"], c["is_default"]) for c in listed] == [("en", False), ("pt-BR", True)]

        # The master lists both, built at request time: no re-transcode.
        master_url = urljoin(stack.url, video["playback_url"])
        master = owner.get(master_url)
        assert master.headers["cache-control"] == "public, max-age=60"
        subs = subtitles_in(master.text)
        assert set(subs) == {"en", "pt-BR"}
        assert (subs["pt-BR"].name, subs["pt-BR"].default, subs["pt-BR"].autoselect) == (
            "Português (Brasil)",
            "YES",
            "YES",
        )
        assert (subs["en"].name, subs["en"].default) == ("English", "NO")

        # Each subtitle playlist: one VOD segment spanning the video, fetched from Azurite like segments.
        playlist_url = urljoin(master_url, subs["pt-BR"].uri)
        assert urlsplit(playlist_url).path == urlsplit(urljoin(stack.url, pt["playlist_url"])).path
        sub = owner.get(playlist_url)
        assert sub.status_code == 200 and sub.headers["content-type"] == "application/vnd.apple.mpegurl"
        (segment,) = m3u8.loads(sub.text).segments
        assert segment.duration == pytest.approx(video["duration"], abs=0.01)
        vtt = httpx.get(segment.uri)
        assert vtt.status_code == 200
        assert "00:00:00.200 --> 00:00:04.800 line:10%\n<b>Olá</b>, mundo" in vtt.text
        assert "STYLE" not in vtt.text and "script" not in vtt.text

        # Replacing a language (any case) swaps the file: new name, old blob gone, new URI in the master.
        old_en_blobs = [k for k in caption_blobs(stack, video_id) if "/en/" in k]
        r = attach(owner, video_id, "EN", EN_VTT_V2, label="English (new)")
        assert r.status_code == 201, r.text
        assert (r.json()["language"], r.json()["label"], r.json()["cue_count"]) == ("en", "English (new)", 1)
        new_en_blobs = [k for k in caption_blobs(stack, video_id) if "/en/" in k]
        assert len(old_en_blobs) == len(new_en_blobs) == 1 and old_en_blobs != new_en_blobs
        assert httpx.get(en["url"]).status_code == 404
        assert "Hello again" in httpx.get(r.json()["url"]).text
        subs_after = subtitles_in(owner.get(master_url).text)
        assert subs_after["en"].uri != subs["en"].uri and subs_after["en"].name == "English (new)"

        # One default track per video: making en the default takes it from pt-BR.
        assert attach(owner, video_id, "en", EN_VTT_V2, default=True).status_code == 201
        listed = owner.get(f"/api/v1/videos/{video_id}/captions").json()
        assert [(c["language"], c["is_default"]) for c in listed] == [("en", True), ("pt-BR", False)]

        # Deleting a language removes its row, its blob and its rendition.
        assert owner.delete(f"/api/v1/videos/{video_id}/captions/pt-BR").status_code == 204
        assert [c["language"] for c in owner.get(f"/api/v1/videos/{video_id}/captions").json()] == ["en"]
        assert not [k for k in caption_blobs(stack, video_id) if "/pt-BR/" in k]
        assert set(subtitles_in(owner.get(master_url).text)) == {"en"}
        assert owner.get(playlist_url).status_code == 404
        again = owner.delete(f"/api/v1/videos/{video_id}/captions/pt-BR")
        assert again.status_code == 404 and "pt-BR" in again.json()["detail"]

        # With no caption left the master is the encoder's own again.
        assert owner.delete(f"/api/v1/videos/{video_id}/captions/en").status_code == 204
        assert "SUBTITLES" not in owner.get(master_url).text
        assert caption_blobs(stack, video_id) == []


def test_others_get_404_and_viewers_may_only_read(stack, clips):
    _, other_token = stack.new_user()
    with stack.client() as owner, stack.client(other_token) as other, stack.client(anonymous=True) as anon:
        ids = {}
        for visibility in ("public", "private"):
            with clips["silent"].open("rb") as f:
                r = owner.post(
                    "/api/v1/videos", files={"file": ("s.mkv", f)}, data={"visibility": visibility, "title": "c"}
                )
            ids[visibility] = r.json()["id"]
            assert attach(owner, ids[visibility], "en", EN_SRT).status_code == 201
        before = {v: owner.get(f"/api/v1/videos/{i}/captions").json() for v, i in ids.items()}

        private, public = ids["private"], ids["public"]
        missing = f"video {private} not found"  # exactly what a video that never existed answers
        for r in (
            attach(other, private, "fr", EN_SRT),
            other.delete(f"/api/v1/videos/{private}/captions/en"),
            other.get(f"/api/v1/videos/{private}/captions"),
            anon.get(f"/api/v1/videos/{private}/captions"),
        ):
            assert (r.status_code, r.json()["detail"]) == (404, missing)
        for r in (attach(other, public, "fr", EN_SRT), other.delete(f"/api/v1/videos/{public}/captions/en")):
            assert (r.status_code, r.json()["detail"]) == (404, f"video {public} not found")
        assert attach(anon, public, "fr", EN_SRT).status_code == 401
        assert anon.delete(f"/api/v1/videos/{public}/captions/en").status_code == 401

        # Anyone who may watch a public video may list its captions (and fetch them).
        for who in (other, anon):
            (listed,) = who.get(f"/api/v1/videos/{public}/captions").json()
            assert listed["language"] == "en" and "Hello" in httpx.get(listed["url"]).text
        after = {v: owner.get(f"/api/v1/videos/{i}/captions").json() for v, i in ids.items()}
        assert [[(c["language"], c["created_at"]) for c in after[v]] for v in ids] == [
            [(c["language"], c["created_at"]) for c in before[v]] for v in ids
        ]

        # A private video's subtitles play only with its playback token, like its master (404 without one).
        video = wait_status(owner, private)
        assert video["status"] == "ready", video["error"]
        master_url = urljoin(stack.url, video["playback_url"])  # the owner's, with a fresh token
        uri = subtitles_in(owner.get(master_url).text)["en"].uri
        assert "token=" in uri
        sub = anon.get(urljoin(master_url, uri))  # the token in the URI is the proof: no cookie, no API token
        assert sub.status_code == 200 and sub.headers["cache-control"] == "private, no-store"
        (segment,) = m3u8.loads(sub.text).segments
        assert "Hello <i>there</i>" in httpx.get(segment.uri).text
        bare = anon.get(urljoin(master_url, uri.split("?")[0]))
        assert bare.status_code == 404 and "not found" in bare.json()["detail"]


def test_refusals_name_the_problem_and_leave_nothing(stack, clips):
    with stack.client() as owner:
        video_id = upload(owner, clips["silent"], title="refusals").json()["id"]
        kept = attach(owner, video_id, "en", EN_SRT)
        assert kept.status_code == 201
        blobs = caption_blobs(stack, video_id)
        many = "".join(f"{i}\n00:00:{i % 60:02d},000 --> 00:00:{i % 60:02d},500\nx\n\n" for i in range(MAX_CUES + 1))
        cases = [
            ("en", "ação legendada".encode("latin-1"), {}, 422, "UTF-8"),
            ("en", b"Dear creator, this is a letter.\n", {}, 422, "WebVTT"),
            ("en", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", {}, 422, "UTF-8"),
            ("en", b"", {}, 422, "empty"),
            ("en", many.encode(), {}, 422, "too many cues"),
            ("en", b"WEBVTT\n\n00:05.000 --> 00:01.000\nbackwards\n", {}, 422, "cue 1 ends"),
            ("english", EN_SRT.encode(), {}, 422, "BCP 47"),
            ("../../etc", EN_SRT.encode(), {}, 422, "BCP 47"),
            ("fr", EN_SRT.encode(), {"label": "two\nlines"}, 422, "label"),
            # Refused while streaming (declared length over the limit), and after reading (just over it).
            ("fr", b"WEBVTT\n\n" + b"x" * (3 * MAX_CAPTION_BYTES // 2), {}, 413, str(MAX_CAPTION_BYTES)),
            ("fr", b"WEBVTT\n\n" + b"x" * MAX_CAPTION_BYTES, {}, 413, str(MAX_CAPTION_BYTES)),
        ]
        for language, data, form, status, words in cases:
            r = attach(owner, video_id, language, data, **form)
            assert r.status_code == status, (language, words, r.status_code, r.text)
            assert words in r.json()["detail"], r.json()
        no_language = owner.post(f"/api/v1/videos/{video_id}/captions", files={"file": ("a.srt", EN_SRT.encode())})
        assert no_language.status_code == 422
        bad_path = owner.delete(f"/api/v1/videos/{video_id}/captions/not a tag")
        assert bad_path.status_code == 422 and "BCP 47" in bad_path.json()["detail"]

        # Nothing half-written: the one good caption is exactly as it was, no other blob appeared.
        (now,) = owner.get(f"/api/v1/videos/{video_id}/captions").json()
        assert urlsplit(now.pop("url")).path == urlsplit(kept.json()["url"]).path  # its SAS may be newer
        assert now == {k: v for k, v in kept.json().items() if k not in ("url", "cue_count", "source_format")}
        assert caption_blobs(stack, video_id) == blobs


def test_deleting_the_video_removes_its_captions(stack, clips):
    with stack.client() as owner:
        video_id = upload(owner, clips["silent"], title="goes away").json()["id"]
        urls = [attach(owner, video_id, lang, EN_SRT).json()["url"] for lang in ("en", "fr", "zh-Hant")]
        assert wait_status(owner, video_id)["status"] == "ready"
        assert len(caption_blobs(stack, video_id)) == 3
        assert owner.delete(f"/api/v1/videos/{video_id}").status_code == 204
        assert caption_blobs(stack, video_id) == []
        assert all(httpx.get(url).status_code == 404 for url in urls)
        assert owner.get(f"/api/v1/videos/{video_id}/captions").status_code == 404


TRACKS_JS = """() => {
  const player = window.streamifyPlayer || window.streamify || {};
  const hls = player.hls;
  const text = [...document.querySelector('video').textTracks]
    .filter(t => t.kind === 'subtitles' || t.kind === 'captions')
    .map(t => ({label: t.label, language: t.language, mode: t.mode}));
  return {text, hls: hls ? hls.subtitleTracks.map(t => ({name: t.name, lang: t.lang, default: t.default})) : null};
}"""

ENABLE_JS = """(lang) => {
  const video = document.querySelector('video');
  const player = window.streamifyPlayer || window.streamify || {};
  const hls = player.hls;
  video.pause();
  if (hls) {
    hls.subtitleTrack = hls.subtitleTracks.findIndex(t => t.lang === lang);
  } else {
    for (const t of video.textTracks) t.mode = t.language === lang ? 'showing' : 'disabled';
  }
  video.currentTime = 2.0;
}"""

ACTIVE_JS = """(lang) => {
  const track = [...document.querySelector('video').textTracks].find(t => t.language === lang && t.mode !== 'disabled');
  if (!track || !track.activeCues || !track.activeCues.length) return null;
  return [...track.activeCues].map(c => ({text: c.text, start: c.startTime, end: c.endTime}));
}"""


SHOW_JS = """() => {
  const plyr = (window.streamifyPlayer || {}).plyr;
  if (plyr) plyr.toggleCaptions(true);  // the page's own caption button, as a viewer would press it
}"""


def screenshot_with_captions_on(page) -> None:
    """For a person to look at: the page's player showing the cue (the assertions above use the track)."""
    page.evaluate(SHOW_JS)
    page.wait_for_function("!document.querySelector('video').seeking", timeout=30_000)
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "watch-captions.png"))


def test_watch_page_lists_the_caption_tracks_and_renders_their_cues(stack, clips, browser):
    with stack.client() as owner:
        video_id = upload(owner, clips["720p_short"], title="captions in the browser").json()["id"]
        english = "WEBVTT\n\n00:00:00.300 --> 00:00:04.700\nHello from the <i>captions</i> test\n"
        portuguese = "1\n00:00:00,300 --> 00:00:04,700\nOlá das legendas\n"
        assert attach(owner, video_id, "en", english).status_code == 201
        assert attach(owner, video_id, "pt-BR", portuguese, "pt.srt").status_code == 201
        assert wait_status(owner, video_id)["status"] == "ready"

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    failed: list[str] = []
    page.on("requestfailed", lambda req: failed.append(f"failed {req.url}"))
    page.on("response", lambda resp: resp.status >= 400 and failed.append(f"{resp.status} {resp.url}"))
    page.goto(f"{stack.url}/watch/{video_id}")

    # hls.js read the SUBTITLES group: both languages are selectable tracks, named after the creator's labels.
    page.wait_for_function(f"({TRACKS_JS})().text.length >= 2", timeout=60_000)
    tracks = page.evaluate(TRACKS_JS)
    assert sorted((t["language"], t["label"]) for t in tracks["text"]) == [
        ("en", "English"),
        ("pt-BR", "Português (Brasil)"),
    ], tracks
    if tracks["hls"] is not None:
        assert sorted((t["lang"], t["name"]) for t in tracks["hls"]) == [
            ("en", "English"),
            ("pt-BR", "Português (Brasil)"),
        ]

    # Turned on, a track's cues are active at a time they cover, with the uploaded text, at the uploaded time.
    for language, text in (("en", "Hello from the <i>captions</i> test"), ("pt-BR", "Olá das legendas")):
        page.evaluate(ENABLE_JS, language)
        page.wait_for_function(f"({ACTIVE_JS})({language!r}) !== null", timeout=60_000)
        (cue,) = page.evaluate(ACTIVE_JS, language)
        assert cue["text"] == text
        assert cue["start"] == pytest.approx(0.3, abs=0.1) and cue["end"] == pytest.approx(4.7, abs=0.1), cue
        if language == "en":
            screenshot_with_captions_on(page)
    assert not [f for f in failed if "caption" in f], failed
    page.close()

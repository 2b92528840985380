"""Caption files in, clean WebVTT out (pure: no I/O).

Every caption upload is hostile: the creator's bytes are never stored or served. The file is decoded,
its kind is told by its content (WebVTT or SRT), it is parsed with webvtt-py, and a new WebVTT file is
written from the parsed cues alone: timings, the cue settings webvtt-py validates, and cue text reduced to
escaped plain text plus <b>/<i>/<u>. Styles, regions, notes, identifiers, every other tag (and what a
<script> or <style> holds) are dropped, so nothing a player that renders cue text as HTML could run survives.
"""

import hashlib
import html
import io
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import langcodes
import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError
from webvtt.models import CueSettings

from core.errors import Refusal, Refused

MAX_CAPTION_BYTES = 2 * 1024 * 1024  # a feature film's subtitles are ~100 KB
MAX_CUES = 10_000  # a feature film has ~2,000
MAX_CUE_CHARS = 1_000  # text of one cue, after cleaning
MAX_LABEL_CHARS = 80
LABEL_REFUSED_CHARS = '<>&"'  # HTML markup, and the end of the playlist's quoted NAME

_BCP47_SHAPE = re.compile(r"^[A-Za-z0-9]{1,8}(?:-[A-Za-z0-9]{1,8})*$")
_VTT_HEADER = re.compile(r"^WEBVTT(?:[ \t]|\n|$)")
# An SRT file opens with a cue: an optional counter line, then "hh:mm:ss,mmm --> hh:mm:ss,mmm".
_SRT_START = re.compile(r"^\s*(?:\d+[ \t]*\n)?[ \t]*\d+:\d{1,2}:\d{1,2}[,.]\d{1,3}[ \t]*-->")
# Every pattern below stops at the next '<' or '{', so a 2 MB cue of '<script<script...' stays linear.
_SWALLOWED = re.compile(r"<(script|style)\b[^<>]*>.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")  # {\an8}, {\i1}: SSA styling many SRT files carry
# A tag starts right after '<' (as in WebVTT and HTML: "a < b" is text); <00:01.000> is a karaoke timestamp.
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)\b[^<>]*>|<(?:\d+:)?\d{2}:\d{2}\.\d{3}>")
_KEPT_TAGS = frozenset({"b", "i", "u"})
_SPACES = re.compile(r"[ \t\u00a0]+")
_ONLY_TAGS = re.compile(r"</?[biu]>")


def _refuse(detail: str, reason: Refusal = Refusal.invalid) -> Refused:
    return Refused(reason, detail)


# --- languages and labels ------------------------------------------------------------------------------


def normalize_language(value: str) -> str:
    """A valid BCP 47 tag in its canonical form ("EN-us" -> "en-US", "iw" -> "he"). It names a blob and a
    URL path segment, so only letters, digits and hyphens ever get through."""
    value = value.strip()
    if len(value) > 35 or not _BCP47_SHAPE.match(value) or not langcodes.tag_is_valid(value):
        raise _refuse(f"language {value[:40]!r} is not a valid BCP 47 language tag (e.g. 'en', 'pt-BR', 'zh-Hant')")
    return langcodes.standardize_tag(value)


def default_label(language: str) -> str:
    """The language's name in itself ("Deutsch", "Português (Brasil)"), as caption menus list them."""
    name = langcodes.Language.get(language).autonym()
    return language if name.startswith("Unknown language") else name[:1].upper() + name[1:]


def clean_label(label: str | None, language: str) -> str:
    """The menu name players show. Markup characters are refused, not escaped: the master playlist carries the
    label as NAME, and a player may write it as HTML itself (Plyr's menu over Safari's native HLS tracks)."""
    if label is None or not label.strip():
        return default_label(language)
    label = _SPACES.sub(" ", label.strip())
    if len(label) > MAX_LABEL_CHARS or any(unicodedata.category(ch).startswith("C") for ch in label):
        raise _refuse(f"label must be 1 to {MAX_LABEL_CHARS} printable characters on one line")
    refused = [ch for ch in LABEL_REFUSED_CHARS if ch in label]
    if refused:
        raise _refuse(
            f"label must not contain {' or '.join(repr(ch) for ch in refused)}"
            f" (caption labels may not hold any of {' '.join(LABEL_REFUSED_CHARS)})"
        )
    return label


# --- parsing and cleaning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanCaptions:
    vtt: str  # the WebVTT that is stored and served
    source_format: Literal["vtt", "srt"]  # what the creator sent
    cue_count: int

    @property
    def digest(self) -> str:
        """Short content hash, put in the blob's name: a replaced file never comes from a stale cache."""
        return hashlib.sha256(self.vtt.encode()).hexdigest()[:16]


def _decode(data: bytes) -> str:
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    try:
        text = data.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(
            f"caption file is not valid {'UTF-16' if utf16 else 'UTF-8'} text (byte {exc.start}): save it as UTF-8"
        ) from exc
    if "\x00" in text:
        raise _refuse("caption file is binary, not a WebVTT or SRT text file")
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def detect_format(text: str) -> Literal["vtt", "srt"]:
    if _VTT_HEADER.match(text):
        return "vtt"
    if _SRT_START.match(text):
        return "srt"
    raise _refuse("not a caption file: expected WebVTT (starting with 'WEBVTT') or SRT (starting with a numbered cue)")


def _plain(text: str) -> str:
    """Text between tags: entities decoded once, then escaped, so '<', '&' and '-->' can only be text."""
    text = html.escape(html.unescape(text), quote=False)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def clean_cue_text(raw: str) -> str:
    """Cue text as WebVTT a browser shows and nothing runs: escaped text and balanced <b>, <i>, <u>.

    Tags may span lines ("<i>one\\ntwo</i>" is common in SRT); lines left with no text are dropped, since a
    blank line would end the cue."""
    raw = _ASS_OVERRIDE.sub("", _SWALLOWED.sub("", raw))
    out: list[str] = []
    open_tags: list[str] = []
    pos = 0
    for match in _TAG.finditer(raw):
        out.append(_plain(raw[pos : match.start()]))
        pos = match.end()
        closing, name = match.group(1), (match.group(2) or "").lower()
        if name not in _KEPT_TAGS:
            continue
        if not closing:
            open_tags.append(name)
            out.append(f"<{name}>")
        elif name in open_tags:  # close it and whatever was opened inside it
            while open_tags:
                inner = open_tags.pop()
                out.append(f"</{inner}>")
                if inner == name:
                    break
    out.append(_plain(raw[pos:]))
    out.extend(f"</{name}>" for name in reversed(open_tags))
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(out).split("\n"))
    return "\n".join(line for line in lines if _ONLY_TAGS.sub("", line).strip())


def _clean_settings(raw: CueSettings) -> CueSettings:
    # The properties return only valid values; regions go with the REGION blocks they would name.
    return CueSettings(vertical=raw.vertical, line=raw.line, position=raw.position, size=raw.size, align=raw.align)


def parse_captions(data: bytes) -> CleanCaptions:
    """Validate an uploaded caption file and re-serialize it as clean WebVTT; refusals name the problem."""
    if len(data) > MAX_CAPTION_BYTES:
        raise _refuse(f"caption file too large: the limit is {MAX_CAPTION_BYTES} bytes", Refusal.too_large)
    if not data.strip():
        raise _refuse("caption file is empty")
    text = _decode(data)
    kind = detect_format(text)
    try:
        parsed = webvtt.from_buffer(io.StringIO(text), format=kind)
    except (MalformedFileError, MalformedCaptionError) as exc:
        raise _refuse(f"malformed {kind.upper()} file: {exc}") from exc
    if len(parsed.captions) > MAX_CUES:
        raise _refuse(f"too many cues: {len(parsed.captions)} (at most {MAX_CUES})")
    cues: list[webvtt.Caption] = []
    for number, caption in enumerate(parsed.captions, start=1):
        if caption.end_time < caption.start_time:
            raise _refuse(f"cue {number} ends ({caption.end_time}) before it starts ({caption.start_time})")
        body = clean_cue_text(caption.raw_text) if caption.end_time > caption.start_time else ""  # never shown
        if len(body) > MAX_CUE_CHARS:
            raise _refuse(f"cue {number} has {len(body)} characters of text (at most {MAX_CUE_CHARS})")
        if body:
            settings = _clean_settings(caption.settings)
            cues.append(webvtt.Caption(str(caption.start_time), str(caption.end_time), body, settings=settings))
    if not cues:
        raise _refuse(f"the {kind.upper()} file has no cue with text")
    cues.sort(key=lambda cue: (cue.start_time.in_milliseconds(), cue.end_time.in_milliseconds()))  # start order
    return CleanCaptions(vtt=webvtt.WebVTT(captions=cues).content, source_format=kind, cue_count=len(cues))

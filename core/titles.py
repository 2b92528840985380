"""The one title sanitizer: every path that stores a title (multipart and tus uploads, PATCH) uses it.

Titles are shown in pages, terminals and other people's players: control characters, bidi overrides (a
U+202E title reads backwards), zero-width characters and lone surrogates (which no UTF-8 database column can
store) are dropped. `str.isprintable` is exactly that set (categories C* and Z* other than the plain space),
so nothing here is a hand-made list to fall behind Unicode.
"""

from core.errors import Refusal, Refused

MAX_TITLE = 200


def clean_title_text(text: str) -> str:
    """`text` with every non-printable character removed, then trimmed; "" when nothing printable is left."""
    return "".join(ch for ch in text if ch.isprintable()).strip()


def checked_title(text: str) -> str:
    """A title to store: cleaned, at most MAX_TITLE characters (Refused invalid otherwise; blank is the caller's)."""
    cleaned = clean_title_text(text)
    if len(cleaned) > MAX_TITLE:
        raise Refused(Refusal.invalid, f"title too long: at most {MAX_TITLE} characters")
    return cleaned

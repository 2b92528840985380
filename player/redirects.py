"""Where a sign-in page may send the browser afterwards: a path on this site, never another site."""

from urllib.parse import urlsplit

DEFAULT_NEXT = "/"
MAX_NEXT_CHARS = 2000


def safe_next(value: str | None, default: str = DEFAULT_NEXT) -> str:
    """`value` if it is a same-site path ("/library?q=x"), else `default`.

    Browsers read "//evil.example", "/\\evil.example" and "/<TAB>/evil.example" as other hosts (they treat
    backslashes as slashes and drop tabs and newlines), so only a plain path that starts with exactly one
    slash and holds no backslash, whitespace or control character is kept: no open redirect.
    """
    if not value or len(value) > MAX_NEXT_CHARS:
        return default
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value

"""The storyboard track as players get it (pure): the stored WebVTT thumbnail track (workers.thumbnails writes
it with sprite names relative to it) with each cue pointed at the sprite's absolute, possibly signed, URL."""

import re
from collections.abc import Callable

from core.media_keys import SPRITE_NAME

_CUE_PAYLOAD = re.compile(rf"^({SPRITE_NAME.pattern})(#xywh=\d+,\d+,\d+,\d+)$")


def rewrite_storyboard_vtt(text: str, url_for: Callable[[str], str]) -> str:
    """Point each cue at url_for(sprite name): a relative link would drop a SAS query string.

    Only lines the workers write are accepted, so a stored file can never make us sign another key.
    """
    out = []
    for line in text.splitlines():
        if not line or line == "WEBVTT" or "-->" in line:
            out.append(line)
            continue
        m = _CUE_PAYLOAD.match(line)
        if m is None:
            raise ValueError(f"unexpected line in storyboard track: {line[:80]!r}")
        out.append(url_for(m.group(1)) + m.group(2))
    return "\n".join(out) + "\n"

"""The media store's key layout lives in core.media_keys, shared by API nodes and workers."""

import re
import uuid

from core.media_keys import caption_key, media_prefix, rendition_playlist_key, source_key, sprite_name
from infra.nginx import VIDEO_ID_PATTERN

VIDEO = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")


def test_keys_start_with_the_video_id_as_nginx_matches_it():
    assert re.fullmatch(f"{VIDEO_ID_PATTERN}/", media_prefix(VIDEO))
    assert rendition_playlist_key(VIDEO, "720p") == f"{VIDEO}/720p/index.m3u8"
    assert caption_key(VIDEO, "pt-BR", "0123abcd") == f"{VIDEO}/captions/pt-BR/0123abcd.vtt"
    assert sprite_name(3) == "storyboard_3.jpg"
    assert source_key(VIDEO) == f"{VIDEO}/source"

"""The media store's key layout lives in core.media_keys: API nodes read it without importing worker code."""

import re
import subprocess
import sys
import uuid

from cli.stack import VIDEO_ID_PATTERN
from core.media_keys import caption_key, media_prefix, rendition_playlist_key, source_key, sprite_name
from tests.conftest import ROOT

VIDEO = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")


def test_keys_start_with_the_video_id_as_nginx_matches_it():
    assert re.fullmatch(f"{VIDEO_ID_PATTERN}/", media_prefix(VIDEO))
    assert rendition_playlist_key(VIDEO, "720p") == f"{VIDEO}/720p/index.m3u8"
    assert caption_key(VIDEO, "pt-BR", "0123abcd") == f"{VIDEO}/captions/pt-BR/0123abcd.vtt"
    assert sprite_name(3) == "storyboard_3.jpg"
    assert source_key(VIDEO) == f"{VIDEO}/source"


def test_playback_routes_and_caption_store_do_not_import_the_workers():
    code = (
        "import sys; import api.routes.playback, api.routes.captions, api.presenters, ingest.caption_store; "
        "print(sorted(m for m in sys.modules if m.startswith('workers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout

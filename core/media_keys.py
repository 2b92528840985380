"""Where a video's files live in the media and source stores: the one key layout shared by the workers that
write it and the API that reads it (playlists, poster, storyboard, captions), so API nodes never import worker code.

Every key starts with the video's id as str(uuid) writes it (nginx matches that first segment: infra.nginx).
"""

import re
import uuid

MASTER_NAME = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"  # one per rendition, under the rendition's name
INIT_NAME = "init.mp4"
SEGMENT_PATTERN = "seg_%05d.m4s"  # numbered globally: a time range's segments carry their place in the video
AUDIO_NAME = "audio"  # the one audio rendition's folder (EXT-X-MEDIA group "audio"), beside the video rungs'
TILES_DIR = "tiles"  # storyboard tiles the ranges write, laid out on sheets at the end; never published
TILE_PATTERN = "tile_%05d.jpg"
POSTER_NAME = "poster.jpg"
STORYBOARD_VTT = "storyboard.vtt"
SPRITE_PATTERN = "storyboard_%d.jpg"
SPRITE_NAME = re.compile(r"storyboard_\d{1,4}\.jpg")  # what SPRITE_PATTERN writes, for readers of the track
DOWNLOADS_DIR = "downloads"  # the owner's MP4 and M4A, inside the encode folder they were remuxed from
CAPTIONS_DIR = "captions"  # creators' subtitle files, attached apart from any encode (a re-transcode keeps them)


def media_prefix(video_id: uuid.UUID) -> str:
    """Every key of the video starts with it, in the media store and the source store alike."""
    return f"{video_id}/"


ENCODE_DIR = "enc-"  # + the attempt's lease: one folder per encode attempt (never a rendition's name)


def encode_prefix(video_id: uuid.UUID, lease: uuid.UUID) -> str:
    """Where one job attempt writes its ladder, poster and storyboard. Attempts never share a folder, so one
    that lost its job (a frozen worker waking up) can only ever write or delete its own files."""
    return f"{media_prefix(video_id)}{ENCODE_DIR}{lease.hex}/"


def published_root(video_id: uuid.UUID, media_root: str | None) -> str:
    """The published encode's folder: the video's media_root, or its prefix for encodes from before 0006."""
    return media_root or media_prefix(video_id)


def downloads_prefix(root: str) -> str:
    """Where the downloads of the encode in `root` live: beside its ladder, so replacing or deleting the encode
    (a re-transcode, the video's deletion) takes them along."""
    return f"{root}{DOWNLOADS_DIR}/"


def download_key(root: str, tag: str, rendition: str, extension: str) -> str:
    """One attempt's file (`<tag>.720p.mp4`): the tag lets an attempt that lost its part remove its own files
    only (workers.parts._end), as segments do."""
    return f"{downloads_prefix(root)}{tag}.{rendition}.{extension}"


def source_key(video_id: uuid.UUID) -> str:
    """The upload as received, in the source store."""
    return f"{media_prefix(video_id)}source"


def imported_source_key(video_id: uuid.UUID, lease: uuid.UUID) -> str:
    """A source fetched from a URL, per import attempt: an attempt that lost its import (a frozen worker waking up)
    can only ever overwrite or delete its own copy, never the one the winning attempt recorded."""
    return f"{media_prefix(video_id)}source-{lease.hex}"


def rendition_playlist_key(video_id: uuid.UUID, rendition: str) -> str:
    return f"{media_prefix(video_id)}{rendition}/{MEDIA_PLAYLIST}"


def segment_name(sequence: int) -> str:
    return SEGMENT_PATTERN % sequence


def sprite_name(index: int) -> str:
    return SPRITE_PATTERN % index


def caption_key(video_id: uuid.UUID, language: str, digest: str) -> str:
    """The file's name carries its content hash: a replacement gets a new URL, never a stale cached copy."""
    return f"{media_prefix(video_id)}{CAPTIONS_DIR}/{language}/{digest}.vtt"

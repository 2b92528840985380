"""Fetch a published ladder the way a player does and check what a viewer depends on."""

import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import av
import httpx
import m3u8


@dataclass
class Segment:
    duration: float
    data: bytes
    headers: httpx.Headers


@dataclass
class Variant:
    uri: str
    stream_info: object
    target_duration: float
    init: bytes
    init_headers: httpx.Headers
    segments: list[Segment]
    audio: "Variant | None" = None  # the master's AUDIO group rendition this variant plays with

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)


def fetch_ladder(client: httpx.Client, base_url: str, playback_url: str) -> tuple[httpx.Response, list[Variant]]:
    master_url = urljoin(base_url + "/", playback_url)
    master_resp = client.get(master_url)
    master_resp.raise_for_status()
    master = m3u8.loads(master_resp.text)
    audio = {m.group_id: _fetch(client, master_url, m.uri, None) for m in master.media if m.type == "AUDIO" and m.uri}
    variants = []
    for v in master.playlists:
        variant = _fetch(client, master_url, v.uri, v.stream_info)
        variant.audio = audio.get(v.stream_info.audio)
        variants.append(variant)
    return master_resp, variants


def _fetch(client: httpx.Client, master_url: str, uri: str, stream_info: object) -> Variant:
    media_url = urljoin(master_url, uri)
    media = m3u8.loads(client.get(media_url).raise_for_status().text)
    init_uri = media.segments[0].init_section.uri
    init = client.get(urljoin(media_url, init_uri)).raise_for_status()
    segments = []
    for seg in media.segments:
        r = client.get(urljoin(media_url, seg.uri)).raise_for_status()
        segments.append(Segment(seg.duration, r.content, r.headers))
    return Variant(uri, stream_info, media.target_duration, init.content, init.headers, segments)


def _open(data: bytes):
    with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as tmp:
        tmp.write(data)
    return av.open(tmp.name, format="mov"), Path(tmp.name)


def first_video_packet_is_key(init: bytes, segment: bytes) -> bool:
    container, path = _open(init + segment)
    try:
        for packet in container.demux(video=0):
            if packet.size:
                return bool(packet.is_keyframe)
        return False
    finally:
        container.close()
        path.unlink()


def decoded_stream_facts(variant: Variant) -> dict:
    """Duration (last video/audio timestamp) and audio channels of the whole rendition, decoded for real."""
    container, path = _open(variant.init + b"".join(s.data for s in variant.segments))
    try:
        end = 0.0
        for packet in container.demux():
            if packet.pts is not None and packet.duration:
                end = max(end, float((packet.pts + packet.duration) * packet.time_base))
        audio = container.streams.audio[0].codec_context.channels if container.streams.audio else 0
        if variant.audio is not None:  # the audio is a rendition of its own (an EXT-X-MEDIA group)
            audio = decoded_stream_facts(variant.audio)["channels"]
        video = container.streams.video[0] if container.streams.video else None
        return {
            "duration": end,
            "channels": audio,
            "size": (video.codec_context.width, video.codec_context.height) if video else None,
        }
    finally:
        container.close()
        path.unlink()


def assert_playable_ladder(variants: list[Variant], source_duration: float, min_variants: int = 4) -> None:
    assert len(variants) >= min_variants, f"only {len(variants)} variants"
    for v in variants:
        info = v.stream_info
        assert info.codecs and "avc1" in info.codecs and "mp4a.40.2" in info.codecs, (v.uri, info.codecs)
        assert info.bandwidth and info.bandwidth > 100_000, (v.uri, info.bandwidth)
        assert info.resolution, v.uri
        for i, seg in enumerate(v.segments):
            assert seg.duration <= v.target_duration + 1e-3, (v.uri, i, seg.duration)
            assert first_video_packet_is_key(v.init, seg.data), f"{v.uri} segment {i} does not start on a keyframe"
        assert abs(v.duration - source_duration) <= 0.1, (v.uri, v.duration, source_duration)
        facts = decoded_stream_facts(v)
        assert abs(facts["duration"] - source_duration) <= 0.1, (v.uri, facts, source_duration)
        assert facts["channels"] == 2, f"{v.uri}: audio is not stereo: {facts}"
        assert facts["size"] == tuple(info.resolution), (v.uri, facts["size"], info.resolution)

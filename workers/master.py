"""Make the master playlist tell the truth: ffmpeg omits FRAME-RATE and, in some builds and modes,
CODECS or a real BANDWIDTH. Values come from the encoded output, measured by workers.measure."""

from dataclasses import dataclass

import m3u8


@dataclass(frozen=True)
class VariantFacts:
    name: str  # the variant's directory, e.g. "720p"
    bandwidth: int  # peak segment bitrate, bits/s
    average_bandwidth: int
    codecs: str
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    duration: float = 0.0


def uri_for(name: str) -> str:
    return f"{name}/index.m3u8"


def finalize_master(master_text: str, facts: list[VariantFacts]) -> str:
    """Rewrite every variant's attributes from measured facts; variants ffmpeg forgot are added."""
    playlist = m3u8.loads(master_text)
    by_uri = {uri_for(f.name): f for f in facts}
    seen = set()
    for variant in playlist.playlists:
        fact = by_uri.get(variant.uri)
        if fact is None:
            raise ValueError(f"master lists {variant.uri!r}, which was not produced")
        seen.add(variant.uri)
        _apply(variant.stream_info, fact)
    for uri, fact in by_uri.items():
        if uri not in seen:
            variant = m3u8.Playlist(uri, stream_info={"bandwidth": fact.bandwidth}, media=[], base_uri=None)
            _apply(variant.stream_info, fact)
            playlist.playlists.append(variant)
    playlist.is_independent_segments = True
    return playlist.dumps()


def _apply(info, fact: VariantFacts) -> None:
    info.bandwidth = fact.bandwidth
    info.average_bandwidth = fact.average_bandwidth
    info.codecs = fact.codecs
    if fact.width and fact.height:
        info.resolution = (fact.width, fact.height)
        info.frame_rate = round(fact.frame_rate, 3) if fact.frame_rate else None


def master_problems(master_text: str) -> list[str]:
    """What a player would trip over; empty when the master is complete."""
    problems = []
    try:
        playlist = m3u8.loads(master_text)
    except KeyError as exc:  # m3u8 cannot load a variant that lacks a required attribute (BANDWIDTH)
        return [f"master has a variant with no {str(exc.args[0]).upper()}"]
    if not playlist.is_variant or not playlist.playlists:
        return ["master lists no variants"]
    for variant in playlist.playlists:
        info = variant.stream_info
        if not info.bandwidth:
            problems.append(f"{variant.uri}: no BANDWIDTH")
        if not info.codecs:
            problems.append(f"{variant.uri}: no CODECS")
        if info.codecs and "avc1" in info.codecs:
            if not info.resolution:
                problems.append(f"{variant.uri}: no RESOLUTION")
            if not info.frame_rate:
                problems.append(f"{variant.uri}: no FRAME-RATE")
    return problems

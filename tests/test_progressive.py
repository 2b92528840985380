"""The published prefix of a chunked encode (core.progressive): what a player is shown while parts land."""

import uuid

import m3u8

from core.progressive import (
    AUDIO_RENDITION,
    PartView,
    attempt_tag,
    master_for,
    media_playlist,
    published,
)
from schemas.tables import PartKind, PartState

LEASES = [uuid.uuid4() for _ in range(5)]
PLAN = {
    "renditions": [
        {"name": "720p", "width": 1280, "height": 720, "frame_rate": 30.0, "maxrate_kbps": 2800},
        {"name": "360p", "width": 640, "height": 360, "frame_rate": 30.0, "maxrate_kbps": 800},
    ],
    "audio_kbps": 128,
    "target_duration": 4,
}


def video(index: int, start: float, end: float | None, first: int, n: int, state=PartState.succeeded, seg=4.0):
    rows = [[seg, 100_000] for _ in range(n)]
    return PartView(PartKind.video, index, state, start, end, first, LEASES[index], {"720p": rows, "360p": rows})


def audio(n: int, state=PartState.running):
    return PartView(PartKind.audio, 0, state, 0, None, 0, LEASES[4], {AUDIO_RENDITION: [[4.0, 16_000]] * n})


def test_only_contiguous_ranges_from_the_start_are_published():
    parts = [
        video(0, 0, 4, 0, 2, seg=2.0),
        video(1, 4, 12, 2, 2, state=PartState.running),
        video(2, 12, None, 4, 2),  # done before range 1: must wait, unseen
        audio(3),
    ]
    pub = published(parts, duration=20.0)
    assert [s.uri for s in pub.renditions["720p"]] == [
        f"720p/{attempt_tag(LEASES[0])}.seg_00000.m4s",
        f"720p/{attempt_tag(LEASES[0])}.seg_00001.m4s",
    ]
    assert pub.video_seconds == 4 and pub.audio_seconds == 12
    assert pub.playable(True, True) and pub.seconds(True, True) == 4
    assert not pub.complete


def test_not_playable_until_two_audio_segments_exist():
    pub = published([video(0, 0, 4, 0, 2, seg=2.0), audio(1)], duration=20.0)
    assert not pub.playable(True, True)
    assert published([video(0, 0, 4, 0, 2, seg=2.0), audio(2)], duration=20.0).playable(True, True)


def test_a_growing_playlist_is_an_event_playlist_and_the_final_one_vod_with_the_same_segments():
    parts = [video(0, 0, 4, 0, 2, seg=2.0), video(1, 4, None, 2, 3), audio(5)]
    growing = published(parts[:1] + [video(1, 4, None, 2, 3, state=PartState.queued), audio(5)], duration=16.0)
    done = published([*parts[:2], audio(5, state=PartState.succeeded)], duration=16.0)
    assert done.complete and done.seconds(True, True) == 16.0
    event = m3u8.loads(
        media_playlist(growing.renditions["720p"], growing.inits["720p"], target_duration=4, complete=False)
    )
    vod = m3u8.loads(media_playlist(done.renditions["720p"], done.inits["720p"], target_duration=4, complete=True))
    assert event.playlist_type == "event" and not event.is_endlist
    assert vod.playlist_type == "vod" and vod.is_endlist
    assert [s.uri for s in vod.segments][: len(event.segments)] == [s.uri for s in event.segments]
    assert {s.init_section.uri for s in vod.segments} == {f"{attempt_tag(LEASES[0])}.init.mp4"}
    assert vod.target_duration == 4 and all(s.duration <= 4 for s in vod.segments)


def test_master_lists_every_rung_with_the_audio_group_and_measured_bandwidth():
    parts = [video(0, 0, None, 0, 3), audio(3, state=PartState.succeeded)]
    pub = published(parts, duration=12.0)
    text, rows = master_for(PLAN, {"720p": "avc1.64001f", "360p": "avc1.64001e"}, pub)
    master = m3u8.loads(text)
    assert [p.uri for p in master.playlists] == ["720p/index.m3u8", "360p/index.m3u8"]
    assert master.media[0].type == "AUDIO" and master.media[0].uri == "audio/index.m3u8"
    top = master.playlists[0].stream_info
    assert top.codecs == "avc1.64001f,mp4a.40.2" and top.audio == "audio"
    assert top.bandwidth == 100_000 * 8 // 4 + 16_000 * 8 // 4  # measured: video peak + audio peak
    by_name = {r.name: r for r in rows}
    assert set(by_name) == {"720p", "360p", AUDIO_RENDITION}
    assert by_name["720p"].bandwidth == 100_000 * 8 // 4 and by_name[AUDIO_RENDITION].bandwidth == 16_000 * 8 // 4


def test_master_before_anything_is_measured_uses_the_planned_caps():
    text, _ = master_for(PLAN, {}, published([], duration=10.0))
    assert m3u8.loads(text).playlists[0].stream_info.bandwidth == (2800 + 128) * 1000


def test_parts_plan_from_the_planners_probe_exactly():
    """Parts rebuild the encode from the probe stored on the job: the same plan, digest included."""
    from fractions import Fraction

    from core.probe import HdrTransfer, SourceInfo
    from core.settings import Settings
    from workers.parts import plan_digest
    from workers.pipeline import plan_encode

    info = SourceInfo("mov", 61.5, True, True, 1440, 1080, 90, Fraction(4, 3), 29.97, 8_000_000, 2, 0, 1, "eng",
                      48000, True, HdrTransfer.hlg)  # fmt: skip
    again = SourceInfo.from_json(info.to_json())
    assert again == info
    settings = Settings()
    assert plan_digest(plan_encode(again, settings)) == plan_digest(plan_encode(info, settings))

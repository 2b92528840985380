"""Playback tokens and segment signatures (pure), the master rewrite and the grant rules; the secret file.

What nginx computes for a signature is checked against a real nginx in tests/test_private_playback.py; here
the rules a viewer depends on: a token opens one video until it expires, and nothing else.
"""

import base64
import hashlib
import secrets
import time
import uuid

import m3u8
import pytest

from api.access import Signer, may_serve_unsigned, with_query
from core.blobs import LocalBlobStore
from core.playback_secret import SecretMissing, playback_secret, secret_file
from core.playback_tokens import (
    Expired,
    TokenRefused,
    nginx_key,
    segment_query,
    segment_signature,
    sign_token,
    verify_segment,
    verify_token,
)
from core.settings import Settings
from schemas.tables import Video, Visibility

SECRET = secrets.token_bytes(32)
NOW = 1_800_000_000
A, B = uuid.uuid4(), uuid.uuid4()


def test_a_token_opens_its_video_until_it_expires():
    token = sign_token(SECRET, A, NOW + 60)
    assert verify_token(SECRET, A, token, NOW) == NOW + 60
    assert verify_token(SECRET, A, token, NOW + 59.9) == NOW + 60
    with pytest.raises(Expired, match="expired at 2027-01-15T08:01:00"):
        verify_token(SECRET, A, token, NOW + 60)


def test_a_token_never_opens_another_video_nor_survives_another_secret():
    token = sign_token(SECRET, A, NOW + 60)
    with pytest.raises(TokenRefused, match="not valid for this video"):
        verify_token(SECRET, B, token, NOW)
    with pytest.raises(TokenRefused, match="not valid for this video"):
        verify_token(secrets.token_bytes(32), A, token, NOW)


def test_any_tampered_character_or_stretched_expiry_is_refused():
    token = sign_token(SECRET, A, NOW + 60)
    expires, mac = token.split(".")
    for i in range(len(mac)):
        flipped = mac[:i] + ("A" if mac[i] != "A" else "B") + mac[i + 1 :]
        with pytest.raises(TokenRefused):
            verify_token(SECRET, A, f"{expires}.{flipped}", NOW)
    # Pushing the expiry out (the attack a holder would try) breaks the MAC, and says so, not "expired".
    with pytest.raises(TokenRefused, match="not valid"):
        verify_token(SECRET, A, f"{NOW + 10**6}.{mac}", NOW)
    # A forged token with a past date is "not valid", never "expired": the date of a forgery means nothing.
    with pytest.raises(TokenRefused, match="not valid") as refused:
        verify_token(SECRET, A, f"{NOW - 5}.{mac}", NOW)
    assert not isinstance(refused.value, Expired)


@pytest.mark.parametrize(
    "token", ["", ".", "abc", "123", "123.", ".abc", "-5.abc", "1e9.abc", "١٢٣.abc", "9" * 40 + ".a"]
)
def test_malformed_tokens_are_refused(token):
    with pytest.raises(TokenRefused):
        verify_token(SECRET, A, token, NOW)


def test_short_secrets_are_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        sign_token(b"short", A, NOW)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        nginx_key(b"short")


def test_segment_signature_is_nginx_secure_link_md5_over_expiry_and_video():
    key = nginx_key(SECRET)
    assert key.isalnum() and key != nginx_key(secrets.token_bytes(32))
    assert SECRET.hex() not in key  # one way: the nginx config never holds the token secret
    # nginx: secure_link_md5 "$secure_link_expires:$streamify_vid:<key>", base64url without padding.
    expected = base64.urlsafe_b64encode(hashlib.md5(f"{NOW}:{A}:{key}".encode()).digest()).rstrip(b"=").decode()
    assert segment_signature(key, A, NOW) == expected
    assert segment_query(key, A, NOW) == f"e={NOW}&st={expected}"
    assert verify_segment(key, A, expected, str(NOW), NOW - 1) == NOW
    with pytest.raises(Expired):
        verify_segment(key, A, expected, str(NOW), NOW)
    for sig, exp, vid in [(expected, str(NOW), B), (expected, str(NOW + 1), A), (expected, f"0{NOW}", A),
                          (expected[:-1] + "x", str(NOW), A), (expected, "", A), (expected, "soon", A)]:  # fmt: skip
        with pytest.raises(TokenRefused, match="not valid for this video"):
            verify_segment(key, vid, sig, exp, NOW - 10)


MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",DEFAULT=NO,AUTOSELECT=YES,URI="captions/en.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",SUBTITLES="subs"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",SUBTITLES="subs"
360p/index.m3u8
"""


def test_master_rewrite_puts_the_token_on_every_uri_and_nothing_else():
    out = m3u8.loads(with_query(MASTER, "?token=1.abc"))
    assert [p.uri for p in out.playlists] == ["720p/index.m3u8?token=1.abc", "360p/index.m3u8?token=1.abc"]
    assert [m.uri for m in out.media] == ["captions/en.m3u8?token=1.abc"]
    assert [p.stream_info.bandwidth for p in out.playlists] == [2800000, 800000]
    assert out.playlists[0].stream_info.codecs == "avc1.64001f,mp4a.40.2"
    assert with_query(MASTER, "") == MASTER  # public: byte for byte what was stored
    with pytest.raises(ValueError, match="already has a query"):
        with_query(MASTER.replace("360p/index.m3u8", "360p/index.m3u8?x=1"), "?token=1.abc")


def _video(visibility: Visibility, owner: uuid.UUID) -> Video:
    return Video(id=uuid.uuid4(), owner_id=owner, title="t", visibility=visibility)


class _Viewer:
    def __init__(self, id_: uuid.UUID) -> None:
        self.id = id_


def test_grants_public_free_private_only_with_proof(tmp_path):
    owner, stranger = _Viewer(uuid.uuid4()), _Viewer(uuid.uuid4())
    signer = Signer(SECRET, LocalBlobStore(tmp_path, "/media"), direct_sas=False, ttl_seconds=600)
    public, private = _video(Visibility.public, owner.id), _video(Visibility.private, owner.id)
    unlisted = _video(Visibility.unlisted, owner.id)
    for video in (public, unlisted):
        grant = signer.grant(video, None, None)
        assert grant is not None and grant.query == "" and not grant.private
        key = f"{video.id}/720p/seg_00001.m4s"
        assert grant.media_url(key) == f"/media/{key}"  # plain, cacheable by anyone
        assert grant.cache_control(60) == "public, max-age=60"
        assert may_serve_unsigned(video)
    assert not may_serve_unsigned(private) and not may_serve_unsigned(None)
    assert signer.grant(private, None, None) is None
    assert signer.grant(private, stranger, None) is None  # type: ignore[arg-type]
    mine = signer.grant(private, owner, None)  # type: ignore[arg-type]
    assert mine is not None and mine.private and mine.cache_control(60) == "private, no-store"
    assert mine.api_url("master.m3u8") == f"/api/v1/videos/{private.id}/master.m3u8?token={mine.token}"
    seg = mine.media_url(f"{private.id}/720p/seg_00001.m4s")
    assert seg.startswith(f"/media/{private.id}/720p/seg_00001.m4s?e={mine.expires}&st=")
    with pytest.raises(ValueError, match="is not a file of video"):
        mine.media_url(f"{public.id}/720p/seg_00001.m4s")  # a grant never signs another video's files
    shared = signer.grant(private, stranger, mine.token)  # type: ignore[arg-type]
    assert shared is not None and shared.token == mine.token
    other = _video(Visibility.private, owner.id)
    with pytest.raises(TokenRefused):
        signer.grant(other, owner, mine.token)  # type: ignore[arg-type]  # a wrong token fails, even for the owner
    token, _ = signer.mint(private, 60, now=time.time() - 120)
    with pytest.raises(Expired):
        signer.grant(private, stranger, token)  # type: ignore[arg-type]


def test_secret_comes_from_settings_or_a_private_file_on_embedded_defaults(tmp_path):
    given = "x" * 40
    assert playback_secret(Settings(data_dir=tmp_path, playback_secret=given)) == given.encode()
    first = playback_secret(Settings(data_dir=tmp_path / "a"))
    assert first == playback_secret(Settings(data_dir=tmp_path / "a"))  # persisted, not regenerated
    assert first != playback_secret(Settings(data_dir=tmp_path / "b"))
    assert secret_file(tmp_path / "a").stat().st_mode & 0o777 == 0o600
    with pytest.raises(SecretMissing, match="STREAMIFY_PLAYBACK_SECRET is required"):
        playback_secret(Settings(data_dir=tmp_path / "c", database_url="postgresql+psycopg://u@127.0.0.1/db"))
    assert not secret_file(tmp_path / "c").exists()
    with pytest.raises(ValueError):
        Settings(playback_secret="too short")


RACE = """
import sys, time
from pathlib import Path
from core.playback_secret import _read_or_create
start, dirs = float(sys.argv[1]), sys.argv[2:]
for i, d in enumerate(dirs):
    while time.time() < start + i * 0.05:  # every process opens the same fresh data dir at the same moment
        pass
    try:
        print(_read_or_create(Path(d) / "playback-secret"), flush=True)
    except Exception as exc:
        print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
"""


@pytest.mark.slow  # seconds of Python processes starting at once
def test_processes_starting_together_on_a_fresh_data_dir_share_one_secret(tmp_path):
    """`streamify api --workers N` on a fresh install: every worker process reads the same, complete secret."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    dirs = [str(tmp_path / f"install{i}") for i in range(20)]
    start = time.time() + 3  # after every interpreter has imported the module
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, str(start), *dirs], cwd=root, stdout=subprocess.PIPE, text=True)
        for _ in range(10)
    ]
    outputs = [p.communicate(timeout=120)[0].splitlines() for p in procs]
    assert all(len(lines) == len(dirs) for lines in outputs), outputs
    for i, d in enumerate(dirs):
        seen = {lines[i] for lines in outputs}
        assert len(seen) == 1, (d, seen)  # one secret per install, never an error or an empty read
        (value,) = seen
        assert len(value) >= 32 and (Path(d) / "playback-secret").read_text().strip() == value
        assert [p.name for p in Path(d).iterdir()] == ["playback-secret"]  # no temp file left behind

"""The `next` of the sign-in pages: same-site paths survive, everything a browser would read as another
site falls back to the default (no open redirect)."""

import pytest

from player.redirects import safe_next


@pytest.mark.parametrize(
    "value",
    [
        "/",
        "/library",
        "/library?q=cats&page=2",
        "/watch/0b6c6c0e-1a7e-4a43-9a53-6b0d2b1d0b8e",
        "/upload#files",
        "/a/%2F%2Fb",
    ],
)
def test_same_site_paths_are_kept(value):
    assert safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "library",  # relative: resolved against the current page, never meant
        "//evil.example/path",  # protocol-relative: another host
        "///evil.example",
        "/\\evil.example",  # browsers read a backslash as a slash
        "\\\\evil.example",
        "/\t/evil.example",  # browsers drop tabs and newlines from URLs
        "/\n/evil.example",
        "/ /evil.example",
        "https://evil.example/",
        "http:/evil.example",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "/" + "a" * 3000,
    ],
)
def test_other_sites_and_odd_values_fall_back(value):
    assert safe_next(value) == "/"
    assert safe_next(value, "/library") == "/library"


def test_the_sign_in_pages_apply_it(stack):
    import httpx

    with httpx.Client(base_url=stack.url) as client:
        for page in ("/login", "/signup"):
            evil = client.get(page, params={"next": "//evil.example/steal"})
            assert evil.status_code == 200
            assert "evil.example" not in evil.text
            kept = client.get(page, params={"next": "/library?q=a&page=2"})
            assert 'data-next="/library?q=a&amp;page=2"' in kept.text

"""player/static/ui.js, the one home of the helpers every page's script shares, run in headless Chromium: its
link check refuses exactly what the server's safe_next refuses, its two duration formats, and the API
refusals it turns into sentences."""

import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from player.redirects import MAX_NEXT_CHARS, safe_next
from tests import test_redirects
from tests.conftest import ROOT

UI_JS = ROOT / "player" / "static" / "ui.js"
FALLBACK = "/fallback"

# Beyond tests/test_redirects.py's own cases (read from its parametrize marks below, so both sides always
# face the same list): what JavaScript and Python might read differently.
MORE_CASES = [
    None,
    "/a:b",
    "/javascript:alert(1)",
    "/\r/evil.example",
    "/\u00a0/evil.example",
    "/\u2028/evil.example",
    "/\u3000/evil.example",
    "/\ufeff/kept-by-python",  # not white space to str.isspace(), unlike JavaScript's \s
    " /library",
    "/" + "a" * (MAX_NEXT_CHARS - 1),
    "/" + "a" * MAX_NEXT_CHARS,
    "/" + "\U0001f600" * (MAX_NEXT_CHARS - 1),  # counted in characters, as Python does, not UTF-16 units
    "/" + "\U0001f600" * MAX_NEXT_CHARS,
]


def redirect_cases() -> list:
    """Every value tests/test_redirects.py puts to safe_next."""
    tests = (test_redirects.test_same_site_paths_are_kept, test_redirects.test_other_sites_and_odd_values_fall_back)
    values = [v for test in tests for mark in test.pytestmark if mark.name == "parametrize" for v in mark.args[1]]
    assert len(values) > 15, values
    return values


@pytest.fixture(scope="module")
def page(browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_content("<!doctype html><title>ui.js</title>")
    page.add_script_tag(path=str(UI_JS))
    yield page
    context.close()


def site_paths(page: Page, values: list) -> list:
    return page.evaluate(
        "([values, fallback]) => values.map((v) => StreamifyUI.sitePath(v, fallback))", [values, FALLBACK]
    )


def test_site_path_keeps_and_refuses_what_safe_next_does(page):
    values = redirect_cases() + MORE_CASES
    assert site_paths(page, values) == [safe_next(v, FALLBACK) for v in values]


def test_site_path_agrees_with_safe_next_on_every_character(page):
    # Every character of the Basic Multilingual Plane (where every control and white-space character is; lone
    # surrogates cannot cross to the page) and a few beyond it, inside a path and where a browser would read a
    # host after it: a tab or a no-break space there must never survive on one side only.
    chars = [chr(c) for c in [*range(0xD800), *range(0xE000, 0x10000), 0x1F600, 0xE0020, sys.maxunicode]]
    for shape in ("/a{}b", "/{}/evil.example", "{}/library"):
        values = [shape.format(ch) for ch in chars]
        got = site_paths(page, values)
        want = [safe_next(v, FALLBACK) for v in values]
        differ = [(hex(ord(ch)), g, w) for ch, g, w in zip(chars, got, want, strict=True) if g != w]
        assert not differ, differ[:20]


def test_timer_and_spoken_durations(page):
    got = page.evaluate(
        """() => {
          const UI = StreamifyUI;
          const values = [0, 9.4, 59.6, 75.4, 600, 3599, 3600, 3725, 36000, -3, null, undefined, NaN, Infinity];
          return {
            clock: values.map((v) => UI.clockDuration(v)),
            human: values.map((v) => UI.humanDuration(v)),
            padded: values.map((v) => UI.humanDuration(v, { padded: true, unknown: "–" })),
          };
        }"""
    )
    assert got["clock"] == [
        "0:00", "0:09", "1:00", "1:15", "10:00", "59:59", "1:00:00", "1:02:05", "10:00:00", "0:00", "", "", "", "",
    ]  # fmt: skip
    assert got["human"] == [
        "0 s", "9 s", "1 min 0 s", "1 min 15 s", "10 min 0 s", "59 min 59 s", "1 h 0 min", "1 h 2 min", "10 h 0 min",
        "0 s", "", "", "", "",
    ]  # fmt: skip
    assert got["padded"] == [
        "0 s", "9 s", "1 min 00 s", "1 min 15 s", "10 min 00 s", "59 min 59 s", "1 h 00 min", "1 h 02 min",
        "10 h 00 min", "0 s", "–", "–", "–", "–",
    ]  # fmt: skip


def test_refusals_read_as_sentences(page):
    got = page.evaluate(
        """async () => {
          const UI = StreamifyUI;
          const answer = (body, status, statusText = "") => new Response(body, { status, statusText });
          return {
            text: await UI.problem(answer(JSON.stringify({ detail: "file too large: the limit is 10 bytes" }), 413)),
            fields: await UI.problem(answer(JSON.stringify({ detail: [
              { loc: ["body", "email"], msg: "value is not a valid email address" },
              { loc: ["body", "priority"], msg: "Value error, must be at most 100" },
              { loc: [], msg: "body is required" },
            ] }), 422)),
            html: await UI.problem(answer("<html>Bad Gateway</html>", 502, "Bad Gateway")),
            empty: await UI.problem(answer("", 500)),
            raw: UI.detail({ detail: "operators only" }, "Operators only."),
            none: UI.detail(UI.parseJson("<html>"), UI.answered(503)),
          };
        }"""
    )
    assert got == {
        "text": "File too large: the limit is 10 bytes",
        "fields": "Email: value is not a valid email address priority: must be at most 100 Body is required",
        "html": "The server answered 502 Bad Gateway.",
        "empty": "The server answered 500.",
        "raw": "operators only",
        "none": "the server answered 503",
    }

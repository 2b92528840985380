"""Headless Debian Chromium for the page tests: launch flags (../shared/NOTES.md), viewports, screenshots.

The `browser` fixture itself lives in conftest.py so every page test shares one Chromium per session.
"""

import os
import shutil
from pathlib import Path

from playwright.sync_api import Page

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


# `make screenshots` sets it: a test run writes test-artifacts/ only and leaves the tracked docs/ as they are.
TO_DOCS = os.environ.get("SCREENSHOTS_TO_DOCS") == "1"


def shoot(page: Page, name: str, *, docs: bool = True, full_page: bool = True) -> None:
    """Full-page screenshot into test-artifacts/, and with SCREENSHOTS_TO_DOCS=1 (the current one a person looks
    at) into docs/.

    full_page=False keeps the viewport as it is: a full-page shot resizes it, which ends hover states."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=full_page)
    if docs and TO_DOCS:
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHOTS / name, DOCS_SHOTS / name)

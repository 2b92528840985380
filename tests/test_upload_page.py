"""The upload page in Debian's headless Chromium against the real stack: a creator signs up, uploads two
files with tus-js-client and watches both progress bars until both videos are ready; a connection cut
mid-PATCH and a page reload both resume from the server's offset; a refused file shows why.

The browser talks to the API through a small TCP proxy owned by the test: it slows uploads down enough to
watch progress, and can cut a connection in the middle of a PATCH body, as a dropped network would.
"""

import time

import httpx

from tests.browser import DESKTOP, PHONE, shoot
from tests.conftest import wait_for
from tests.uploads import items, server_view, signed_up_page, wait_items

CHUNK_BYTES = 8 * 1024 * 1024  # upload.js's tus chunk size


def test_two_files_upload_with_progress_and_become_ready(stack, big_clips, browser, proxy):
    page = signed_up_page(browser, proxy, DESKTOP)
    files = big_clips
    page.set_input_files("#file-input", [str(f) for f in files])
    page.wait_for_selector(".upload-item >> nth=1")
    page.locator(".upload-item .f-title").nth(0).fill("First from the page")
    page.locator(".upload-item .f-description").nth(0).fill("uploaded with tus-js-client")
    page.locator(".upload-item .f-title").nth(1).fill("Second from the page")
    page.locator(".upload-item .f-visibility").nth(1).select_option("unlisted")

    proxy.rate = 3e6  # slow enough to watch the bars move
    page.click("#start-all")
    seen: list[list[float]] = [[], []]
    stats: set[tuple[bool, bool]] = set()
    shot = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = items(page)
        for i, item in enumerate(now):
            if item["state"] == "uploading":
                seen[i].append(item["progress"])
                stats.add((item["speed"].endswith("/s"), item["eta"].endswith("left")))
        if not shot and all(0.2 < i["progress"] < 0.8 for i in now):
            shoot(page, "upload-desktop-progress.png")
            shot = True
        if all(i["state"] not in ("queued", "uploading") for i in now):
            break
        time.sleep(0.1)
    proxy.rate = None
    for values in seen:  # each bar advanced through several values, never backwards
        middle = sorted({v for v in values if 0 < v < 1})
        assert len(middle) >= 3, values
        assert values == sorted(values), values
    assert (True, True) in stats, stats  # speed and time left were shown
    assert shot

    done = wait_items(page, {"ready"})
    for item, f in zip(done, files, strict=True):
        assert item["name"] == f.name and item["videoId"], item
    page.wait_for_selector(f'.upload-item a.watch[href="/watch/{done[0]["videoId"]}"]', state="visible")
    assert page.locator(".upload-item .state-text").nth(1).inner_text() == "Ready to watch."
    with httpx.Client(base_url=stack.url) as anonymous:
        first = anonymous.get(f"/api/v1/videos/{done[0]['videoId']}").json()
        second = anonymous.get(f"/api/v1/videos/{done[1]['videoId']}").json()
    assert (first["title"], first["description"], first["status"]) == (
        "First from the page",
        "uploaded with tus-js-client",
        "ready",
    )
    assert (second["title"], second["visibility"], second["status"]) == ("Second from the page", "unlisted", "ready")
    shoot(page, "upload-desktop.png")
    page.context.close()


def test_upload_cut_mid_patch_resumes_without_resending(clips, browser, proxy):
    page = signed_up_page(browser, proxy, DESKTOP)
    clip = clips["phone"]
    size = clip.stat().st_size
    page.set_input_files("#file-input", str(clip))
    proxy.rate = 3e6
    proxy.cut_after = 1_234_567  # the first PATCH dies after this many bytes
    cuts_before = proxy.cuts
    page.click(".upload-item .start")
    item = wait_items(page, {"ready"})[0]
    proxy.rate = None
    assert proxy.cuts == cuts_before + 1
    view = server_view(page, item["url"])
    # The server's own account: every byte written once; the second PATCH began where the cut left off.
    assert view["received_bytes"] == size, view
    assert len(view["patch_offsets"]) == 2 and view["patch_offsets"][0] == 0, view
    resumed_at = view["patch_offsets"][1]
    assert 0 < resumed_at < size and resumed_at % CHUNK_BYTES != 0, view
    assert view["state"] == "done" and view["video_id"] == item["videoId"]
    page.context.close()


def test_paused_upload_resumes_after_a_reload(big_clips, browser, proxy):
    page = signed_up_page(browser, proxy, DESKTOP)
    clip = big_clips[0]
    size = clip.stat().st_size
    page.set_input_files("#file-input", str(clip))
    page.fill(".upload-item .f-title", "Survives a reload")
    proxy.rate = 3e6
    page.click(".upload-item .start")
    wait_for(lambda: items(page)[0]["progress"] > 0.4, "some progress", timeout=60)
    page.click(".upload-item .pause")
    url = items(page)[0]["url"]
    proxy.rate = None
    paused_at = server_view(page, url)["offset"]  # waits for the aborted PATCH to finish writing
    assert 0 < paused_at < size

    page.reload()
    page.wait_for_selector("#unfinished", state="visible")
    assert clip.name in page.inner_text("#unfinished-list")
    page.set_input_files("#file-input", str(clip))
    page.wait_for_function("document.querySelector('.upload-item .start').textContent === 'Resume upload'")
    assert page.input_value(".upload-item .f-title") == "Survives a reload"  # metadata from the first try
    page.click(".upload-item .start")
    item = wait_items(page, {"ready"})[0]
    assert item["url"] == url  # the same upload, continued
    view = server_view(page, url)
    assert view["received_bytes"] == size, view  # nothing sent twice
    assert view["patch_offsets"][0] == 0 and paused_at in view["patch_offsets"], view
    page.context.close()


def test_phone_layout_and_refused_file(clips, browser, proxy, tmp_path):
    page = signed_up_page(browser, proxy, PHONE)
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video at all\n" * 1000)
    page.set_input_files("#file-input", [str(clips["720p_short"]), str(notes)])
    page.wait_for_selector(".upload-item >> nth=1")
    page.click("#start-all")
    page.wait_for_selector('.upload-item[data-state="refused"] .error-text', state="visible")
    error = page.locator('.upload-item[data-state="refused"] .error-text').inner_text()
    assert error.startswith("Refused: not a media file"), error
    wait_items(page, {"ready", "refused"})
    assert [i["state"] for i in items(page)] == ["ready", "refused"]
    # Nothing wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "upload-phone.png")
    page.context.close()

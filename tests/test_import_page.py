"""The upload page's "import from a URL" form in headless Chromium against the real stack: a URL that can never
be fetched is refused under the form with the reason, and a file on a local server (127.0.0.1, allowed by the
stack's STREAMIFY_EGRESS_ALLOWED_HOSTS) shows in the list, downloads and becomes ready to watch."""

from tests.browser import DESKTOP, shoot
from tests.import_server import file_server
from tests.uploads import items, signed_up_page, wait_items


def test_import_from_a_url_on_the_upload_page(stack, clips, browser, proxy):
    page = signed_up_page(browser, proxy, DESKTOP)
    page.fill("#import-url", "http://10.0.0.1/clip.mp4")
    page.click("#import-start")
    page.wait_for_selector("#import-error", state="visible")
    error = page.inner_text("#import-error")
    assert error.startswith("Refused: Cannot import from this URL: the host 10.0.0.1 is a private"), error
    assert items(page) == []  # nothing was recorded

    with file_server({"clip.mkv": clips["silent"]}, huge_bytes=1) as server:
        page.fill("#import-url", server.url("/files/clip.mkv"))
        page.fill("#import-title", "From a link")
        page.select_option("#import-visibility", "unlisted")
        page.click("#import-start")
        page.wait_for_selector('.upload-item[data-kind="import"]')
        assert page.is_hidden("#import-error") and page.input_value("#import-url") == ""
        (done,) = wait_items(page, {"ready"}, timeout=240)
    assert done["name"] == server.url("/files/clip.mkv") and done["videoId"]
    item = page.locator('.upload-item[data-kind="import"]')
    assert item.locator(".file-name").inner_text() == "From a link"
    assert item.locator(".state-text").inner_text() == "Ready to watch."
    assert item.locator("a.watch").get_attribute("href") == f"/watch/{done['videoId']}"
    video = page.evaluate("async (id) => (await fetch(`/api/v1/videos/${id}`)).json()", done["videoId"])
    assert (video["title"], video["visibility"], video["status"]) == ("From a link", "unlisted", "ready")
    shoot(page, "upload-import.png")
    page.context.close()

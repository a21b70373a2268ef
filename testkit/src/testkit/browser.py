"""Browser checks through Playwright and Debian's Chromium (skipped, saying why, where none is installed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def chromium_path() -> str | None:
    """The system's Chromium (Debian's ``chromium`` package; Playwright cannot download its own
    browser offline)."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


BROWSER_TIMEOUT_MS = 600_000


def browser_page(url: str, screenshot_dir: Path | None = None):
    """A context manager giving a Playwright page on ``url`` in headless Chromium; it records
    every request, so a test can assert that nothing left 127.0.0.1. Skips the test (with its
    reason) where no Chromium or Playwright is installed."""
    import contextlib

    chromium = chromium_path()
    if chromium is None:
        pytest.skip("no Chromium installed (apt-get install chromium): browser test skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: browser test skipped")

    @contextlib.contextmanager
    def opened():
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.requests_seen = []
                page.on("request", lambda r: page.requests_seen.append(r.url))
                # generous limits: they catch a hang, they are no speed budget (a busy CI machine
                # can be many times slower than an idle one); tests wait on what the page shows
                page.set_default_timeout(BROWSER_TIMEOUT_MS)
                expect_timeout(BROWSER_TIMEOUT_MS)
                page.goto(url, wait_until="networkidle")
                yield page
            finally:
                browser.close()

    return opened()


def expect_timeout(ms: int) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=ms)


def wait_for_images(page) -> None:
    """Wait until every image on the page has loaded (before a screenshot or reading a figure)."""
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth)")


def offsite_requests(page, url: str) -> list[str]:
    """Requests the page made to anything but the demo's own server (data: and blob: aside)."""
    return [u for u in page.requests_seen if not u.startswith((url.rstrip("/"), "data:", "blob:"))]


def screenshot_dir(tmp_path: Path) -> Path:
    """Where browser tests save screenshots: ``$DL_SCREENSHOTS`` (e.g. docs/screenshots, to
    refresh the README's), else the test's own folder."""
    folder = Path(os.environ.get("DL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder

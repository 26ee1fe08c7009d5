"""Real headless Chromium (Debian's `chromium`) driven by Playwright, for the web client's tests.

    with chromium() as browser:
        tab = open_tab(browser)
        tab.page.goto(url)
        tab.screenshot("overview")
        tab.assert_no_errors()

Playwright's own browser download is never used: `launch` points at the system binary.
Every console error and uncaught page error is collected, so a test can fail on them.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
VIEWPORT = {"width": 1440, "height": 900}
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Launch the system Chromium; fails (never skips) when it is not installed."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise RuntimeError(
            "chromium is not installed: run `make test` (or apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """One browser context and page, with the errors it logged."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    allowed_errors: str | None = None
    """A pattern of errors this test expects (e.g. failed requests while offline)."""

    def screenshot(self, name: str) -> Path:
        """Write the viewport to tests/artifacts/screenshots/<name>.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def assert_no_errors(self) -> None:
        """No console error or page error was logged (except the `allowed_errors`)."""
        pattern = re.compile(self.allowed_errors) if self.allowed_errors else None
        unexpected = [e for e in self.errors if not (pattern and pattern.search(e))]
        assert not unexpected, f"browser errors: {unexpected}"

    def close(self) -> None:
        self.context.close()


def open_tab(browser: Browser, *, width: int | None = None, color_scheme: str | None = None) -> Tab:
    """A fresh context (no storage shared with other tabs), at desktop size or `width`
    (a phone's 844 px height below 800 px wide), in the system's light or `color_scheme`."""
    viewport = (
        VIEWPORT if width is None else {"width": width, "height": 844 if width < 800 else 900}
    )
    context = browser.new_context(viewport=viewport, color_scheme=color_scheme or "light")
    page = context.new_page()
    tab = Tab(context, page)
    page.on(
        "console",
        lambda message: tab.errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: tab.errors.append(f"page error: {error}"))
    return tab


@contextlib.contextmanager
def checked_tab(
    browser: Browser, *, width: int | None = None, color_scheme: str | None = None
) -> Iterator[Tab]:
    """`open_tab` for a block: closed after it, which fails on any unexpected browser error."""
    tab = open_tab(browser, width=width, color_scheme=color_scheme)
    try:
        yield tab
        tab.assert_no_errors()
    finally:
        tab.close()

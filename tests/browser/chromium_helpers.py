"""Shared by the browser tests of rtnb.js, its React hook and WebRTC peers: Debian's
Chromium launched by Playwright, with the flags every test here uses.

Named ``chromium_helpers`` (not ``conftest``) so that other browser tests keep their
own fixtures; pytest's rootdir import mode puts this directory on ``sys.path``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from chromium_support import CHROMIUM_ARGUMENTS

if os.environ.get("RTNB_CI"):
    import playwright.async_api as playwright_api  # CI installs the test extra: a missing one fails
else:
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright is not installed (pip install -e '.[test]')"
    )

#: WebRTC between pages of one browser on loopback: real host candidates instead of
#: mDNS names (nothing resolves .local in a container), and a fake camera and its
#: permission prompt answered, so /rtc can show a stream without a device.
WEBRTC_ARGUMENTS = [
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
#: generous for a loaded CI machine; conditions are polled, so passing runs are fast
WAIT_MS = 15_000


@asynccontextmanager
async def chromium(executable: str, extra_arguments: list[str] | None = None) -> AsyncIterator[Any]:
    """A headless Chromium, closed on exit."""
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGUMENTS + (extra_arguments or [])
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Any, url: str) -> Any:
    """A new page at ``url``; its uncaught errors collect in ``page.errors``, its console in ``page.console``."""
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    console: list[str] = []  # what the page logged, to read when a test fails
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.console = console
    await page.goto(url)
    return page

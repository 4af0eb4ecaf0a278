"""Fixtures for the host tests: Chromium through Playwright, one browser per module.

Hosts need the test extra (Playwright, JupyterLab, Notebook 7, Voilà, marimo)
and Debian's Chromium; a missing piece skips with the reason, and fails under
``RTNB_CI`` (tests/conftest.py's rule).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from hosts_harness import CHROMIUM_ARGUMENTS, require_chromium

if os.environ.get("RTNB_CI"):
    import playwright.async_api as playwright_api  # CI installs the test extra: a missing one fails
else:
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright is not installed (pip install -e '.[test]')"
    )


@pytest.fixture(scope="module")
def chromium(pytestconfig: pytest.Config) -> str:
    return require_chromium(pytestconfig)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: str) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGUMENTS)
        try:
            yield launched
        finally:
            await launched.close()

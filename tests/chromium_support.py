"""The one set of flags every browser test launches Debian's Chromium with (Playwright, headless).

At the top of ``tests/`` so that every test directory imports it by name, as it
does ``node_tools``. WebRTC's extra flags are in ``tests/browser/chromium_helpers.py``.
"""

from __future__ import annotations

#: no sandbox (containers run as root), no GPU, and nothing that reaches the network on its own
CHROMIUM_ARGUMENTS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

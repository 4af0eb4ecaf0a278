"""rtnb.js with tokens, and cross-site requests refused, in a real browser (headless Chromium)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from security_helpers import jwt_authenticator, make_token

from rtnb.testing import running_hub

if os.environ.get("RTNB_CI"):
    import playwright.async_api as playwright_api
else:
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright is not installed (pip install -e '.[test]')"
    )

CHROMIUM_ARGUMENTS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"]

USE_CLIENT = """
async ([token, transport]) => {
  const { RtnbClient } = await import("/rtnb.js");
  const client = new RtnbClient(undefined, { token, transports: [transport], openTimeout: 4000 });
  const opened = new Promise((resolve) => client.on("status", (event) => {
    if ((event.detail?.status ?? event.status ?? client.status) === "open") resolve();
  }));
  const received = new Promise((resolve) => client.on("message", (event) => resolve(event.detail ?? event)));
  client.subscribe("plant/7/#");
  await opened;
  const ack = await client.publish("plant/7/browser", { value: 7 });
  const message = await received;
  let refusal = null;
  try { await client.publish("plant/8/browser", 1); } catch (error) { refusal = error.code; }
  client.close();
  return { offset: ack.offset, topic: message.topic, refusal };
}
"""

CROSS_SITE = """
async (target) => {
  const closeCode = await new Promise((resolve) => {
    const socket = new WebSocket(target.replace("http", "ws") + "/ws");
    socket.onopen = () => resolve("opened");
    socket.onclose = (event) => resolve(event.code);
  });
  let publish;
  try {
    const response = await fetch(target + "/publish/plant/1", { method: "POST", body: "1" });
    publish = response.status;
  } catch (error) {
    publish = "blocked";
  }
  return { closeCode, publish };
}
"""


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGUMENTS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
async def test_rtnb_js_with_a_token(browser: Any, transport: str) -> None:
    async with running_hub(authenticator=jwt_authenticator()) as server:
        page = await browser.new_page()
        try:
            await page.goto(server.url + "/healthz")
            result = await page.evaluate(USE_CLIENT, [make_token(), transport])
        finally:
            await page.close()
    assert result == {"offset": 1, "topic": "plant/7/browser", "refusal": "forbidden"}


async def test_a_foreign_site_cannot_reach_the_hub(browser: Any) -> None:
    async with running_hub() as target, running_hub() as other_site:
        page = await browser.new_page()
        try:
            await page.goto(other_site.url + "/healthz")
            result = await page.evaluate(CROSS_SITE, target.url)
        finally:
            await page.close()
        assert result["closeCode"] == 1006  # the handshake was refused (403)
        assert result["publish"] == "blocked"  # 403 without CORS headers: the page learns nothing
        assert target.hub.stats.messages_in == 0  # and nothing was published

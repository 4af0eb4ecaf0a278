"""rtnb.js with tokens, and cross-site requests refused, in a real browser (headless Chromium)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from chromium_support import CHROMIUM_ARGUMENTS
from security_helpers import jwt_authenticator, make_token

from rtnb.testing import running_hub

if os.environ.get("RTNB_CI"):
    import playwright.async_api as playwright_api
else:
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright is not installed (pip install -e '.[test]')"
    )


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


# -- CORS on errors, rtnb.js from another origin, DNS rebinding ---------------------------------------

CROSS_ORIGIN_CLIENT = """
async (target) => {
  const { RtnbClient } = await import(target + "/rtnb.js");  // a module import is a CORS request
  const client = new RtnbClient(target, { transports: ["sse"], openTimeout: 4000 });
  const opened = new Promise((resolve) => client.on("status", (event) => {
    if ((event.detail?.status ?? event.status ?? client.status) === "open") resolve();
  }));
  client.subscribe("cors/#");
  await opened;
  const ack = await client.publish("cors/a", { value: 1 });
  let refusal = null;
  try { await client.publish("cors/a", "x".repeat(2 * 1024 * 1024)); } catch (error) { refusal = error.code; }
  client.close();
  return { offset: ack.offset, refusal };
}
"""


async def test_rtnb_js_from_an_allowed_origin_sees_why_a_publish_is_refused(browser: Any) -> None:
    async with running_hub() as dashboard:
        origin = f"http://127.0.0.1:{dashboard.port}"
        async with running_hub(allowed_origins=[origin]) as target:
            page = await browser.new_page()
            try:
                await page.goto(dashboard.url + "/healthz")
                result = await page.evaluate(CROSS_ORIGIN_CLIENT, target.url)
            finally:
                await page.close()
    # the 413 reaches the page with its CORS header: its code, not an opaque "unavailable"
    assert result == {"offset": 1, "refusal": "message_too_big"}


REBOUND = """
async () => {
  let publish;
  try {
    publish = (await fetch("/publish/rebound/a", { method: "POST", body: "1" })).status;
  } catch (error) {
    publish = "failed";
  }
  const closeCode = await new Promise((resolve) => {
    const socket = new WebSocket(location.origin.replace("http", "ws") + "/ws");
    socket.onopen = () => resolve("opened");
    socket.onclose = (event) => resolve(event.code);
  });
  return { publish, closeCode };
}
"""


async def test_dns_rebinding_to_a_loopback_hub_is_refused(chromium_path: str) -> None:
    """A page served as evil.example:PORT, whose name then resolves to 127.0.0.1: same-origin to the
    browser, so only the Host check stops it."""
    async with running_hub() as target:
        rebound = f"http://evil.example:{target.port}"
        rules = "--host-resolver-rules=MAP evil.example 127.0.0.1"
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium_path, args=[*CHROMIUM_ARGUMENTS, rules])
            try:
                page = await browser.new_page()
                # The page is on evil.example:PORT, an origin whose name now resolves to 127.0.0.1
                # (the document itself is the hub's refusal: what matters is the origin it runs in).
                response = await page.goto(rebound + "/healthz")
                assert response is not None and response.status == 403
                result = await page.evaluate(REBOUND)
            finally:
                await browser.close()
        assert result == {"publish": 403, "closeCode": 1006}
        assert target.hub.stats.messages_in == 0

"""rtnb.js in Chromium: a client closed in the tick that created it never connects.

React's StrictMode mounts an effect, cleans it up and mounts it again at once; a
client created and closed in that first mount must leave nothing behind on the hub
(before the fix, its queued auto-connect cleared the closed flag and it connected,
subscriptions included).
"""

from __future__ import annotations

import asyncio

from chromium_helpers import WAIT_MS, chromium, open_page

from rtnb.testing import running_hub, wait_until


async def test_a_client_closed_in_its_first_tick_never_connects(chromium_path: str) -> None:
    async with running_hub() as server, chromium(chromium_path) as browser:
        page = await open_page(browser, f"{server.url}/topics")
        await page.evaluate(
            """async () => {
                const { RtnbClient } = await import("/rtnb.js");
                const closed = new RtnbClient();
                window.closedSeen = [];
                closed.on("message", (message) => window.closedSeen.push(message));
                closed.subscribe("strict/#");
                closed.close();                       // StrictMode's cleanup, same tick
                window.closedClient = closed;
                const kept = new RtnbClient();         // StrictMode's second mount
                window.keptSeen = [];
                kept.on("message", (message) => window.keptSeen.push(message));
                kept.subscribe("strict/#");
            }"""
        )
        await wait_until(lambda: server.hub.fanout.subscribers_of("strict/a") >= 1, timeout=WAIT_MS / 1000)
        await server.hub.publish("strict/a", {"n": 1})
        await page.wait_for_function("() => window.keptSeen.length === 1", timeout=WAIT_MS)
        # Give a wrongly connecting client the time to show itself.
        await asyncio.sleep(0.3)
        assert server.hub.connection_count == 1
        assert server.hub.fanout.subscribers_of("strict/a") == 1
        state = await page.evaluate("() => [window.closedClient.status, window.closedSeen.length]")
        assert state == ["closed", 0]
        assert page.errors == []

"""Presence in a WebRTC room, in Chromium: a peer that vanishes in the middle of the
negotiation, without a bye, is dropped when the hub reports its connection gone.

The vanishing peer is a raw protocol client (``WirePeer``): it joins like rtnb-rtc.js
does (subscribes, says hello), receives the page's offer in its inbox, never answers,
and closes its WebSocket.
"""

from __future__ import annotations

from chromium_helpers import WAIT_MS, chromium, open_page

from rtnb.testing import WirePeer, running_hub


async def test_a_peer_that_vanishes_mid_negotiation_is_dropped_through_presence(chromium_path: str) -> None:
    async with running_hub() as server, chromium(chromium_path) as browser:
        page = await open_page(browser, f"{server.url}/rtc?room=lab&id=alice")
        await page.wait_for_function("() => rtnbRtc.room !== null", timeout=WAIT_MS)

        async with WirePeer(server.ws_url) as ghost:
            assert ghost.welcome is not None
            for topic in ("rtc/lab/all", "rtc/lab/to/ghost"):
                await ghost.send({"op": "subscribe", "topic": topic})
                await ghost.next_op("subscribed")
            hello = {"type": "hello", "from": "ghost", "client": ghost.welcome["client"], "session": "s1"}
            await ghost.send({"op": "publish", "topic": "rtc/lab/all", "data": hello})
            # Alice (the impolite one: "alice" < "ghost") answers the hello and sends an offer.
            signals = []
            while not any(signal.get("type") == "description" for signal in signals):
                message = await ghost.next_op("message", timeout=WAIT_MS / 1000)
                if message["topic"] == "rtc/lab/to/ghost":
                    signals.append(message["data"])
            assert signals[0] == {
                "type": "hello",
                "from": "alice",
                "client": signals[0]["client"],
                "session": signals[0]["session"],
                "direct": True,
            }
            offer = next(signal for signal in signals if signal.get("type") == "description")
            assert offer["from"] == "alice" and offer["description"]["type"] == "offer"
            await page.wait_for_selector('#peers li[data-peer="ghost"]', timeout=WAIT_MS)

        # The ghost's WebSocket is gone: presence says it left, and Alice drops it.
        await page.wait_for_function("() => rtnbRtc.room.peers.size === 0", timeout=WAIT_MS)
        await page.wait_for_selector('#peers li[data-peer="ghost"]', state="detached", timeout=WAIT_MS)
        assert await page.evaluate("() => rtnbRtc.room.members.length") == 1
        assert page.errors == []

"""Joining a WebRTC room in Chromium, through rtnb.js's lazy ``rtcPeer`` export: what a
lone peer sees, and the typed refusals (a name that is not one topic level, a client
that is not on WebSocket, where presence is unavailable)."""

from __future__ import annotations

from chromium_helpers import chromium, open_page

from rtnb.testing import running_hub


async def test_rtc_peer_from_rtnb_js_joins_alone_and_refuses_what_it_cannot_do(chromium_path: str) -> None:
    async with running_hub() as server, chromium(chromium_path) as browser:
        page = await open_page(browser, f"{server.url}/topics")
        result = await page.evaluate(
            """async () => {
                const { RtnbClient, rtcPeer } = await import("/rtnb.js");
                const failure = (promise) => promise.then(() => "joined", (error) => error.code);
                const room = await rtcPeer(new RtnbClient(), "solo", { id: "only" });
                const joined = [room.id, room.topics.all, room.topics.inbox, room.peers.size, room.members.length];
                room.leave();
                return {
                    joined,
                    badRoom: await failure(rtcPeer(new RtnbClient(), "a/b")),
                    badId: await failure(rtcPeer(new RtnbClient(), "lab", { id: "+" })),
                    overSse: await failure(rtcPeer(new RtnbClient(undefined, { transports: ["sse"] }), "lab")),
                };
            }"""
        )
        assert result == {
            "joined": ["only", "rtc/solo/all", "rtc/solo/to/only", 0, 1],
            "badRoom": "bad_field",
            "badId": "bad_field",
            "overSse": "unavailable",
        }
        assert page.errors == []

"""WebRTC over a real hub, in Chromium: the /rtc page's peers find each other through
presence and topics under ``rtc/<room>/`` and talk over a data channel.

The hub runs with JWT auth. Alice and Bob may publish in ``rtc/lab/``; they exchange
text and a file (several chunks), and camera streams (Chromium's fake device), over
loopback host candidates without any STUN server. Mallory's token lets her listen in
the room but not publish there: joining is refused with ``forbidden``, and nobody
ever sees her as a peer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chromium_helpers import WAIT_MS, WEBRTC_ARGUMENTS, chromium, open_page

from rtnb.cli.token import mint_token
from rtnb.core.topics import Pattern
from rtnb.server.auth import AccessControl
from rtnb.server.runner import HubServer
from rtnb.testing import running_hub

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SECRET = "a-test-secret-of-at-least-thirty-two-bytes"


@pytest.fixture
async def jwt_hub() -> AsyncIterator[HubServer]:
    async with running_hub(authenticator=AccessControl.jwt(secret=SECRET)) as server:
        yield server


def token(subject: str, publish: list[str]) -> str:
    return mint_token(SECRET, subject, publish=publish, subscribe=["rtc/lab/#"], ttl=600)


async def join(browser: Any, hub: HubServer, peer: str, publish: list[str]) -> Any:
    return await open_page(browser, f"{hub.url}/rtc?room=lab&id={peer}&token={token(peer, publish)}")


async def wait_connected(page: Any, other: str) -> None:
    """The data channel to ``other`` is open, and the page lists ``other`` as an open peer."""
    await page.wait_for_function("(other) => rtnbRtc.open.has(other)", arg=other, timeout=WAIT_MS)
    # Every room event reaches the page, even for a peer met while rtcPeer() was joining.
    await page.wait_for_selector(f'#peers li[data-peer="{other}"][data-open]', timeout=WAIT_MS)


@pytest.mark.timeout(180)
async def test_two_peers_exchange_data_and_a_peer_without_publish_rights_is_refused(
    jwt_hub: HubServer, chromium_path: str
) -> None:
    async with chromium(chromium_path, WEBRTC_ARGUMENTS) as browser:
        alice = await join(browser, jwt_hub, "alice", ["rtc/lab/#"])
        bob = await join(browser, jwt_hub, "bob", ["rtc/lab/#"])
        await wait_connected(alice, "bob")
        await wait_connected(bob, "alice")

        # The pair connected over host candidates: no STUN or TURN server was involved.
        candidate_types = await alice.evaluate(
            """async () => {
                const stats = [...(await rtnbRtc.room.connection("bob").getStats()).values()];
                const pair = stats.find((entry) => entry.type === "candidate-pair" && entry.nominated
                                                   && entry.state === "succeeded");
                const byId = new Map(stats.map((entry) => [entry.id, entry]));
                return [byId.get(pair.localCandidateId).candidateType, byId.get(pair.remoteCandidateId).candidateType];
            }"""
        )
        assert candidate_types == ["host", "host"]

        # Text both ways over the data channel.
        await alice.fill("#text", "hello from alice")
        await alice.click("#chat button")
        await bob.fill("#text", "hello from bob")
        await bob.click("#chat button")
        await bob.wait_for_function("() => rtnbRtc.received.length === 1", timeout=WAIT_MS)
        await alice.wait_for_function("() => rtnbRtc.received.length === 1", timeout=WAIT_MS)
        assert await bob.evaluate("() => rtnbRtc.received") == [{"peer": "alice", "data": {"text": "hello from alice"}}]
        assert await alice.evaluate("() => rtnbRtc.received") == [{"peer": "bob", "data": {"text": "hello from bob"}}]

        # A file of several chunks, byte for byte.
        content = os.urandom(100_000)
        await alice.set_input_files(
            "#file", {"name": "sample.bin", "mimeType": "application/octet-stream", "buffer": content}
        )
        await alice.click("#send-file")
        await bob.wait_for_function("() => rtnbRtc.files.length === 1", timeout=WAIT_MS)
        received = await bob.evaluate(
            """async () => {
                const file = rtnbRtc.files[0];
                const digest = await crypto.subtle.digest("SHA-256", await file.blob.arrayBuffer());
                const hex = [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
                return { peer: file.peer, name: file.name, size: file.size, sha256: hex };
            }"""
        )
        assert received == {
            "peer": "alice",
            "name": "sample.bin",
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }

        # Both fake cameras at once: both sides renegotiate together (glare), perfect
        # negotiation settles it, and each page plays the other's frames.
        await asyncio.gather(alice.click("#camera"), bob.click("#camera"))
        for page, other in ((alice, "bob"), (bob, "alice")):
            await page.wait_for_function(
                "() => document.getElementById('camera-status').dataset.state === 'on'", timeout=WAIT_MS
            )
            await page.wait_for_function(
                '(other) => { const video = document.querySelector(`#videos video[data-peer="${other}"]`);'
                " return video && video.videoWidth > 0; }",
                arg=other,
                timeout=WAIT_MS,
            )

        ARTIFACTS.mkdir(exist_ok=True)
        await bob.screenshot(path=str(ARTIFACTS / "rtc-page.png"))

        # Mallory may listen in rtc/lab/ but publish only elsewhere: refused, and never a peer.
        mallory = await join(browser, jwt_hub, "mallory", ["rtc/elsewhere/#"])
        await mallory.wait_for_function("() => rtnbRtc.error !== null", timeout=WAIT_MS)
        assert (await mallory.evaluate("() => rtnbRtc.error.code")) == "forbidden"
        assert await mallory.get_attribute("#error", "data-code") == "forbidden"
        for page, other in ((alice, "bob"), (bob, "alice")):
            assert await page.evaluate("() => [...rtnbRtc.room.peers.keys()]") == [other]

        # Presence names Bob's hub connection, the one his hello announced.
        assert await alice.evaluate(
            "() => rtnbRtc.room.members.some((member) => member.client === rtnbRtc.room.clients.get('bob'))"
        )

        # All of it was signalled through the hub, on the room's topics.
        topics = set(jwt_hub.hub.backplane.positions(Pattern.parse("rtc/lab/#")))
        assert {"rtc/lab/all", "rtc/lab/to/alice", "rtc/lab/to/bob"} <= topics
        assert not any("mallory" in topic for topic in topics)
        for page in (alice, bob, mallory):
            assert page.errors == []

        # Bob reloads: a new session under the same id replaces the old connection.
        await bob.reload()
        await wait_connected(bob, "alice")
        await alice.wait_for_function(
            "() => rtnbRtc.room.peers.size === 1 && rtnbRtc.room.connection('bob').connectionState === 'connected'",
            timeout=WAIT_MS,
        )
        await bob.fill("#text", "back again")
        await bob.click("#chat button")
        await alice.wait_for_function("() => rtnbRtc.received.at(-1)?.data.text === 'back again'", timeout=WAIT_MS)

        # Bob closes his page: Alice's room drops him.
        await bob.close()
        await alice.wait_for_function("() => rtnbRtc.room.peers.size === 0 && rtnbRtc.open.size === 0", timeout=WAIT_MS)

"""Nothing is delivered on an expired token, on any transport (issue 18, item 5).

The hub's clock is shifted forward after the subscriber connected, so its token has
expired while the expiry timer (armed on the loop's clock) has not fired yet; a
message published then must not reach the subscriber. The long-poll case needs no
trick: a poll waiting when its token expires must not hand over what comes after.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import orjson
import websockets
from security_helpers import jwt_authenticator, make_token
from test_security_http import bearer, open_request, read_path, request

from rtnb.server.hub import HubConfig
from rtnb.testing import running_hub

LONG = {"ttl": 600}


class ShiftedClock:
    """``time.time()`` plus a shift the test moves forward."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


async def test_a_waiting_poll_answers_401_not_messages_published_after_its_token_expired() -> None:
    async with running_hub(HubConfig(), authenticator=jwt_authenticator()) as server:
        short = make_token(ttl=1.0)
        poll = asyncio.ensure_future(request(server, "GET", read_path("poll", "plant/7/#", timeout="8"), bearer(short)))
        await asyncio.sleep(1.3)  # the token has expired; the poll is (was) still waiting
        published = await request(server, "POST", "/publish/plant/7/a", bearer(make_token(**LONG)), b"1")
        assert published.status == 200
        response = await asyncio.wait_for(poll, 10)
        assert response.status == 401, response.body
        assert response.error_code == "unauthorized"
        assert b"plant/7/a" not in response.body


async def test_sse_writes_nothing_once_the_token_expired_even_before_its_timer_fires() -> None:
    clock = ShiftedClock()
    async with running_hub(HubConfig(), authenticator=jwt_authenticator(clock=clock)) as server:
        reader, writer = await open_request(server, "GET", read_path("sse", "plant/7/#"), bearer(make_token(ttl=60)))
        try:
            received = b""
            while b"event: ready" not in received:
                received += await asyncio.wait_for(reader.read(4096), 5)
            clock.shift = 120.0  # expired by the hub's clock; the timer is still 60 s away
            publisher = bearer(make_token(ttl=3600))
            assert (await request(server, "POST", "/publish/plant/7/a", publisher, b"1")).status == 200
            rest = await asyncio.wait_for(reader.read(), 5)  # the stream ends
            assert b"event: message" not in rest
            assert b'"code":"unauthorized"' in rest
        finally:
            writer.close()


async def test_websocket_writes_nothing_once_the_token_expired_even_before_its_timer_fires() -> None:
    clock = ShiftedClock()
    async with running_hub(HubConfig(ping_interval=0), authenticator=jwt_authenticator(clock=clock)) as server:
        url = f"ws://127.0.0.1:{server.port}/ws?token={quote(make_token(ttl=60))}"
        async with websockets.connect(url) as socket:
            assert orjson.loads(await socket.recv())["op"] == "welcome"
            await socket.send(orjson.dumps({"op": "subscribe", "topic": "plant/7/#", "id": 1}).decode())
            assert orjson.loads(await socket.recv())["op"] == "subscribed"
            clock.shift = 120.0
            publisher = bearer(make_token(ttl=3600))
            assert (await request(server, "POST", "/publish/plant/7/a", publisher, b"1")).status == 200
            frames = []
            try:
                while True:
                    frames.append(orjson.loads(await asyncio.wait_for(socket.recv(), 5)))
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4004
            assert [frame["op"] for frame in frames] == ["error"]
            assert frames[0]["code"] == "unauthorized"

"""The reconnecting-session skeleton both clients share, driven without sockets.

A fake client supplies connections as plain objects whose end the test decides,
so the state machine, the reconnection loop and closing are checked directly;
the WebSocket and SSE clients' own tests check the same skeleton over real sockets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rtnb.client import AsyncClient, BackoffPolicy, ClientState
from rtnb.client._session import ReconnectingSession
from rtnb.client.sse import SSEClient
from rtnb.core.errors import ConnectionClosed, RtnbError, Unauthorized, Unavailable
from rtnb.testing import wait_until

POLICY = BackoffPolicy(initial=0.5, cap=4.0, max_attempts=3)


class FakeConnection:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ended = asyncio.Event()
        self.closed = False


class FakeSession(ReconnectingSession[FakeConnection]):
    """Opens what ``outcomes`` lists in turn (a connection, or an error to raise)."""

    def __init__(self, outcomes: list[FakeConnection | RtnbError | Exception], *, reconnect: bool = True) -> None:
        self.slept: list[float] = []

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        super().__init__(
            "fake://hub",
            reconnect=reconnect,
            backoff=POLICY,
            connect_timeout=None,
            fail_fast=False,
            random=lambda: 1.0,
            clock=lambda: 0.0,
            sleep=sleep,
        )
        self.outcomes = outcomes
        self.served: list[str] = []
        self.moves: list[tuple[ClientState, ClientState]] = []
        self.released: list[RtnbError | None] = []
        self.lost = 0
        self.current: FakeConnection | None = None

    async def _open(self) -> FakeConnection:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _session(self, connection: FakeConnection) -> None:
        if not self._in_state(ClientState.CONNECTING):
            return
        if connection.name == "crash":
            raise ValueError("a bug")
        self.current = connection
        self._set_state(ClientState.CONNECTED)
        self._backoff.connected()
        self.served.append(connection.name)
        try:
            await connection.ended.wait()
        finally:
            self.current = None

    async def _close_connection(self, was_connected: bool) -> None:
        if self.current is not None:
            self.current.closed = True

    def _release(self, error: RtnbError | None) -> None:
        self.released.append(error)

    def _connection_lost(self) -> None:
        self.lost += 1

    def _state_changed(self, old: ClientState, new: ClientState) -> None:
        self.moves.append((old, new))


async def test_a_lost_connection_is_reopened_after_a_backoff_and_served_again() -> None:
    first, second = FakeConnection("first"), FakeConnection("second")
    session = FakeSession([first, Unavailable("down"), second])
    assert await session.connect() is session
    assert session.state is ClientState.CONNECTED
    first.ended.set()
    await wait_until(lambda: session.served == ["first", "second"])
    assert session.reconnects == 1 and session.lost == 1
    assert session.slept == [POLICY.delay(1, lambda: 1.0), POLICY.delay(2, lambda: 1.0)]
    assert isinstance(session.last_error, Unavailable)
    assert [new for _old, new in session.moves] == [
        ClientState.CONNECTING,
        ClientState.CONNECTED,
        ClientState.DISCONNECTED,
        ClientState.CONNECTING,
        ClientState.DISCONNECTED,  # the failed attempt
        ClientState.CONNECTING,
        ClientState.CONNECTED,
    ]
    await session.close()
    assert second.closed and session.released == [None] and session.state is ClientState.CLOSED


async def test_it_gives_up_after_the_policys_attempts_and_says_why() -> None:
    connection = FakeConnection("only")
    session = FakeSession([connection, Unavailable("down"), Unavailable("down"), Unavailable("still down")])
    await session.connect()
    connection.ended.set()
    await wait_until(lambda: session.state is ClientState.CLOSED)
    error = session.last_error
    assert isinstance(error, ConnectionClosed)
    assert error.message == "Gave up reconnecting to fake://hub after 3 attempts (last error: still down)."
    assert session.released == [error]


async def test_without_reconnect_a_lost_connection_closes_the_client() -> None:
    connection = FakeConnection("only")
    session = FakeSession([connection], reconnect=False)
    await session.connect()
    connection.ended.set()
    await wait_until(lambda: session.state is ClientState.CLOSED)
    assert session.released[0] is not None and "reconnect is off" in session.released[0].message
    with pytest.raises(ConnectionClosed, match="is closed; create a new one"):
        await session.connect()


async def test_a_refusal_at_first_connect_fails_it_at_once_and_is_kept() -> None:
    refusal = Unauthorized("no")
    session = FakeSession([refusal])
    with pytest.raises(Unauthorized):
        await session.connect()
    assert session.state is ClientState.CLOSED and session.last_error is refusal and session.released == [refusal]


async def test_a_bug_in_a_session_closes_the_client_loudly() -> None:
    session = FakeSession([FakeConnection("crash")])
    with pytest.raises(ConnectionClosed, match="The client failed"):
        await session.connect()
    assert session.state is ClientState.CLOSED


async def test_close_is_safe_twice_and_concurrently() -> None:
    session = FakeSession([FakeConnection("only")])
    await session.connect()
    await asyncio.gather(session.close(), session.close())
    await session.close()
    assert session.state is ClientState.CLOSED and session.released == [None]
    assert (ClientState.CLOSING, ClientState.CLOSED) in session.moves


def test_both_clients_are_built_on_the_one_skeleton() -> None:
    for client in (AsyncClient, SSEClient):
        assert issubclass(client, ReconnectingSession)
        for name in ("connect", "close", "_run", "_reconnect", "_set_state", "_finish"):
            assert name not in vars(client), f"{client.__name__} has its own {name}"


def test_the_skeleton_needs_every_part_it_names() -> None:
    class Incomplete(ReconnectingSession[Any]):
        async def _open(self) -> Any:
            return None

    with pytest.raises(TypeError):
        Incomplete(  # type: ignore[abstract]  # the point: an incomplete client cannot be made
            "x",
            reconnect=True,
            backoff=None,
            connect_timeout=None,
            fail_fast=False,
            random=lambda: 0.0,
            clock=lambda: 0.0,
            sleep=asyncio.sleep,
        )

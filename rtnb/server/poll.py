"""``GET /poll``: long polling, for clients behind proxies that break streams.

``GET /poll?topic=PATTERN[&topic=...]&cursor=C&timeout=S[&last=N]`` answers
``{"messages": [...], "cursor": C2}`` as soon as anything is there, or with an
empty list when ``timeout`` seconds pass (default ``HubConfig.poll_timeout``,
capped at ``HubConfig.poll_max_timeout``; ``timeout=0`` answers at once).
``messages`` holds the WebSocket ``message`` envelopes and ``gap`` objects, in
order. Pass ``C2`` as the next request's ``cursor`` to get exactly what came
after; it is the same cursor format as SSE event ids.

Each waiting request is a short-lived member of the hub: it subscribes with the
cursor as ``since`` (the same catch-up code as WebSocket and SSE), collects
what the hub hands it, and leaves. A response is bounded by
``Limits.max_queue_bytes``: past it the member is marked lagging, the response
goes out, and the next poll continues from its cursor.

A poll never outlives its token: it waits at most until the token expires, and
a poll answering after its token expired answers ``401`` instead of messages
(nothing is delivered on an expired token; the client's cursor is unchanged).
Wide cursors are stored by the hub (see :mod:`rtnb.core.cursor_store`); each
answer's cursor extends the one the poll came with.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..core.close_codes import CloseCode
from ..core.errors import BadField, ConnectionClosed, Unauthorized
from ..core.fanout import Batch
from ..core.history import Gap, coalesce_gaps
from ..core.message import Message
from ._http import HttpRouteHandler, load_cursor, parse_cursor, parse_last, parse_patterns, resume_requests

if TYPE_CHECKING:
    from ..core.origins import RequestGuard
    from .auth import AccessControl
    from .hub import Hub

__all__ = ["PollHandler", "PollSink", "parse_timeout"]


def parse_timeout(value: str | None, default: float, maximum: float) -> float:
    """The ``timeout`` query argument in seconds, capped at ``maximum``.

    Raises:
        BadField: not a finite, non-negative number.
    """
    if value is None or value == "":
        return min(default, maximum)
    try:
        timeout = float(value)
    except ValueError:
        raise BadField(f"'timeout' must be a number of seconds, got {value[:40]!r}.") from None
    if not math.isfinite(timeout) or timeout < 0:
        raise BadField(f"'timeout' must be a finite number of seconds >= 0, got {value[:40]!r}.")
    return min(timeout, maximum)


class PollSink:
    """Collects what the hub hands one waiting poll. Implements :class:`~rtnb.server.hub.Sink`.

    Args:
        max_bytes: stop taking batches past this many collected bytes.
    """

    transport = "poll"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: list[Message | Gap] = []
        self.size = 0
        self.closed = False
        self.arrived = asyncio.Event()
        self._answered = asyncio.get_running_loop().create_future()

    def send_batch(self, batch: Batch) -> bool:
        if self.size > self.max_bytes:
            return False
        self._take(batch.messages)
        return True

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        self._take(items)

    def _take(self, items: Sequence[Message | Gap]) -> None:
        if not items:
            return
        self.items.extend(items)
        self.size += sum(len(item.json) if isinstance(item, Message) else 64 for item in items)
        self.arrived.set()

    def send_control(self, frame: dict[str, Any]) -> None:
        """Control frames (``subscribed``) have no place in a poll response."""

    def buffered_bytes(self) -> int:
        return self.size

    async def drained(self) -> None:
        # A poll never drains: it answers and leaves. Recovery ends with it.
        await asyncio.shield(self._answered)
        raise ConnectionClosed("The poll has been answered.")

    def close(self, code: int, reason: str) -> None:
        self.closed = True
        self.arrived.set()

    def answered(self) -> None:
        self.closed = True
        self.arrived.set()
        if not self._answered.done():
            self._answered.set_result(None)

    def body(self, cursor: str) -> bytes:
        """The response: the items' JSON spliced in as encoded, plus the cursor."""
        items = coalesce_gaps(self.items)
        parts = [item.json if isinstance(item, Message) else orjson.dumps(item.to_wire()) for item in items]
        return b'{"messages":[%s],"cursor":%s}' % (b",".join(parts), orjson.dumps(cursor))


class PollHandler(HttpRouteHandler):
    """One long poll: subscribe with the cursor, wait for something or the timeout, answer."""

    def initialize(
        self, hub: Hub, authenticator: AccessControl | None = None, guard: RequestGuard | None = None
    ) -> None:
        super().initialize(hub, authenticator, guard)
        self._sink: PollSink | None = None

    async def get(self) -> None:
        hub = self.hub
        config = hub.config
        patterns = parse_patterns(self, hub)
        last = parse_last(self.get_query_argument("last", None))
        point, head = await load_cursor(hub, parse_cursor(self.get_query_argument("cursor", None)))
        self.check_subscribe(patterns, point.positions if point is not None else None)
        self.admit_connection()
        timeout = parse_timeout(self.get_query_argument("timeout", None), config.poll_timeout, config.poll_max_timeout)
        authenticator = self.authenticator
        expires_at = self.permissions.expires_at if authenticator is not None else None
        if authenticator is not None and expires_at is not None:
            # A poll never outlives its token: it answers when the token expires.
            timeout = min(timeout, max(0.0, expires_at - authenticator.clock()))
        sink = self._sink = PollSink(hub.limits.max_queue_bytes)
        member = hub.connect(sink)
        try:
            await hub.watch(patterns)  # a shared backplane must know the topics first
            requests, lost = await resume_requests(hub, patterns, point, last)
            sink.send_items(lost)
            for request in requests:
                await hub.subscribe(member, request)
            if not sink.items and not sink.closed and timeout > 0:
                try:
                    await asyncio.wait_for(sink.arrived.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
            # The cursor and the body are taken together, before leaving the hub (whose
            # flush on disconnect could still hand this sink a batch): they match exactly.
            cursor = hub.cursors.issue(member.position(), [pattern.text for pattern in patterns], head=head)
            body = sink.body(cursor)
        finally:
            hub.disconnect(member)
            sink.answered()
            self.release_connection()
        if self.http_stream().closed():
            return
        if authenticator is not None and expires_at is not None and authenticator.clock() >= expires_at:
            # Whatever arrived belongs to a token that has run out: nothing is handed
            # over. The client's cursor is still the one it sent, so a new token resumes
            # from there without loss.
            raise Unauthorized("The token expired while the poll waited; poll again with a new one.")
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(body)

    def on_connection_close(self) -> None:
        if self._sink is not None:
            self._sink.close(CloseCode.GOING_AWAY, "client went away")

"""``GET /sse``: Server-Sent Events, for browsers and dashboards that only listen.

``GET /sse?topic=PATTERN[&topic=PATTERN...][&last=N]`` answers ``text/event-stream``:

* ``retry: MS`` first, then ``event: welcome`` and one ``event: subscribed`` per pattern;
* ``event: ready`` once the stream is live, with ``id:`` set to the resume cursor;
* ``event: message`` whose ``data:`` is the same envelope JSON as on WebSocket;
* ``event: gap`` and ``event: error`` carrying the WebSocket ``gap`` / ``error`` objects;
* a ``: keepalive`` comment every ``HubConfig.keepalive_interval`` seconds.

The ``id:`` of an event is a cursor (see :mod:`rtnb.core.cursor`) covering every
topic of the stream: inline while small, stored by the hub past 2 KiB (see
:mod:`rtnb.core.cursor_store`), so any number of topics resumes. Browsers send it back as ``Last-Event-ID`` when they
reconnect (clients that cannot set headers pass ``lastEventId=`` in the query),
and the hub resumes with the same ``since`` catch-up as WebSocket: exactly what
was missed, or ``gap`` events for what history no longer holds.

Each stream is a :class:`~rtnb.server.hub.Sink`. Streams with the same patterns
share a fan-out group, and a group's batch is turned into SSE bytes once
(:func:`build_batch_events`) and written to all of them; only the last event of
a batch carries the ``id:``, since the cursor after the batch covers the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import tornado.iostream

from ..core.cursor_store import CursorIssuer
from ..core.errors import ConnectionClosed, RtnbError
from ..core.fanout import Batch, Member, MemberState
from ..core.history import Gap, GapList, coalesce_gaps
from ..core.message import Message
from ..core.protocol import PROTOCOL_VERSION
from ._http import HttpRouteHandler, load_cursor, parse_cursor, parse_last, parse_patterns, resume_requests
from .websocket import buffered_bytes

if TYPE_CHECKING:
    from ..core.origins import RequestGuard
    from .auth import AccessControl
    from .hub import Hub

__all__ = ["SSEHandler", "build_batch_events", "cursor_for", "format_event"]

log = logging.getLogger("rtnb.sse")

KEEPALIVE_COMMENT = b": keepalive\n\n"


def cursor_for(
    cursors: CursorIssuer, positions: Mapping[str, tuple[int, int]], patterns: Collection[str], issuer: object
) -> bytes:
    """The ``id:`` value for ``positions`` covering ``patterns``: inline while small,
    else a stored cursor of constant size (see :mod:`rtnb.core.cursor_store`)."""
    return cursors.issue(positions, patterns, issuer).encode("ascii")


def format_event(event: str, data: bytes, event_id: bytes | None = None) -> bytes:
    """One SSE event. ``data`` must be a single line (compact JSON always is)."""
    if event_id is None:
        return b"event: %s\ndata: %s\n\n" % (event.encode("ascii"), data)
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event.encode("ascii"), event_id, data)


def build_batch_events(cursors: CursorIssuer, batch: Batch) -> bytes:
    """A group batch as SSE bytes, built once and shared by every stream of the group.

    Called at flush time, when the group cursor already includes the batch, so
    the cursor on the last event is where every live member of the group stands.
    """
    messages = batch.messages
    group = batch.group
    # The group's cursor moved by exactly these messages since its last batch (the hub
    # makes the group start a new chain whenever it moves it otherwise).
    moved = cursors.issue_moved(group, {message.topic: (message.epoch, message.offset) for message in messages})
    event_id = moved.encode("ascii") if moved is not None else cursor_for(cursors, group.cursor, group.key, group)
    parts = [b"event: message\ndata: %s\n\n" % message.json for message in messages[:-1]]
    parts.append(format_event("message", messages[-1].json, event_id))
    return b"".join(parts)


def _item_event(item: Message | Gap | GapList) -> tuple[str, bytes]:
    if isinstance(item, Message):
        return "message", item.json
    return "gap", orjson.dumps(item.to_wire())


def _advance(position: dict[str, tuple[int, int]], items: Sequence[Message | Gap | GapList]) -> set[str]:
    """Move ``position`` past ``items``, as a client that received them stands.

    Returns:
        The topics removed from ``position`` (a gap saying the topic is gone).
    """
    removed: set[str] = set()
    for item in items:
        if isinstance(item, Message):
            position[item.topic] = (item.epoch, item.offset)
            removed.discard(item.topic)
        elif isinstance(item, GapList):
            removed |= _advance(position, item.gaps)
        elif item.epoch is None:
            position.pop(item.topic, None)  # the topic is gone: nothing to resume there
            removed.add(item.topic)
        else:
            # new epoch (to_offset None): resume from its start
            position[item.topic] = (item.epoch, 0 if item.to_offset is None else item.to_offset)
            removed.discard(item.topic)
    return removed


class SSEHandler(HttpRouteHandler):
    """One SSE stream. Implements :class:`~rtnb.server.hub.Sink`."""

    transport = "sse"

    def initialize(
        self, hub: Hub, authenticator: AccessControl | None = None, guard: RequestGuard | None = None
    ) -> None:
        super().initialize(hub, authenticator, guard)
        self._expiry: asyncio.TimerHandle | None = None
        self._expires_at: float | None = None
        self.member: Member | None = None
        self.awaiting_pong_since: float | None = None
        self._done: asyncio.Future[None] | None = None
        self._closed = False
        self._streaming = False  # headers sent: events may be written
        self._heartbeat: Any = None
        self._build_batch = partial(build_batch_events, hub.cursors)
        #: the stream's own last cursor (issued for it, not its group) is where it stands
        self._own_cursor_current = False

    async def get(self) -> None:
        hub = self.hub
        patterns = parse_patterns(self, hub)
        last = parse_last(self.get_query_argument("last", None))
        point = parse_cursor(self.request.headers.get("Last-Event-ID") or self.get_query_argument("lastEventId", None))
        point, _ = await load_cursor(hub, point)
        self.check_subscribe(patterns, point.positions if point is not None else None)
        self.admit_connection()
        config = hub.config
        self.member = hub.connect(self)
        self._done = asyncio.get_running_loop().create_future()
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            self.write(b"retry: %d\n\n" % round(config.sse_retry * 1000))
            welcome = {"op": "welcome", "client": self.member.id, "version": PROTOCOL_VERSION}
            self.write(format_event("welcome", orjson.dumps(welcome)))
            await self.flush()
            self._streaming = True
            await hub.watch(patterns)  # a shared backplane must know the topics first
            requests, lost = await resume_requests(hub, patterns, point, last)
            if lost:
                hub.stats.gaps_sent += len(lost)
                self.send_items(lost)
            for request in requests:
                await hub.subscribe(self.member, request)
                if self._closed:
                    return
            ready = self.member.position()
            topics = [pattern.text for pattern in patterns]
            cursor = cursor_for(hub.cursors, ready, topics, self.member)
            self._own_cursor_current = True
            body = {"op": "ready", "topics": topics, "cursor": cursor.decode()}
            self._send(format_event("ready", orjson.dumps(body), cursor))
            if config.keepalive_interval:
                self._heartbeat = hub.heartbeat("sse", config.keepalive_interval, None)
                self._heartbeat.add(self)
            left = self.permissions.seconds_left(self.authenticator.clock()) if self.authenticator else None
            if left is not None:
                # The stream ends when its token does; the client reconnects with a fresh one.
                self._expires_at = self.permissions.expires_at
                self._expiry = asyncio.get_running_loop().call_later(max(0.0, left), self._token_expired)
            await self._done
        except tornado.iostream.StreamClosedError:
            pass
        except RtnbError as error:
            if not self._streaming:
                raise  # nothing sent yet: a plain HTTP error answer
            self.hub.record_error(error.code)
            self._send(format_event("error", orjson.dumps(error.to_wire())))
        finally:
            self._release()
        if not self._finished and not self.http_stream().closed():
            try:
                self.finish()
            except tornado.iostream.StreamClosedError:
                pass

    def on_connection_close(self) -> None:
        self._end()
        self._release()

    def _end(self) -> None:
        self._closed = True
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _token_ran_out(self) -> bool:
        """True once the token has expired, even if the expiry timer has not fired yet.

        Nothing is written on an expired token: the stream ends before the write,
        and the client resumes from the last id it received, with a new token.
        """
        if self._expires_at is None or self._closed or self.authenticator is None:
            return False
        if self.authenticator.clock() < self._expires_at:
            return False
        self._token_expired()
        return True

    def _token_expired(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = None
        error = {"op": "error", "code": "unauthorized", "message": "The token expired; reconnect with a new one."}
        self.hub.record_error("unauthorized")
        self._send(format_event("error", orjson.dumps(error)))
        self._end()

    def _release(self) -> None:
        self.release_connection()
        if self.member is not None:
            self.hub.cursors.forget(self.member)
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._heartbeat is not None:
            self._heartbeat.discard(self)
            self._heartbeat = None
        if self.member is not None:
            self.hub.disconnect(self.member)

    # -- writing -----------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._closed or not self._streaming:
            return
        connection = self.http_connection()
        try:
            connection.write(data)
        except tornado.iostream.StreamClosedError:
            self._end()

    def _stream(self) -> tornado.iostream.IOStream | None:
        return getattr(self.request.connection, "stream", None)

    # -- Sink --------------------------------------------------------------------------

    def send_batch(self, batch: Batch) -> bool:
        if self._closed or self._token_ran_out():
            return True
        stream = self._stream()
        if stream is not None and buffered_bytes(stream) > self.hub.limits.max_queue_bytes:
            return False
        self._own_cursor_current = False  # the stream moved with its group's cursor
        self._send(batch.encoded("sse", self._build_batch))
        return True

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        if not items or self._closed or self._token_ran_out():
            return
        member = self.member
        event_id = None
        if member is not None and member.state is not MemberState.LIVE:
            # Catching up: the id says what the stream has been given, as a move of
            # the stream's own last cursor when it has one (cost: these items only).
            cursors = self.hub.cursors
            moved: str | None = None
            if self._own_cursor_current:
                changes: dict[str, tuple[int, int]] = {}
                removed = _advance(changes, items)
                moved = cursors.issue_moved(member, changes, removed)
            if moved is not None:
                event_id = moved.encode("ascii")
            else:
                position = member.position()
                _advance(position, items)
                event_id = cursor_for(cursors, position, member.patterns, member)
            self._own_cursor_current = True
        events = coalesce_gaps(items)
        parts = [format_event(*_item_event(item)) for item in events[:-1]]
        parts.append(format_event(*_item_event(events[-1]), event_id))
        self._send(b"".join(parts))

    def send_control(self, frame: dict[str, Any]) -> None:
        self._send(format_event(str(frame.get("op", "control")), orjson.dumps(frame)))

    def buffered_bytes(self) -> int:
        stream = self._stream()
        return 0 if stream is None else buffered_bytes(stream)

    async def drained(self) -> None:
        stream = self._stream()
        if stream is None or self._closed or stream.closed():
            raise ConnectionClosed("The SSE stream is closed.")
        try:
            await stream.write(b"")
        except tornado.iostream.StreamClosedError:
            raise ConnectionClosed("The SSE stream is closed.") from None

    def close(self, code: int, reason: str) -> None:
        """End the stream; the client reconnects with its last event id."""
        error = {"op": "error", "code": "closed", "message": f"The hub ended the stream ({code}): {reason}."}
        self._send(format_event("error", orjson.dumps(error)))
        self._end()

    # -- keep-alive (see rtnb.server.heartbeat) -------------------------------------------

    def send_heartbeat(self) -> None:
        self._send(KEEPALIVE_COMMENT)

    def heartbeat_timed_out(self) -> None:  # pragma: no cover - SSE keep-alives expect no answer
        self._end()

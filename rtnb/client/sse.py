"""A listen-only Server-Sent Events client, resuming with ``Last-Event-ID``.

For places where only plain HTTP goes through (proxies that block WebSocket,
minimal devices), :class:`SSEClient` reads ``GET /sse?topic=PATTERN`` and yields
the same items as the WebSocket client: :class:`~rtnb.core.message.Message`
and :class:`~rtnb.core.history.Gap`. When the stream drops it reconnects with
the same backoff policy and sends the id of the last event it received as
``Last-Event-ID``; the hub resumes exactly after it, or reports gaps. Items
already received are dropped if the hub sends them again, and offset jumps it
did not explain are reported as gaps, as in :class:`~rtnb.client.AsyncClient`.

Example::

    async with SSEClient("http://127.0.0.1:8765", "plant/#", last=10) as stream:
        async for item in stream:
            print(item)
"""

from __future__ import annotations

import asyncio
import logging
import random as random_module
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from ..core.errors import BadArgument, RtnbError, error_from_wire
from ..core.message import Message
from ..core.topics import Pattern, validate_pattern
from ._backoff import BackoffPolicy
from ._resume import ResumeTracker
from ._session import ReconnectingSession
from ._sse import EventStreamParser, ServerSentEvent
from ._state import ClientState
from ._stream import HttpStream, check_request_headers, open_stream
from ._subscription import Item, Subscription
from ._wire import decode_gaps, to_http_url

__all__ = ["SSEClient"]

log = logging.getLogger("rtnb.client.sse")
frame_log = logging.getLogger("rtnb.client.frames")


class SSEClient(ReconnectingSession[HttpStream]):
    """Listen to one or more patterns over Server-Sent Events.

    Args:
        url: the hub's base URL, e.g. ``http://127.0.0.1:8765`` or ``http://host/rtnb``.
        patterns: a pattern or several (``"plant/+/temp"``).
        last: replay the last ``last`` messages of each matching topic first.
        token: sent as ``Authorization: Bearer TOKEN``.
        headers: extra request headers.
        reconnect / backoff: as for :class:`~rtnb.client.AsyncClient`.
        idle_timeout: seconds without a byte (the hub sends keep-alive comments)
            before the stream is declared dead and reopened.
        open_timeout: seconds to get the response headers.
        connect_timeout / fail_fast: how ``connect()`` retries a hub it cannot reach
            yet, as for :class:`~rtnb.client.AsyncClient`.
        max_queue: items queued for the application before reading pauses.
        random / clock / sleep: injectable for tests of the backoff schedule.
    """

    _kind = "SSE client"
    _ended_without_reconnect = "The SSE stream ended; reconnect is off."
    _log = log

    def __init__(
        self,
        url: str,
        patterns: str | Sequence[str],
        *,
        last: int | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        reconnect: bool = True,
        backoff: BackoffPolicy | None = None,
        idle_timeout: float = 45.0,
        open_timeout: float = 10.0,
        connect_timeout: float | None = 30.0,
        fail_fast: bool = False,
        max_queue: int = 10_000,
        random: Callable[[], float] = random_module.random,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        texts = [patterns] if isinstance(patterns, str) else list(patterns)
        if not texts:
            raise BadArgument("Give at least one pattern.")
        self.patterns = [validate_pattern(text) for text in texts]
        if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 0):
            raise BadArgument("last must be a non-negative integer.")
        self.url = to_http_url(url)
        super().__init__(
            self.url,
            reconnect=reconnect,
            backoff=backoff,
            connect_timeout=connect_timeout,
            fail_fast=fail_fast,
            random=random,
            clock=clock,
            sleep=sleep,
        )
        self.last = last
        self.headers = dict(headers or {})
        if token is not None:
            self.headers.setdefault("Authorization", f"Bearer {token}")
        check_request_headers(self.headers)
        self.idle_timeout = idle_timeout
        self.open_timeout = open_timeout
        self._compiled = [Pattern.parse(text) for text in self.patterns]
        self._tracker = ResumeTracker()
        self._items = Subscription(self, self._compiled[0], max_queue=max_queue)
        self._stream: HttpStream | None = None
        #: the id of the last event received: the resume cursor sent as ``Last-Event-ID``
        self.last_event_id: str | None = None
        self.duplicates_dropped = 0
        self.gaps_reported = 0

    # -- status ----------------------------------------------------------------------

    @property
    def positions(self) -> dict[str, tuple[int, int]]:
        """``(epoch, offset)`` of the last message handed on, per topic."""
        return self._tracker.positions

    def __repr__(self) -> str:
        return f"SSEClient({self.url!r}, {self.patterns}, {self._state.value})"

    def _stream_url(self) -> str:
        query: list[tuple[str, str]] = [("topic", text) for text in self.patterns]
        if self.last is not None and self.last_event_id is None:
            query.append(("last", str(self.last)))
        return f"{self.url}/sse?{urlencode(query)}"

    # -- lifecycle -------------------------------------------------------------------

    async def _close_connection(self, was_connected: bool) -> None:
        if self._stream is not None:
            self._stream.close()

    async def _discard(self, subscription: Subscription) -> None:
        await self.close()

    def _release(self, error: RtnbError | None) -> None:
        self._items._end(error)

    # -- reading by the application --------------------------------------------------

    def __aiter__(self) -> SSEClient:
        return self

    async def __anext__(self) -> Item:
        return await self._items.__anext__()

    async def get(self, timeout: float | None = None) -> Item:
        """The next item.

        Raises:
            Timeout: nothing arrived in time.
            ConnectionClosed: the client is closed or gave up.
        """
        return await self._items.get(timeout)

    # -- the stream loop -------------------------------------------------------------

    async def _open(self) -> HttpStream:
        headers = dict(self.headers)
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        url = self._stream_url()
        log.debug("opening %s (Last-Event-ID %s)", url, self.last_event_id)
        stream = await open_stream(url, headers, self.open_timeout)
        self._stream = stream
        return stream

    async def _session(self, stream: HttpStream) -> None:
        """Read ``stream`` until it ends; the skeleton then reopens it with ``Last-Event-ID``."""
        if not self._in_state(ClientState.CONNECTING):  # closed while it opened
            stream.close()
            self._stream = None
            return
        self._set_state(ClientState.CONNECTED)
        self._backoff.connected()
        await self._consume(stream)
        stream.close()
        self._stream = None

    async def _consume(self, stream: HttpStream) -> None:
        """Read events until the stream ends, goes idle, or the hub ends it."""
        parser = EventStreamParser()
        parser.last_event_id = self.last_event_id
        while True:
            try:
                chunk = await asyncio.wait_for(stream.read(), self.idle_timeout)
            except asyncio.TimeoutError:
                log.warning("no data from %s for %s s; reopening", self.url, self.idle_timeout)
                return
            except (OSError, asyncio.IncompleteReadError, RtnbError) as error:
                log.info("event stream of %s broke: %r", self.url, error)
                return
            if not chunk:
                return
            try:
                events = parser.feed(chunk)
            except RtnbError as error:
                self.last_error = error
                log.error("event stream of %s refused: %s", self.url, error.message)
                return
            for event in events:
                if frame_log.isEnabledFor(logging.DEBUG):
                    frame_log.debug("<- sse %s id=%s %s", event.event, event.id, event.data)
                if not await self._handle(event):
                    return

    async def _handle(self, event: ServerSentEvent) -> bool:
        """Act on one event; False ends the stream (the hub closed it)."""
        try:
            body = orjson.loads(event.data) if event.data else None
        except orjson.JSONDecodeError:
            log.warning("ignoring a %r event whose data is not JSON", event.event)
            return True
        if event.event == "message" and isinstance(body, dict):
            message = Message.from_envelope(body)
            deliver, gaps = self._tracker.on_message(message.topic, message.epoch, message.offset)
            for gap in gaps:
                await self._hand(gap)
            if deliver:
                await self._items._deliver(message)
            else:
                self.duplicates_dropped += 1
        elif event.event == "gap" and isinstance(body, dict):
            for notice in decode_gaps(body):
                for gap in self._tracker.on_gap(notice):
                    await self._hand(gap)
        elif event.event == "error" and isinstance(body, dict):
            error = error_from_wire(str(body.get("code")), str(body.get("message")))
            self.last_error = error
            log.warning("hub error on the event stream: %s %s", error.code, error.message)
            if error.code == "closed":
                self._remember(event)
                return False
        self._remember(event)
        return True

    def _remember(self, event: ServerSentEvent) -> None:
        if event.has_id:
            self.last_event_id = event.id

    async def _hand(self, gap: Any) -> None:
        self.gaps_reported += 1
        log.warning("gap on %s: offsets %s..%s (%s)", gap.topic, gap.from_offset, gap.to_offset, gap.reason)
        await self._items._deliver(gap)

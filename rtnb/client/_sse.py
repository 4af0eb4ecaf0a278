"""An incremental ``text/event-stream`` parser, without I/O.

Bytes go in through :meth:`EventStreamParser.feed` in chunks of any size;
complete events come out. It follows the WHATWG rules a browser's
``EventSource`` applies: ``field: value`` lines, one leading space stripped,
``data`` lines joined with ``\\n``, comments (``:``) ignored, an event
dispatched at a blank line, ``id`` remembered across events, lines ending in
``\\n``, ``\\r\\n`` or ``\\r``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import MessageTooBig

__all__ = ["EventStreamParser", "ServerSentEvent"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event.

    Attributes:
        event: the event type (``message`` when the stream named none).
        data: the data lines joined with ``\\n``.
        id: the last event id seen so far in the stream (``None`` if none yet).
        has_id: True when this event itself carried an ``id`` field.
    """

    event: str
    data: str
    id: str | None
    has_id: bool


class EventStreamParser:
    """Turns a byte stream into :class:`ServerSentEvent` objects.

    Args:
        max_event_bytes: largest event (or single line) accepted; a stream
            exceeding it raises :class:`MessageTooBig` instead of growing memory.
    """

    def __init__(self, max_event_bytes: int = 16 * 2**20) -> None:
        self.max_event_bytes = max_event_bytes
        self.last_event_id: str | None = None
        #: reconnection delay the server asked for, milliseconds
        self.retry: int | None = None
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._data_size = 0
        self._has_id = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse ``chunk``; returns the events it completed.

        Raises:
            MessageTooBig: a line or an event is larger than ``max_event_bytes``.
        """
        buffer = self._buffer + chunk
        events: list[ServerSentEvent] = []
        start = 0
        length = len(buffer)
        while start < length:
            newline = buffer.find(b"\n", start)
            carriage = buffer.find(b"\r", start, newline if newline != -1 else length)
            if carriage != -1:
                if carriage + 1 == length:
                    break  # a lone \r at the end may be half of \r\n: wait for more
                end, next_start = carriage, carriage + (2 if buffer[carriage + 1 : carriage + 2] == b"\n" else 1)
            elif newline != -1:
                end, next_start = newline, newline + 1
            else:
                break
            event = self._line(buffer[start:end].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            start = next_start
        self._buffer = buffer[start:]
        if len(self._buffer) > self.max_event_bytes:
            raise MessageTooBig(f"An event-stream line is over {self.max_event_bytes} bytes.")
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self.max_event_bytes:
                raise MessageTooBig(f"An event is over {self.max_event_bytes} bytes.")
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\x00" not in value:
                self.last_event_id = value
                self._has_id = True
        elif field == "retry":
            if value.isdigit():
                self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event, has_id = self._data, self._event, self._has_id
        self._data, self._event, self._data_size, self._has_id = [], "", 0, False
        if not data:
            return None
        return ServerSentEvent(event or "message", "\n".join(data), self.last_event_id, has_id)

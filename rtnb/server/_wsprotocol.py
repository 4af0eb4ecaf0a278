"""RFC 6455 frame reading, strict where Tornado is lenient.

Tornado's :class:`~tornado.websocket.WebSocketProtocol13` echoes whatever close
code a peer sends (RFC 6455 section 7.4 requires a peer sending an invalid
one to be failed with 1002), drops the TCP connection without a word on
protocol errors and on invalid UTF-8, validates UTF-8 only once a whole
message has arrived, accepts unmasked client frames, and waits a fixed 5 s for
the closing handshake. :class:`StrictWebSocketProtocol` reads frames itself so that:

* every protocol error *fails the connection* (section 7.1.7): a close frame
  with 1002 (protocol error), 1007 (invalid UTF-8) or 1009 (too big) goes out
  first, the rest of the peer's input is discarded without buffering, and the
  TCP connection ends when the peer answers with its close frame or after the
  hub's ``close_timeout``, whichever comes first;
* text is validated as it arrives, fragment by fragment and chunk by chunk,
  so a bad byte fails the connection at once (Autobahn cases 6.4.x);
* close frames are checked: a 1-byte payload or a code that may not be sent on
  the wire (0-999, 1004-1006, 1015, 1016-2999, 5000 and up) gets 1002, a
  reason that is not UTF-8 gets 1007; a valid code is echoed;
* the closing handshake waits ``close_timeout`` seconds, not Tornado's fixed 5;
* a close reason is cut to fit a control frame (125 bytes), where Tornado
  would raise.

The rules themselves (which header or close frame is invalid, and with which
code) are pure functions in :mod:`rtnb.server._wsframes`; when the next frame is
read (by callbacks, holding no coroutine while idle) is
:mod:`rtnb.server._wsreader`'s. This module reads each frame's bytes, applies
the rules and acts on the verdict. Everything else — the opening
handshake, writing, pings, compression — is Tornado's; the Tornado internals
this needs are named in :mod:`rtnb.server._tornado`.
:mod:`tests.reliability.test_autobahn` runs the Autobahn cases against it;
``docs/compliance.md`` lists the results.
"""

from __future__ import annotations

import codecs
import logging
import struct
from typing import Any

from ..core.close_codes import CloseCode
from ._tornado import DecompressTooLargeError, buffered_input, send_pong, take_input, websocket_mask
from ._wsframes import (
    BINARY,
    CLOSE,
    CONTINUATION,
    CONTROL_OPCODES,
    DATA_OPCODES,
    MAX_CONTROL_PAYLOAD,
    PING,
    PONG,
    TEXT,
    FrameError,
    check_frame_header,
    mask_at,
    parse_close_payload,
    truncate_reason,
)
from ._wsreader import CallbackFrameReader

__all__ = [
    "StrictWebSocketProtocol",
    "truncate_reason",
]

log = logging.getLogger("rtnb.ws")


#: bytes read at a time when streaming a text payload or discarding input
_CHUNK = 64 * 1024
#: the reason a connection is failed with on text that is not UTF-8
_NOT_UTF8 = "text is not valid UTF-8"
#: first bytes of a final, uncompressed text or binary frame (FIN set, no reserved bit)
_WHOLE_TEXT = 0x80 | TEXT
_WHOLE_BINARY = 0x80 | BINARY


class StrictWebSocketProtocol(CallbackFrameReader):
    """Tornado's protocol-13 implementation with strict frame reading (see the module doc).

    Args:
        handler: the :class:`~tornado.websocket.WebSocketHandler` it serves.
        params: Tornado's ping, size and compression parameters.
        close_timeout: seconds to wait for the peer's close frame once ours is
            sent, and to discard input after failing the connection.
    """

    # Slots for our state: Tornado's protocol sets 29 attributes, the most CPython
    # keeps in a compact shared-key table; one more and every connection pays
    # for a full dict of its own (about 1.5 KiB).
    __slots__ = ("_message_opcode", "_text_decoder", "_text_parts", "close_timeout", "failed")

    def __init__(self, handler: Any, params: Any, close_timeout: float) -> None:
        super().__init__(handler, False, params)
        self.close_timeout = close_timeout
        #: set once this side failed the connection: input is discarded until the peer's close
        self.failed = False
        self._text_decoder: codecs.IncrementalDecoder | None = None
        self._text_parts: list[str] = []
        #: opcode (text or binary) of the fragmented message being read, while
        #: ``_fragmented_message_buffer`` holds its first fragments
        self._message_opcode = TEXT

    # -- closing ---------------------------------------------------------------------

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Send a close frame (once) and end the TCP connection after the peer's
        answer or ``close_timeout`` seconds."""
        already_sent = self.server_terminated
        waiting = self._waiting
        if reason is not None:
            reason = truncate_reason(reason)
        if not already_sent and self.stream is not None and not self.stream.closed():
            # the handler's last chance to write data frames (answers it holds back to batch them)
            on_closing = getattr(self.handler, "on_closing", None)
            if on_closing is not None:
                on_closing()
        super().close(code, reason)
        if not already_sent:
            on_close_sent = getattr(self.handler, "on_close_frame_sent", None)
            if on_close_sent is not None:
                on_close_sent()
        if waiting is None and self._waiting is not None:
            # Tornado waits a fixed 5 s for the peer's close frame; use the hub's timeout.
            io_loop = self.stream.io_loop
            io_loop.remove_timeout(self._waiting)
            self._waiting = io_loop.add_timeout(io_loop.time() + self.close_timeout, self._abort)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): close frame now, then wait for the peer's."""
        log.debug("failing WebSocket connection: %s %s", code, reason)
        if code in (CloseCode.INVALID_PAYLOAD, CloseCode.MESSAGE_TOO_BIG) and not self.client_terminated:
            handler: Any = self.handler  # a HubWebSocket: it sends the error frame saying why, first
            handler.on_protocol_failure(code, reason)
        self.failed = True
        self._fragmented_message_buffer = None
        self._text_decoder = None
        self._text_parts = []
        self.close(code, reason)

    # -- reading ---------------------------------------------------------------------

    def _take_buffered_message(self) -> Any:
        """The fast path for what a busy client sends most: small, whole, masked data frames.

        When the next frame is a final, uncompressed text or binary frame of at
        most 64 KiB and the stream already holds all of it, it is taken from the
        buffer in one piece and handed to the handler here: no read futures, no
        coroutine. Everything else (fragments, control frames, compression, a
        frame not yet complete, anything :func:`check_frame_header` would refuse,
        text that is not UTF-8) goes the usual way, which applies every rule.
        """
        if self.failed or self._fragmented_message_buffer is not None:
            return False
        stream = self.stream
        buffer, size = buffered_input(stream)
        if size < 6:
            return False
        first = buffer[0]
        second = buffer[1]
        if (first != _WHOLE_TEXT and first != _WHOLE_BINARY) or second < 0x80:
            return False
        length = second & 0x7F
        if length < 126:
            start = 2
        elif length == 126 and size >= 8:
            length = (buffer[2] << 8) | buffer[3]
            start = 4
        else:
            return False
        end = start + 4 + length
        if end > size or length > self.params.max_message_size:
            return False
        frame = take_input(stream, end)
        payload = websocket_mask(frame[start : start + 4], frame[start + 4 :]) if length else b""
        message: str | bytes = payload
        if first == _WHOLE_TEXT:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                self._wire_bytes_in += end
                self._fail(CloseCode.INVALID_PAYLOAD, _NOT_UTF8)
                return True
        self._wire_bytes_in += end
        self._message_bytes_in += length
        self._frame_compressed = False
        if self.client_terminated:
            return True
        handled = self._run_callback(self.handler.on_message, message)
        return True if handled is None else handled

    async def _frame(self, header: bytes) -> None:
        """One frame, after its first two bytes: check it, read its payload, hand it on."""
        first, second = header[0], header[1]
        final = bool(first & self.FIN)
        opcode = first & self.OPCODE_MASK
        reserved = first & self.RSV_MASK
        compressed = False
        if self._decompressor is not None and opcode != CONTINUATION and reserved & self.RSV1:
            compressed = True
            reserved &= ~self.RSV1
        masked = bool(second & 0x80)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self._read_bytes(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self._read_bytes(8))[0]
        mask = await self._read_bytes(4) if masked else b""

        if self.failed:
            # After failing the connection only the peer's close frame matters.
            if opcode == CLOSE and length <= MAX_CONTROL_PAYLOAD:
                await self._read_bytes(length)
                self.client_terminated = True
                self.close()
            else:
                await self._discard(length)
            return
        try:
            buffer = self._fragmented_message_buffer
            fragmented_bytes = None if buffer is None else len(buffer)
            check_frame_header(final, opcode, reserved, masked, length, fragmented_bytes, self.params.max_message_size)
            if opcode != CONTINUATION and opcode in DATA_OPCODES:
                self._frame_compressed = compressed
            payload = await self._read_payload(opcode, final, length, mask)
        except FrameError as failure:
            self._fail(failure.code, failure.reason)
            await self._discard(length)
            return
        if payload is None:
            return  # the payload was bad and discarded; the connection is failing
        await self._dispatch(opcode, final, payload)

    async def _read_payload(self, opcode: int, final: bool, length: int, mask: bytes) -> bytes | None:
        """The unmasked payload; text is validated as it streams in.

        Returns ``None`` after failing the connection on invalid UTF-8 (the rest
        of the frame has then been discarded).
        """
        is_text = opcode == TEXT or (opcode == CONTINUATION and self._message_opcode == TEXT)
        if not is_text or self._frame_compressed:
            data = await self._read_bytes(length) if length else b""
            return websocket_mask(mask, data) if data else data
        if opcode == TEXT:
            self._text_decoder = None
            self._text_parts = []
        if final and opcode == TEXT:
            # The common case: one unfragmented text frame, often already buffered whole.
            chunk = await self._read_chunk(length)
            if len(chunk) == length:
                data = websocket_mask(mask, chunk) if chunk else chunk
                try:
                    self._text_parts = [data.decode("utf-8")]
                except UnicodeDecodeError:
                    self._fail(CloseCode.INVALID_PAYLOAD, _NOT_UTF8)
                    return None
                return data
            return await self._stream_text(final, length, mask, chunk)
        return await self._stream_text(final, length, mask, b"")

    async def _stream_text(self, final: bool, length: int, mask: bytes, first_chunk: bytes) -> bytes | None:
        decoder = self._text_decoder
        if decoder is None:
            decoder = self._text_decoder = codecs.getincrementaldecoder("utf-8")()
        pieces: list[bytes] = []
        received = 0
        chunk = first_chunk
        while True:
            if chunk:
                data = websocket_mask(mask_at(mask, received), chunk)
                received += len(chunk)
                try:
                    self._text_parts.append(decoder.decode(data, final and received == length))
                except UnicodeDecodeError:
                    self._fail(CloseCode.INVALID_PAYLOAD, _NOT_UTF8)
                    await self._discard(length - received)
                    return None
                pieces.append(data)
            elif final and received == length:
                try:
                    self._text_parts.append(decoder.decode(b"", True))
                except UnicodeDecodeError:
                    self._fail(CloseCode.INVALID_PAYLOAD, _NOT_UTF8)
                    return None
            if received == length:
                return b"".join(pieces)
            chunk = await self._read_chunk(length - received)

    async def _read_chunk(self, remaining: int) -> bytes:
        if remaining <= 0:
            return b""
        data = await self.stream.read_bytes(min(remaining, _CHUNK), partial=True)
        self._wire_bytes_in += len(data)
        return data

    async def _discard(self, length: int) -> None:
        """Read and drop ``length`` bytes without holding more than a chunk."""
        while length > 0:
            length -= len(await self._read_chunk(length))

    async def _dispatch(self, opcode: int, final: bool, payload: bytes) -> None:
        if opcode in CONTROL_OPCODES:
            self._control_frame(opcode, payload)
            return
        if opcode == CONTINUATION:
            assert self._fragmented_message_buffer is not None
            self._fragmented_message_buffer.extend(payload)
            if not final:
                return
            opcode = self._message_opcode
            payload = bytes(self._fragmented_message_buffer)
            self._fragmented_message_buffer = None
        elif not final:
            self._message_opcode = opcode
            self._fragmented_message_buffer = bytearray(payload)
            return
        handled = self._deliver(opcode, payload)
        if handled is not None:
            await handled

    def _deliver(self, opcode: int, payload: bytes) -> Any:
        """Hand one complete message to the handler."""
        if self.client_terminated:
            return None
        self._message_bytes_in += len(payload)
        if self._frame_compressed:
            assert self._decompressor is not None
            try:
                payload = self._decompressor.decompress(payload)
            except DecompressTooLargeError:
                self._fail(CloseCode.MESSAGE_TOO_BIG, "message too big after decompression")
                return None
            if opcode == TEXT:
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    self._fail(CloseCode.INVALID_PAYLOAD, _NOT_UTF8)
                    return None
                return self._run_callback(self.handler.on_message, text)
        if opcode == TEXT:
            text = "".join(self._text_parts)
            self._text_parts = []
            self._text_decoder = None
            return self._run_callback(self.handler.on_message, text)
        return self._run_callback(self.handler.on_message, payload)

    def _control_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == PING:
            send_pong(self, payload)
            self._run_callback(self.handler.on_ping, payload)
        elif opcode == PONG:
            self._received_pong = True
            self._run_callback(self.handler.on_pong, payload)
        else:
            self._close_frame(payload)

    def _close_frame(self, payload: bytes) -> None:
        """The peer's close frame: check it, then answer with the same code (or fail)."""
        self.client_terminated = True
        try:
            code, reason = parse_close_payload(payload)
        except FrameError as failure:
            self._fail(failure.code, failure.reason)
            return
        self.close_code = code
        self.close_reason = reason
        self.close(code)

"""``GET /ws``: the WebSocket transport, a thin adapter over :class:`~rtnb.server.hub.Hub`.

The handler parses frames with :func:`~rtnb.core.protocol.parse_request`, calls
the hub, and writes what the hub hands it. For speed, outbound frames are built
once per batch and written straight to the connection's stream as bytes: a
thousand subscribers of one group get the very same ``bytes`` object, instead
of a thousand ``write_message`` calls each re-framing the payload (the classic
Tornado broadcast loop). Compression is off by default, so pre-framed bytes
are valid on every connection.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import tornado.httputil
import tornado.iostream
import tornado.websocket

from ..core.auth import Permissions, Verdict
from ..core.close_codes import CloseCode
from ..core.errors import ConnectionClosed, RtnbError
from ..core.fanout import Batch, Member
from ..core.history import Gap, GapList, coalesce_gaps
from ..core.message import Format, Message, decode_frame, encode_msgpack
from ..core.origins import HostPolicy, RequestGuard
from ..core.protocol import (
    PROTOCOL_VERSION,
    SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
    Auth,
    Checkpoint,
    Ping,
    Presence,
    Publish,
    Subscribe,
    Unsubscribe,
    parse_request,
)
from ..core.topics import Pattern
from ._publish_pipeline import MAX_PUBLISHES_IN_FLIGHT, PublishPipeline
from ._tornado import (
    release_response_headers,
    stream_bytes_sent,
    stream_bytes_written,
    strict_framing_available,
    websocket_params,
)
from .auth import Authenticator, ConnectionSecurity
from .hub import Hub

__all__ = ["MAX_PUBLISHES_IN_FLIGHT", "HubWebSocket", "frame_bytes", "split_frames"]

log = logging.getLogger("rtnb.ws")

#: what a view key may subscribe: every data topic, and the bridges' status (``$rtnb/bridge/mqtt``)
VIEW_KEY_GRANTS = (Pattern.parse("#"), Pattern.parse("$rtnb/bridge/#"))
frame_log = logging.getLogger("rtnb.frames")

_TEXT = 0x1
_BINARY = 0x2
_SEPARATOR = {"json": b"\n", "msgpack": b""}


def frame_bytes(payload: bytes, opcode: int) -> bytes:
    """One unmasked, final WebSocket frame (server to client) around ``payload``."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def split_frames(parts: Sequence[bytes], fmt: Format, max_frame: int) -> list[bytes]:
    """Pack encoded objects into as few frames as fit in ``max_frame`` bytes each.

    JSON objects are ``\\n``-separated in a text frame; MessagePack objects are
    concatenated in a binary frame. An object larger than ``max_frame`` gets a
    frame of its own.
    """
    opcode = _TEXT if fmt == "json" else _BINARY
    if len(parts) == 1:
        return [frame_bytes(parts[0], opcode)]
    separator = _SEPARATOR[fmt]
    frames: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for part in parts:
        if chunk and size + len(part) + 1 > max_frame:
            frames.append(frame_bytes(separator.join(chunk), opcode))
            chunk, size = [], 0
        chunk.append(part)
        size += len(part) + 1
    frames.append(frame_bytes(separator.join(chunk), opcode))
    return frames


def _encode_item(item: Message | Gap | GapList, fmt: Format) -> bytes:
    if isinstance(item, Message):
        return item.encoded(fmt)
    return orjson.dumps(item.to_wire()) if fmt == "json" else encode_msgpack(item.to_wire())


@functools.lru_cache(maxsize=64)
def _batch_builder(fmt: Format, max_frame: int) -> Callable[[Batch], list[bytes]]:
    """The function turning a batch into frames; one per (format, size), shared by connections."""
    if fmt == "json":

        def build(batch: Batch) -> list[bytes]:
            return split_frames([message.json for message in batch.messages], "json", max_frame)

    else:

        def build(batch: Batch) -> list[bytes]:
            return split_frames([message.msgpack for message in batch.messages], "msgpack", max_frame)

    return build


def buffered_bytes(stream: tornado.iostream.BaseIOStream) -> int:
    """Bytes handed to ``stream`` that the socket has not taken yet.

    Tornado keeps this as two private counters; reading them costs nothing,
    where asking through futures would cost an allocation per write.
    """
    return stream_bytes_written(stream) - stream_bytes_sent(stream)


class _ReleasedHeaders(tornado.httputil.HTTPHeaders):
    """Stands for a connection's handshake headers once the socket is open.

    Empty and read-only, so one instance serves every connection; changing it
    raises, as Tornado's ``set_header`` already does after the upgrade.
    """

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("The WebSocket handshake is over: its headers were released after open().")

    add = __setitem__ = __delitem__ = parse_line = _refuse


_RELEASED_HEADERS = _ReleasedHeaders()


#: Attributes Tornado (6.x) gives a WebSocket handler over its life, from
#: ``RequestHandler.__init__`` to ``_detach_stream`` after the upgrade.
_TORNADO_HANDLER_ATTRIBUTES = (
    "application",
    "request",
    "_headers_written",
    "_finished",
    "_auto_finish",
    "_prepared_future",
    "ui",
    "_headers",
    "_write_buffer",
    "_status_code",
    "_reason",
    "ws_connection",
    "close_code",
    "close_reason",
    "_on_close_called",
    "_transforms",
    "path_args",
    "path_kwargs",
    "open_args",
    "open_kwargs",
    "write",
    "redirect",
    "set_header",
    "set_cookie",
    "set_status",
    "flush",
    "finish",
)


def _prime_attribute_table(cls: type) -> None:
    """Register Tornado's handler attribute names in ``cls``'s shared key table, once, up front.

    CPython keeps an instance's attributes as a bare array of values against
    a key table shared by its class (a few hundred bytes) instead of a dict of
    its own (about 1.5 KiB for a handler), as long as every name fits in the
    shared table. That table stops taking new names once many instances exist;
    under a burst of connections (every dashboard reconnecting after a restart)
    hundreds of handlers exist before the first one sets the attributes Tornado
    adds late (``path_args``, ``open_args``, the methods replaced by
    ``_detach_stream``), so those names never get in and every handler pays for
    a dict. Setting each name once on a throw-away instance puts them all in
    first. Names that are data descriptors on ``cls`` are left alone.
    """
    probe: Any = object.__new__(cls)
    for name in _TORNADO_HANDLER_ATTRIBUTES:
        if not hasattr(type(getattr(cls, name, None)), "__set__"):
            setattr(probe, name, None)


class HubWebSocket(tornado.websocket.WebSocketHandler):
    """One WebSocket client of the hub. Implements :class:`~rtnb.server.hub.Sink`."""

    transport = "ws"

    # Our per-connection state lives in slots: Tornado's handler already sets 27
    # attributes, and CPython keeps an instance's attributes in a compact
    # shared-key table only up to about 30 names (past that, every handler
    # pays for a full dict of its own, about 1.5 KiB).
    __slots__ = (
        "_abort_handle",
        "_address",
        "_admitted",
        "_batch_key",
        "_builder",
        "_closed",
        "_direct",
        "_handshake_permissions",
        "_max_queue_bytes",
        "_opcode",
        "_publishes",
        "_stream",
        "authenticator",
        "awaiting_pong_since",
        "format",
        "guard",
        "hub",
        "member",
        "security",
        "view_key",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _prime_attribute_table(cls)

    def initialize(
        self,
        hub: Hub,
        authenticator: Authenticator | None = None,
        guard: RequestGuard | None = None,
        view_key: str | None = None,
    ) -> None:
        self.hub = hub
        #: the hub's Host and Origin rules, shared with every other route (rtnb.core.origins)
        self.guard = guard or RequestGuard(HostPolicy.any_host())
        self.view_key = view_key
        self.authenticator = authenticator or Authenticator.open()
        self.security: ConnectionSecurity | None = None
        self._handshake_permissions: Any = None
        self._admitted = False
        self._address = "unknown"
        self.member: Member | None = None
        self.format: Format = "json"
        self._stream: tornado.iostream.IOStream | None = None
        #: plain TCP stream with Tornado's write counters: writes may go straight to the socket
        self._direct = False
        self._max_queue_bytes = hub.limits.max_queue_bytes
        self._builder: Callable[[Batch], list[bytes]] | None = None
        self._batch_key = "ws:json"
        self._opcode = _TEXT
        self._closed = False
        self._abort_handle: Any = None
        self.awaiting_pong_since: float | None = None
        #: what this connection owes for its publishes, in request order (see _publish_pipeline)
        self._publishes = PublishPipeline(self.format, self._write_answers, hub.record_error)

    # -- settings taken from the hub, so mounting elsewhere keeps them ------------------

    @property
    def ping_interval(self) -> float | None:
        # Tornado's own per-connection ping task is off: the hub's shared
        # Heartbeat pings every connection from one timer (see heartbeat.py).
        return None

    @property
    def max_message_size(self) -> int:
        return self.hub.limits.max_frame_bytes

    def get_compression_options(self) -> dict[str, Any] | None:
        # Off unless HubConfig.websocket_compression: inflating is bounded by
        # max_message_size (Tornado's decompressor stops there and we close 1009).
        return {} if self.hub.config.websocket_compression else None

    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        # Strict RFC 6455 frame reading (close codes, UTF-8, fail with 1002/1007);
        # see rtnb.server._wsprotocol and docs/compliance.md.
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        if not strict_framing_available():
            return super().get_websocket_protocol()
        from ._wsprotocol import HubWebSocketProtocol

        params = websocket_params(
            self.ping_interval, self.ping_timeout, self.max_message_size, self.get_compression_options()
        )
        return HubWebSocketProtocol(self, params, self.hub.config.close_timeout)

    def on_protocol_failure(self, code: int, reason: str) -> None:
        """The frame reader is about to close with 1009 (too big) or 1007 (bad UTF-8):
        tell the client why in an error frame first (not on the echo endpoint, which
        speaks no hub protocol)."""
        if self.member is None:
            return
        from ..core.errors import BadJson, MessageTooBig

        limit = self.hub.limits.max_frame_bytes
        error = (
            MessageTooBig(f"Closing (1009): a message is over this hub's limit of {limit} bytes ({reason}).")
            if code == CloseCode.MESSAGE_TOO_BIG
            else BadJson(f"Closing (1007): {reason}.")
        )
        self._report(error)

    def on_closing(self) -> None:
        """Called by the protocol just before its close frame goes out: answers held back go first."""
        self._publishes.flush()

    def on_close_frame_sent(self) -> None:
        """Called by the protocol once a close frame is out: no data frame may follow it."""
        self._closed = True

    def check_origin(self, origin: str) -> bool:
        """Tornado's question after :meth:`prepare`, answered by the same guard (or the view key)."""
        return self._presents_view_key() or self.guard.origins.allows(origin, self.request.headers.get("Host"))

    def _presents_view_key(self) -> bool:
        """True when the handshake carries the hub's view key (see make_handlers' ``view_key``)."""
        from .auth import token_from_request

        token = token_from_request(self.request.headers, self.get_query_argument("token", None))
        return self.view_key is not None and token is not None and hmac.compare_digest(token, self.view_key)

    async def prepare(self) -> None:
        """Refuse before the upgrade, with a typed JSON body: a foreign ``Host`` or
        ``Origin`` (403 ``forbidden``) or a token given in the handshake that does not
        verify (401 ``unauthorized``). A missing token is not refused here: the client
        may still send an ``auth`` request (see :mod:`rtnb.server.auth`)."""
        try:
            if self._presents_view_key():
                # a notebook view's browser: any origin, read only (see make_handlers' view_key),
                # but still only under a Host name this hub answers (DNS rebinding)
                self.guard.check_host(self.request.headers.get("Host"))
                # plus the bridges' status topics (``$`` topics are outside ``#``), which Status views show
                self._handshake_permissions = Permissions(subscribe=VIEW_KEY_GRANTS)
                return
            self.guard.check(self.request.headers.get("Host"), self.request.headers.get("Origin"))
            from .auth import token_from_request

            token = token_from_request(self.request.headers, self.get_query_argument("token", None))
            if token is not None or not self.authenticator.required:
                self._handshake_permissions = self.authenticator.verify(token)
        except RtnbError as error:
            self.hub.record_error(error.code)
            self.set_status(error.http_status)
            self.set_header("Content-Type", "application/json")
            self.finish(orjson.dumps(error.to_http_body()))

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        for offered in subprotocols:
            if offered in (SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON):
                return offered
        return None

    # -- lifecycle -------------------------------------------------------------------

    def open(self, *args: str, **kwargs: str) -> None:
        connection = self.ws_connection
        assert connection is not None
        self._stream = connection.stream
        # TLS streams (SSLIOStream) and unknown Tornados always go through stream.write.
        self._direct = type(self._stream) is tornado.iostream.IOStream and strict_framing_available()
        if self.selected_subprotocol == SUBPROTOCOL_MSGPACK:
            self.format, self._opcode = "msgpack", _BINARY
        self._batch_key = "ws:msgpack" if self.format == "msgpack" else "ws:json"  # constants: no string per connection
        self._builder = _batch_builder(self.format, self.hub.limits.max_batch_bytes)
        if self.format != "json":
            self._publishes = PublishPipeline(self.format, self._write_answers, self.hub.record_error)
        try:
            self.member = self.hub.connect(self)
        except RtnbError as error:
            self.send_control(error.to_wire())
            self.close(CloseCode.TRY_AGAIN_LATER, error.message)
            return
        self.send_control({"op": "welcome", "client": self.member.id, "version": PROTOCOL_VERSION})
        address = self._address = self.request.remote_ip or "unknown"
        try:
            self.authenticator.connections.admit(address)
        except RtnbError as error:
            self._report(error)
            self.close(CloseCode.POLICY_VIOLATION, error.message[:120])
            return
        self._admitted = True
        self.security = ConnectionSecurity(self.authenticator, address, self._close_for_security)
        self.security.start(self._handshake_permissions)
        config = self.hub.config
        if config.ping_interval:
            self.hub.heartbeat("ws", config.ping_interval, config.ping_timeout or None).add(self)
        log.debug("client %s connected from %s (%s)", self.member.id, address, self.format)
        self._release_handshake()

    def _release_handshake(self) -> None:
        """Drop what only the opening handshake needed, about 2 KiB per connection.

        Tornado keeps the request's and the response's headers, the HTTP/1
        connection objects (with their futures, parsed start line and
        addresses) and the finished request loop for the socket's whole life.
        Everything the hub uses later was copied in :meth:`prepare` and
        :meth:`open` (the address, the permissions, the format). ``request``
        keeps its method, URI, address and query; ``request.headers`` is an
        empty read-only stand-in from here on (subclasses needing a header
        later read it in ``open``).
        """
        request = self.request
        request.connection = None
        request.server_connection = None
        request.headers = _RELEASED_HEADERS
        release_response_headers(self, _RELEASED_HEADERS)

    def on_close(self) -> None:
        self._closed = True
        if self._abort_handle is not None:
            self._abort_handle.cancel()
        config = self.hub.config
        if config.ping_interval:
            self.hub.heartbeat("ws", config.ping_interval, config.ping_timeout or None).discard(self)
        if self.security is not None:
            self.security.close()
        if self._admitted:
            self._admitted = False
            self.authenticator.connections.release(self._address)
        if self.member is not None:
            self.hub.disconnect(self.member)
            log.debug("client %s closed (%s %s)", self.member.id, self.close_code, self.close_reason)

    def _close_for_security(self, code: int, reason: str) -> None:
        """Deadline missed or token expired: say why in an error frame, then close."""
        from ..core.errors import Unauthorized

        self._report(Unauthorized(f"Closing: {reason}."))
        self.close(code, reason)

    # -- input -----------------------------------------------------------------------

    # -- heartbeat (see rtnb.server.heartbeat) -------------------------------------------

    def send_heartbeat(self) -> None:
        if not self._closed and self.ws_connection is not None:
            try:
                self.ping(b"")
            except tornado.websocket.WebSocketClosedError:
                self._closed = True

    def on_pong(self, data: bytes) -> None:
        self.awaiting_pong_since = None

    def heartbeat_timed_out(self) -> None:
        log.info("client %s did not answer a ping in time; closing", self.member.id if self.member else "-")
        self.close(CloseCode.INTERNAL_ERROR, "ping timeout")

    def on_message(self, frame: str | bytes) -> Any:
        self.awaiting_pong_since = None  # any frame proves the peer is alive
        member = self.member
        if member is None:
            return None
        if frame_log.isEnabledFor(logging.DEBUG):
            frame_log.debug("<- %s %r", member.id, frame)
        try:
            request = parse_request(decode_frame(frame, self.format), self.hub.limits)
            security = self.security
            if security is None:  # refused at open (connection limit); closing
                return None
            if isinstance(request, Auth):
                return self._authenticate(security, request)
            if not security.authenticated:
                from ..core.errors import Unauthorized

                self._report(
                    Unauthorized('Authenticate first with {"op": "auth", "token": ...}.', request_id=request.id)
                )
                self.close(CloseCode.NOT_AUTHENTICATED, "not authenticated")
                return None
            if isinstance(request, Publish):
                if security.check_publish(request.topic, request.id) is Verdict.CLOSE:
                    self._report(security.rate_error(request.id))
                    self.close(CloseCode.POLICY_VIOLATION, "persistently over the publish rate limit")
                    return None
            elif isinstance(request, Subscribe):
                security.check_subscribe(request.pattern, request.since, request.id)
            elif isinstance(request, Presence):
                security.check_subscribe(request.pattern, None, request.id)
            if isinstance(request, Publish):
                if self.hub.backplane.is_local:
                    message = self.hub.publish_now(request.topic, request.data, trusted=True)
                    self._publishes.acknowledge(request.id, message)
                    return None
                return self._publishes.publish(request.id, self.hub.publish(request.topic, request.data, trusted=True))
            if isinstance(request, Subscribe):
                return self._subscribe(member, request)
            if isinstance(request, Presence):
                return self._presence(member, request)
            if isinstance(request, Unsubscribe):
                self.hub.unsubscribe(member, request.pattern)
                self._reply({"op": "unsubscribed", "topic": request.pattern}, request.id)
            elif isinstance(request, Ping):
                self._reply({"op": "pong"}, request.id)
            elif isinstance(request, Checkpoint):
                self._reply(self.hub.checkpoint(member), request.id)
        except RtnbError as error:
            self._publishes.refuse(error)  # in request order, after the answers of earlier publishes
        return None

    def _authenticate(self, security: ConnectionSecurity, request: Auth) -> None:
        """First authentication (a bad token closes 4002) or a refresh (a bad one keeps the old grant)."""
        was_authenticated = security.authenticated
        try:
            permissions = security.authenticate(request.token)
        except RtnbError as error:
            error.request_id = request.id
            self._report(error)
            if not was_authenticated:
                self.close(CloseCode.AUTH_INVALID, "invalid token")
            return
        reply: dict[str, Any] = {"op": "authenticated"}
        if permissions.subject is not None:
            reply["subject"] = permissions.subject
        if permissions.expires_at is not None:
            reply["expires"] = permissions.expires_at
        self._reply(reply, request.id)

    def _reply(self, frame: dict[str, Any], request_id: Any) -> None:
        if request_id is not None:
            frame["id"] = request_id
        self.send_control(frame)

    def _report(self, error: RtnbError) -> None:
        self.hub.record_error(error.code)
        self.send_control(error.to_wire())

    def _write_answers(self, parts: list[bytes]) -> None:
        """Publish answers (acks, errors) ready together: one write, as few frames as fit."""
        if frame_log.isEnabledFor(logging.DEBUG):
            frame_log.debug("-> %s %r", self.member.id if self.member else "-", parts)
        frames = split_frames(parts, self.format, self.hub.limits.max_batch_bytes)
        self._write(frames[0] if len(frames) == 1 else b"".join(frames))

    async def _subscribe(self, member: Member, request: Subscribe) -> None:
        try:
            if request.cursor is not None:
                request = await self.hub.resume_from_cursor(request)
                if self.security is not None:
                    self.security.check_subscribe(request.pattern, request.since, request.id)
            await self.hub.subscribe(member, request)
        except RtnbError as error:
            if error.request_id is None:
                error.request_id = request.id
            self._report(error)

    async def _presence(self, member: Member, request: Presence) -> None:
        if request.watch is not None:
            self.hub.watch_presence(member, request.pattern, request.watch)
        try:
            members = await self.hub.presence(request.pattern)
        except RtnbError as error:
            if error.request_id is None:
                error.request_id = request.id
            self._report(error)
            return
        self._reply({"op": "presence", "topic": request.pattern.text, "members": members}, request.id)

    # -- Sink ------------------------------------------------------------------------

    def _write(self, data: bytes | memoryview) -> None:
        stream = self._stream
        if stream is None or self._closed:
            return
        if self._publishes.ready:  # publish answers go first: they came before whatever this is
            self._publishes.flush()
        if self._direct and stream_bytes_written(stream) == stream_bytes_sent(stream):
            # Nothing is queued in Tornado: hand the bytes to the kernel here.
            # IOStream.write would do the same send, plus a Future, a done
            # callback and a loop callback per call, once per subscriber.
            sock = stream.socket
            if sock is not None:
                try:
                    sent = sock.send(data)
                except OSError:
                    sent = 0  # EAGAIN, or an error stream.write meets again and closes the stream on
                if sent == len(data):
                    return
                if sent:
                    data = memoryview(data)[sent:]
        try:
            stream.write(data)
        except tornado.iostream.StreamClosedError:
            self._closed = True

    def send_batch(self, batch: Batch) -> bool:
        stream = self._stream
        if stream is None or self._closed:
            return True
        if buffered_bytes(stream) > self._max_queue_bytes:
            return False
        security = self.security
        if security is not None and security.permissions is not None and security.token_ran_out():
            return True  # closing with 4004; the client resumes from what it received
        builder = self._builder
        assert builder is not None  # open() sets it together with the stream
        for frame in batch.encoded(self._batch_key, builder):
            self._write(frame)
        return True

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        security = self.security
        if security is not None and security.permissions is not None and security.token_ran_out():
            return
        fmt = self.format
        parts = [_encode_item(item, fmt) for item in coalesce_gaps(items)]
        if parts:
            for frame in split_frames(parts, fmt, self.hub.limits.max_batch_bytes):
                self._write(frame)

    def send_control(self, frame: dict[str, Any]) -> None:
        if frame_log.isEnabledFor(logging.DEBUG):
            frame_log.debug("-> %s %r", self.member.id if self.member else "-", frame)
        payload = orjson.dumps(frame) if self.format == "json" else encode_msgpack(frame)
        self._write(frame_bytes(payload, self._opcode))

    def buffered_bytes(self) -> int:
        return 0 if self._stream is None else buffered_bytes(self._stream)

    async def drained(self) -> None:
        stream = self._stream
        if stream is None or self._closed or stream.closed():
            raise ConnectionClosed("The connection is closed.")
        try:
            # shield: a caller's timeout must not cancel Tornado's own future
            await asyncio.shield(stream.write(b""))
        except tornado.iostream.StreamClosedError:
            raise ConnectionClosed("The connection is closed.") from None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Start the closing handshake; drop the TCP connection if the peer does
        not finish it within the hub's ``close_timeout`` (Tornado waits 5 s)."""
        connection = self.ws_connection
        if connection is None:
            return
        self._publishes.flush()
        super().close(code, reason)
        if self._abort_handle is None and self._stream is not None:
            stream = self._stream
            self._abort_handle = asyncio.get_running_loop().call_later(self.hub.config.close_timeout, stream.close)


_prime_attribute_table(HubWebSocket)

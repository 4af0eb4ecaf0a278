"""``GET /ws``: the WebSocket transport, a thin adapter over :class:`~rtnb.server.hub.Hub`.

The handler parses frames with :func:`~rtnb.core.protocol.parse_request`, calls
the hub, and writes what the hub hands it. For speed, outbound frames are built
once per batch and written straight to the connection's stream as bytes: a
thousand subscribers of one group get the very same ``bytes`` object, instead
of a thousand ``write_message`` calls each re-framing the payload (the classic
Tornado broadcast loop). Compression is off by default, so pre-framed bytes
are valid on every connection.

Split by job: the frames built once per batch (``_wsoutgoing.py``), the memory
savings of each handler (``_wsmemory.py``), the writes of a connection as the
hub's sink (``_wssink.py``) and the dispatch of its requests (``_wsrequests.py``);
this module keeps the handshake, the lifecycle and the heartbeat.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

import orjson
import tornado.httputil
import tornado.iostream
import tornado.websocket

from ..core.auth import Permissions
from ..core.close_codes import CloseCode
from ..core.errors import RtnbError
from ..core.fanout import Batch, Member
from ..core.message import Format
from ..core.origins import HostPolicy, RequestGuard
from ..core.protocol import (
    PROTOCOL_VERSION,
    SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
)
from ..core.topics import Pattern
from ._publish_pipeline import MAX_PUBLISHES_IN_FLIGHT, PublishPipeline
from ._tornado import (
    release_response_headers,
    strict_framing_available,
    websocket_params,
)
from ._wsmemory import _RELEASED_HEADERS, _prime_attribute_table
from ._wsoutgoing import _BINARY, _TEXT, _batch_builder, buffered_bytes, frame_bytes, split_frames
from ._wsrequests import WebSocketRequests
from .auth import AccessControl, ConnectionSecurity
from .hub import Hub

__all__ = ["MAX_PUBLISHES_IN_FLIGHT", "HubWebSocket", "buffered_bytes", "frame_bytes", "split_frames"]

log = logging.getLogger("rtnb.ws")

#: what a view key may subscribe: every data topic, and the bridges' status (``$rtnb/bridge/mqtt``)
VIEW_KEY_GRANTS = (Pattern.parse("#"), Pattern.parse("$rtnb/bridge/#"))


class HubWebSocket(WebSocketRequests):
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
        authenticator: AccessControl | None = None,
        guard: RequestGuard | None = None,
        view_key: str | None = None,
    ) -> None:
        self.hub = hub
        #: the hub's Host and Origin rules, shared with every other route (rtnb.core.origins)
        self.guard = guard or RequestGuard(HostPolicy.any_host())
        self.view_key = view_key
        self.authenticator = authenticator or AccessControl.open()
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
        from ._wsprotocol import StrictWebSocketProtocol

        params = websocket_params(
            self.ping_interval, self.ping_timeout, self.max_message_size, self.get_compression_options()
        )
        return StrictWebSocketProtocol(self, params, self.hub.config.close_timeout)

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


_prime_attribute_table(HubWebSocket)

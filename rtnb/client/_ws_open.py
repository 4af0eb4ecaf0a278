"""Opening one WebSocket connection to the hub: the handshake, its ``welcome``, authentication."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..core.errors import (
    ProtocolError,
    Timeout,
    Unauthorized,
    Unavailable,
    error_from_wire,
)
from ..core.protocol import PROTOCOL_VERSION, SUBPROTOCOL_MSGPACK
from ._requests import ClientRequests
from ._wire import frame_items

__all__ = ["WebSocketOpening"]

log = logging.getLogger("rtnb.client")


class WebSocketOpening(ClientRequests):
    """One connection attempt of an :class:`~rtnb.client.AsyncClient` (retries are the skeleton's)."""

    open_timeout: float
    ping_interval: float | None
    ping_timeout: float | None
    max_frame_bytes: int | None

    async def _open(self) -> Any:
        """One connection attempt: handshake, welcome, authentication."""
        import websockets
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        subprotocols = [Subprotocol(SUBPROTOCOL_MSGPACK)] if self.format == "msgpack" else None
        try:
            connection = await connect(
                self.ws_url,
                subprotocols=subprotocols,
                additional_headers=self.headers or None,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                max_size=self.max_frame_bytes,
                compression=None,
                close_timeout=2.0,
            )
        except websockets.InvalidStatus as error:
            status = error.response.status_code
            if status in (401, 403):
                raise Unauthorized(f"The hub at {self.ws_url} refused the connection (HTTP {status}).") from None
            raise Unavailable(f"The hub at {self.ws_url} answered HTTP {status} instead of a WebSocket.") from None
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as error:
            raise Unavailable(f"Cannot reach the hub at {self.ws_url}: {error or type(error).__name__}.") from None
        try:
            welcome = await self._receive_reply(connection, lambda item: item.get("op") == "welcome")
            if welcome.get("version") != PROTOCOL_VERSION:
                raise ProtocolError(
                    f"The hub speaks protocol version {welcome.get('version')}; this client speaks {PROTOCOL_VERSION}."
                )
            self.client_id = welcome.get("client")
            if self.token is not None:
                request_id = next(self._ids)
                await self._send(connection, {"op": "auth", "token": self.token, "id": request_id})
                reply = await self._receive_reply(connection, lambda item: item.get("id") == request_id)
                if reply.get("op") == "error":
                    raise error_from_wire(str(reply.get("code")), str(reply.get("message")), request_id)
        except BaseException:
            await connection.close()
            raise
        log.debug("connected to %s as %s", self.ws_url, self.client_id)
        return connection

    async def _receive_reply(self, connection: Any, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Read frames before the reader runs, until an object ``wanted`` accepts."""
        import websockets

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.open_timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise asyncio.TimeoutError
                frame = await asyncio.wait_for(connection.recv(), remaining)
                self._log_frame("<-", frame)
                for item in frame_items(frame):
                    if isinstance(item, dict) and wanted(item):
                        return item
                    if isinstance(item, dict) and item.get("op") == "error":
                        raise error_from_wire(str(item.get("code")), str(item.get("message")))
        except asyncio.TimeoutError:
            raise Timeout(f"The hub at {self.ws_url} did not answer within {self.open_timeout} s.") from None
        except websockets.ConnectionClosed as error:
            raise Unavailable(f"The hub at {self.ws_url} closed the connection: {error}.") from None

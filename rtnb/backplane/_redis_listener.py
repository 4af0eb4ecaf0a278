"""One pub/sub connection to one Redis node, health-checked so a dead or stalled one is noticed.

A listener that dies silently is the classic failure of Redis-backed fan-out:
a killed connection is seen at once (end of stream), but a *stalled* one (a
half-open TCP link, a hung proxy, a frozen node) delivers nothing, forever.
So the listener sends ``PING`` inside the subscribed connection every
``ping_interval`` seconds and expects *something* back (the pong, or
messages) within ``ping_timeout``; silence longer than that raises
:class:`ListenerLost`, and the owner reconnects, resubscribes and recovers what
was published meanwhile from history.

It speaks RESP directly (parsed by ``hiredis``) rather than through redis-py's
PubSub object, so that sharded subscriptions, health pings and timeouts are
under this module's control with every redis-py version.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import hiredis

__all__ = ["Endpoint", "Listener", "ListenerLost"]


class ListenerLost(ConnectionError):
    """The pub/sub connection closed, failed, or fell silent past its ping timeout."""


@dataclass(frozen=True)
class Endpoint:
    """Where a Redis node listens and how to log in."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    #: the URL's ``ssl_*`` parameters (``ssl_ca_certs``, ``ssl_cert_reqs``, ...), as redis-py reads them
    tls_options: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS settings of a ``rediss://`` URL, read as redis-py reads them for its own connections.

        ``ssl_ca_certs`` (a CA file, e.g. for a self-signed server certificate),
        ``ssl_cert_reqs`` (``required``, the default; ``optional``; ``none``),
        ``ssl_check_hostname`` (``true``/``false``), ``ssl_certfile`` and
        ``ssl_keyfile`` (a client certificate). None for a plain connection.
        """
        if not self.tls:
            return None
        options = dict(self.tls_options)
        context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
        requirement = options.get("ssl_cert_reqs", "required").lower()
        check_hostname = options.get("ssl_check_hostname")
        if check_hostname is not None:
            context.check_hostname = check_hostname.lower() in ("1", "true", "yes")
        if requirement in ("none", "cert_none"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif requirement in ("optional", "cert_optional"):
            context.verify_mode = ssl.CERT_OPTIONAL
        if "ssl_certfile" in options:
            context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
        return context


def _command(*parts: str | bytes) -> bytes:
    """A RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class Listener:
    """A subscribed connection: :meth:`open`, :meth:`subscribe`, then :meth:`read` in a loop.

    Args:
        endpoint: the node.
        client_name: shown in ``CLIENT LIST`` (tests and operators find it by name).
        sharded: use ``SSUBSCRIBE`` (Redis >= 7) rather than ``SUBSCRIBE``.
        ping_interval: seconds between health pings.
        ping_timeout: seconds of silence after which the connection is declared lost.
        connect_timeout: seconds to connect and log in.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        client_name: str,
        *,
        sharded: bool,
        ping_interval: float = 1.0,
        ping_timeout: float = 3.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.endpoint = endpoint
        self.client_name = client_name
        self.sharded = sharded
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.connect_timeout = connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader()
        self._pinger: asyncio.Task[None] | None = None
        self._replies: deque[Any] = deque()
        self._heard_at = 0.0
        self._pinged_at = 0.0
        self._silent = False

    async def open(self) -> None:
        """Connect and log in.

        Raises:
            ListenerLost: the node cannot be reached or refuses the login.
        """
        endpoint = self.endpoint
        try:
            context = endpoint.tls_context()
            self._reader, writer = await asyncio.wait_for(
                asyncio.open_connection(endpoint.host, endpoint.port, ssl=context), self.connect_timeout
            )
            self._writer = writer
            setup = []
            if endpoint.password is not None:
                login = (endpoint.username, endpoint.password) if endpoint.username else (endpoint.password,)
                setup.append(_command("AUTH", *login))
            setup.append(_command("CLIENT", "SETNAME", self.client_name))
            writer.write(b"".join(setup))
            for _ in setup:
                reply = await asyncio.wait_for(self._next_reply(), self.connect_timeout)
                if isinstance(reply, hiredis.ReplyError):
                    raise ListenerLost(f"{endpoint.name} refused the login: {reply}")
        except (OSError, asyncio.TimeoutError) as error:
            await self.close()
            raise ListenerLost(f"cannot listen on {endpoint.name}: {error or type(error).__name__}") from None
        self._heard_at = self._pinged_at = asyncio.get_running_loop().time()
        self._pinger = asyncio.ensure_future(self._ping_forever())

    def subscribe(self, channels: Iterable[bytes]) -> None:
        """Ask for ``channels`` (one command each: on a cluster a sharded subscribe names one slot)."""
        verb = b"SSUBSCRIBE" if self.sharded else b"SUBSCRIBE"
        self._send(b"".join(_command(verb, channel) for channel in channels))

    def unsubscribe(self, channels: Iterable[bytes]) -> None:
        verb = b"SUNSUBSCRIBE" if self.sharded else b"UNSUBSCRIBE"
        self._send(b"".join(_command(verb, channel) for channel in channels))

    def _send(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ListenerLost(f"the pub/sub connection to {self.endpoint.name} is closed")
        if data:
            self._writer.write(data)

    async def _ping_forever(self) -> None:
        """Ping every ``ping_interval``; abort the connection once it was silent for ``ping_timeout``.

        Aborting (rather than a timeout around every read) makes the reader see
        the end of the stream at once, and costs nothing per message.
        """
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(self.ping_interval, self.ping_timeout / 2))
            writer = self._writer
            if writer is None:
                return
            if loop.time() - self._heard_at > self.ping_timeout:
                # A loop that was busy (not the link) may have left replies unread: let the
                # reader run before calling the link silent.
                await asyncio.sleep(min(0.1, self.ping_interval))
                if loop.time() - self._heard_at > self.ping_timeout:
                    self._silent = True
                    writer.transport.abort()
                    return
            if loop.time() - self._pinged_at >= self.ping_interval:
                self._pinged_at = loop.time()
                try:
                    self._send(_command("PING"))
                except ListenerLost:
                    return

    async def read(self) -> list[Any]:
        """The next push from Redis: ``[kind, channel, payload]`` or a confirmation or pong.

        Raises:
            ListenerLost: the connection ended, or nothing arrived for ``ping_timeout`` seconds.
        """
        try:
            reply = await self._next_reply()
        except OSError as error:
            if self._silent:
                raise ListenerLost(
                    f"the pub/sub connection to {self.endpoint.name} was silent for {self.ping_timeout}s"
                ) from None
            raise ListenerLost(f"the pub/sub connection to {self.endpoint.name} failed: {error}") from None
        if isinstance(reply, hiredis.ReplyError):
            raise ListenerLost(f"{self.endpoint.name} answered an error on the pub/sub connection: {reply}")
        return reply if isinstance(reply, list) else [reply]

    async def _next_reply(self) -> Any:
        while not self._replies:
            assert self._reader is not None
            data = await self._reader.read(1 << 16)
            self._heard_at = asyncio.get_running_loop().time()
            if not data:
                raise ListenerLost(f"{self.endpoint.name} closed the pub/sub connection")
            self._parser.feed(data)
            reply = self._parser.gets()
            while reply is not False:
                self._replies.append(reply)
                reply = self._parser.gets()
        return self._replies.popleft()

    async def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            self._pinger = None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (OSError, asyncio.TimeoutError):
                pass

"""What a hub can be told (:class:`HubConfig`) and what it counts (:class:`HubStats`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..core.history import HistoryLimits
from ..core.limits import Limits

__all__ = ["HubConfig", "HubStats"]


@dataclass(frozen=True)
class HubConfig:
    """Everything a hub can be told. Defaults suit a local notebook.

    Attributes:
        limits: input and queue bounds, see :class:`~rtnb.core.limits.Limits`.
        history: history bounds, see :class:`~rtnb.core.history.HistoryLimits`.
        ping_interval: seconds between WebSocket pings (0 disables them).
        ping_timeout: seconds without a pong before a peer is declared dead.
        close_timeout: seconds to wait for clients' close handshakes at shutdown.
        trim_interval: seconds between applications of ``history.max_age``.
        keepalive_interval: seconds between SSE keep-alive comments (0 disables them).
        sse_retry: seconds an SSE client should wait before reconnecting (sent as ``retry:``).
        poll_timeout: seconds a long poll waits when the client gives no ``timeout``.
        poll_max_timeout: longest wait a long poll may ask for; larger requests are capped.
        handshake_timeout: seconds a client has to send a complete request head (a
            WebSocket upgrade included, TLS handshake too); also how long an idle
            keep-alive connection stays open. Applied by ``HubServer``.
        body_timeout: seconds a client has to send a request body (HTTP publish).
        write_timeout: seconds a connection may hold unsent bytes while its peer takes
            none; then it is closed (any transport). ``None`` disables it. Readers that
            are merely slow are handled by the slow-consumer policy instead.
        websocket_compression: accept permessage-deflate from clients (off by
            default: decompression bombs). When on, a message's decompressed size is
            bounded by ``limits.max_frame_bytes`` (over it: close 1009); the hub's own
            frames still go out uncompressed, so fan-out keeps encoding once.
    """

    limits: Limits = field(default_factory=Limits)
    history: HistoryLimits = field(default_factory=HistoryLimits)
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 2.0
    trim_interval: float = 1.0
    keepalive_interval: float = 15.0
    sse_retry: float = 2.0
    poll_timeout: float = 25.0
    poll_max_timeout: float = 60.0
    handshake_timeout: float = 10.0
    body_timeout: float = 30.0
    write_timeout: float | None = 30.0
    websocket_compression: bool = False


@dataclass
class HubStats:
    """Counters exported on ``/metrics``; plain ints so the hot path stays cheap."""

    messages_in: int = 0
    messages_out: int = 0
    batches_out: int = 0
    lag_events: int = 0
    slow_consumer_closes: int = 0
    gaps_sent: int = 0
    connections_opened: int = 0
    write_timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)

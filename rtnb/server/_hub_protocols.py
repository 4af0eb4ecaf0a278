"""The parts a hub is plugged into: a connection's :class:`Sink`, a :class:`Component` beside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..core.fanout import Batch
from ..core.history import Gap
from ..core.message import Message

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["Component", "ComponentMetric", "Sink"]


class Sink(Protocol):
    """How the hub writes to one subscriber; implemented by each transport."""

    transport: str

    def send_batch(self, batch: Batch) -> bool:
        """Write a group batch; return False, writing nothing, when over the queue limit."""

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        """Write messages and gaps meant for this subscriber alone (replay, catch-up)."""

    def send_control(self, frame: dict[str, Any]) -> None:
        """Write a control frame (welcome, subscribed, ack, error, pong...)."""

    def buffered_bytes(self) -> int:
        """Bytes written but not yet accepted by the peer's socket."""

    async def drained(self) -> None:
        """Return once everything written so far has left the buffer."""

    def close(self, code: int, reason: str) -> None:
        """End the connection (WebSocket close code; others map it as they can)."""


@dataclass(frozen=True)
class ComponentMetric:
    """One number a component exports on ``/metrics`` (labelled with the component's name)."""

    name: str
    documentation: str
    kind: str  # "counter" or "gauge"
    value: float
    labels: dict[str, str] = field(default_factory=dict)


class Component(Protocol):
    """A part that runs beside the hub on its loop (e.g. an MQTT bridge).

    Registered with :meth:`Hub.add_component`; the hub starts it with itself,
    stops it first at shutdown, merges its :meth:`health` into ``/healthz``
    (``"ok": False`` makes the hub ``degraded``) and exports its :meth:`metrics`.
    """

    async def start(self, hub: Hub) -> None:
        """Begin work on the running loop; must not wait for remote peers."""

    async def stop(self) -> None:
        """End work and release connections; safe to call twice."""

    def health(self) -> dict[str, Any]:
        """State for ``/healthz``, with at least ``"ok": bool``."""

    def metrics(self) -> Sequence[ComponentMetric]:
        """Numbers for ``/metrics``."""

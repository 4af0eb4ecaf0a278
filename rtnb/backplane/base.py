"""The seam between a hub and whatever shares its messages with other hubs.

A backplane assigns offsets, keeps history and hands every message to the hub's
local fan-out through the ``deliver`` callback given to :meth:`Backplane.start`,
in offset order per topic. The in-memory backplane does all of this inside the
process; the Redis backplane does it in Redis so several hubs agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..core.history import Gap
from ..core.message import Message
from ..core.topics import Pattern

__all__ = ["Backplane", "Deliver", "ReadResult", "TopicPosition"]

#: Called with every message, local or from another hub, for local fan-out.
Deliver = Callable[[Message], object]


#: (gaps, messages, position reached or None for an unknown topic)
ReadResult = tuple[list[Gap], list[Message], "tuple[int, int] | None"]


@dataclass(frozen=True, slots=True)
class TopicPosition:
    """Where a topic's history stands: its epoch and retained offset range."""

    epoch: int
    first_offset: int
    last_offset: int


@runtime_checkable
class Backplane(Protocol):
    """What a hub needs from a message backplane.

    ``is_local`` backplanes also offer :meth:`append`, a synchronous publish
    that the hub's hot path uses to avoid a coroutine per message.
    """

    name: str
    is_local: bool
    #: this hub's name in presence answers and join/leave events
    hub_id: str

    async def start(self, deliver: Deliver) -> None:
        """Begin delivering messages to ``deliver``."""

    async def stop(self) -> None:
        """Release connections; no delivery after this returns."""

    async def publish(self, topic: str, data: Any, ts: float, data_json: bytes) -> Message:
        """Assign the next offset to ``data`` on ``topic``, store and deliver it.

        Raises:
            Unavailable: the backplane cannot take the message now.
        """

    async def read_since(self, topic: str, offset: int, epoch: int | None) -> ReadResult:
        """Retained messages after ``offset``, with gaps for what is gone.

        Returns:
            ``(gaps, messages, position)`` where ``position`` is the
            ``(epoch, offset)`` the reader has reached once it has the gaps and
            messages, or ``None`` when the topic is unknown.
        """

    def positions(self, pattern: Pattern) -> dict[str, TopicPosition]:
        """Known topics matching ``pattern`` and where their history stands."""

    async def watch(self, patterns: set[Pattern]) -> None:
        """The patterns local subscribers need; a shared backplane listens for them."""

    def health(self) -> dict[str, Any]:
        """State for ``/healthz``: at least ``{"backplane": name, "ok": bool}``."""

    def reset_topic(self, topic: str) -> None:
        """Forget ``topic``'s history; its next message starts a new epoch."""

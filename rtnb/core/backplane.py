"""The seam between a hub and whatever shares its messages with other hubs.

These protocols live in the core so that both sides build on them and neither
imports the other: the hub (``rtnb.server``) is typed against :class:`Backplane`,
the backplanes (``rtnb.backplane``, and :mod:`rtnb.core.memory_backplane`)
against :class:`HubLink`. A hub runs on the in-memory backplane unless its
caller builds another (e.g. Redis) and passes it in.

A backplane assigns offsets, keeps history and hands every message to the hub's
local fan-out through the :class:`HubLink` given to :meth:`Backplane.start`,
in offset order per topic. The in-memory backplane does all of this inside the
process; the Redis backplane does it in Redis so several hubs agree.

The two talk only through these two protocols: the hub calls a
:class:`Backplane`, the backplane calls back through the :class:`HubLink`
(events in: messages, gaps, outages, presence changes; and what the hub's
clients subscribe to). Neither touches the other's members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .cursor_store import CursorMirror
from .errors import Unavailable
from .history import Gap
from .message import Message
from .topics import Pattern

__all__ = ["Backplane", "Deliver", "HubLink", "LocalBackplane", "ReadResult", "TopicPosition"]

#: Called with every message, local or from another hub, for local fan-out.
Deliver = Callable[[Message], object]


#: (gaps, messages, position reached or None for an unknown topic); the position is an
#: ``(epoch, offset)`` :class:`~rtnb.core.position.Position` or a plain tuple of that shape
ReadResult = tuple[list[Gap], list[Message], "tuple[int, int] | None"]


@dataclass(frozen=True, slots=True)
class TopicPosition:
    """Where a topic's history stands: its epoch and retained offset range."""

    epoch: int
    first_offset: int
    last_offset: int


class HubLink(Protocol):
    """What a backplane may tell, and ask, the hub it serves (implemented by the hub)."""

    def deliver(self, message: Message) -> None:
        """Route ``message`` to local subscribers (offset order per topic)."""

    def skip(self, topic: str, epoch: int, offset: int, gaps: Sequence[Gap]) -> None:
        """Live subscribers of ``topic`` missed ``gaps``; the topic now stands at ``offset`` of ``epoch``."""

    def backplane_unavailable(self, error: Unavailable, affected: Callable[[Pattern], bool]) -> None:
        """Tell subscribers holding a pattern for which ``affected`` is true that live messages pause."""

    def membership_changed(self, client: str, before: list[str], after: list[str], hub_id: str | None = None) -> None:
        """A client's subscriptions changed (on this hub or on ``hub_id``): tell presence watchers."""

    def local_subscriptions(self) -> dict[str, list[str]]:
        """Client id -> patterns, for every connection of this hub that subscribes."""

    def watched_patterns(self) -> set[Pattern]:
        """Every pattern the hub's subscribers hold now."""

    def topic_reset(self, topic: str) -> None:
        """``topic``'s history was reset: its live subscribers hear ``epoch_changed`` now."""


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

    async def start(self, hub: HubLink) -> None:
        """Begin delivering messages (and other events) to ``hub``."""

    async def stop(self) -> None:
        """Release connections; no delivery after this returns."""

    async def lost_epochs(self, pattern: Pattern) -> dict[str, tuple[int, int]]:
        """Epochs that reset topics matching ``pattern`` lost: topic -> (epoch, last offset).

        Raises:
            Unavailable: the backplane cannot be read.
        """

    def cursor_mirror(self) -> CursorMirror | None:
        """Where stored resume cursors are shared with other hubs (None: this hub only)."""

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

    async def presence(self, query: Pattern) -> list[dict[str, str]]:
        """Clients subscribed to what ``query`` names, on every hub this backplane joins.

        Raises:
            Unavailable: a shared backplane cannot be read.
        """

    def announce_membership(self, client: str, before: list[str], after: list[str]) -> None:
        """``client``'s subscriptions changed here: tell every hub's presence watchers (this one's too)."""


class LocalBackplane(Backplane, Protocol):
    """A backplane whose ``is_local`` is true: it also publishes synchronously."""

    def append(self, topic: str, data: Any, ts: float, data_json: bytes | None = None) -> Message:
        """Assign the next offset to ``data`` on ``topic``, store and deliver it, before returning."""

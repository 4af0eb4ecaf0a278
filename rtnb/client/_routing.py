"""The patterns an :class:`~rtnb.client.AsyncClient` holds, and routing what arrives to their subscriptions."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import (
    RtnbError,
)
from ..core.history import Gap
from ..core.message import Message
from ..core.topics import Pattern
from ._requests import ClientRequests
from ._subscription import Subscription

__all__ = ["PatternRouting"]

log = logging.getLogger("rtnb.client")


@dataclass(eq=False)
class _PatternState:
    """A pattern this client holds, with the subscriptions reading it."""

    compiled: Pattern
    subscriptions: list[Subscription]
    last: int | None = None
    since: dict[str, Any] | None = None
    #: the connection the subscribe request went out on (None: not yet sent)
    sent_on: Any = None
    #: True once a subscribe request went out: later ones resume with ``since``
    established: bool = False
    #: the hub answered ``unavailable`` (its backplane is down): retried with backoff
    refused: bool = False
    #: sent again after a refusal, the hub's answer not in yet (still counts as refused in ``status``)
    retrying: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class PatternRouting(ClientRequests):
    """Which subscriptions hear a topic; duplicates dropped and gaps found, per subscription."""

    def _drop_pattern(self, state: _PatternState, error: RtnbError | None) -> None:
        text = state.compiled.text
        if self._patterns.get(text) is state:
            del self._patterns[text]
        self._routes.clear()
        for subscription in state.subscriptions:
            subscription._end(error)
        patterns = [kept.compiled for kept in self._patterns.values()]
        self._tracker.forget(lambda topic: any(pattern.matches(topic) for pattern in patterns))

    def _route(self, topic: str) -> tuple[Subscription, ...]:
        subscriptions = self._routes.get(topic)
        if subscriptions is None:
            if len(self._routes) > 100_000:
                self._routes.clear()
            subscriptions = self._routes[topic] = tuple(
                subscription
                for state in self._patterns.values()
                if state.compiled.matches(topic)
                for subscription in state.subscriptions
            )
        return subscriptions

    async def _on_message(self, message: Message) -> None:
        subscriptions = self._route(message.topic)
        if not subscriptions:
            return  # in flight before an unsubscribe
        deliver, gaps = self._tracker.on_message(message.topic, message.epoch, message.offset)
        shared = tuple(sub for sub in subscriptions if sub._own_tracker is None)
        for gap in gaps:
            await self._hand_gap(gap, shared)
        if not deliver:
            self.duplicates_dropped += 1
        for subscription in subscriptions:
            tracker = subscription._own_tracker
            if tracker is None:
                if deliver:
                    await subscription._deliver(message)
                continue
            if subscription._replay_request is not None:
                continue  # its replay request is not answered yet: the replay covers this
            own, own_gaps = tracker.on_message(message.topic, message.epoch, message.offset)
            for gap in own_gaps:
                await self._hand_gap(gap, (subscription,))
            if own:
                await subscription._deliver(message)

    async def _on_gap(self, gap: Gap) -> None:
        subscriptions = self._route(gap.topic)
        if not subscriptions:
            return
        shared = tuple(sub for sub in subscriptions if sub._own_tracker is None)
        for handed in self._tracker.on_gap(gap):
            await self._hand_gap(handed, shared)
        for subscription in subscriptions:
            tracker = subscription._own_tracker
            if tracker is not None and subscription._replay_request is None:
                for handed in tracker.on_gap(gap):
                    await self._hand_gap(handed, (subscription,))

    async def _hand_gap(self, gap: Gap, subscriptions: tuple[Subscription, ...]) -> None:
        self.gaps_reported += 1
        log.warning(
            "gap on %s: offsets %s..%s (%s)",
            gap.topic,
            gap.from_offset,
            "?" if gap.to_offset is None else gap.to_offset,
            gap.reason,
        )
        for subscription in subscriptions:
            await subscription._deliver(gap)

    def _seed(self, reply: dict[str, Any]) -> None:
        positions = reply.get("positions")
        if not isinstance(positions, dict):
            return
        for topic, position in positions.items():
            if isinstance(position, dict) and isinstance(position.get("offset"), int):
                epoch = position.get("epoch")
                self._tracker.seed(topic, epoch if isinstance(epoch, int) else None, position["offset"])

    def _start_listening(self, reply: dict[str, Any]) -> None:
        """Replaying subscriptions waiting for this reply hear from now on, from where it says."""
        request_id: Any = reply.get("id")  # as the hub echoed it: an id this client never sent finds nothing
        listeners = self._listeners.pop(request_id, None)
        if not listeners:
            return
        positions = reply.get("positions")
        for subscription in listeners:
            tracker = subscription._own_tracker
            if tracker is None or subscription._replay_request is None:
                continue
            since = subscription._replay_request.get("since") or {}
            for topic, position in since.items():
                tracker.seed(topic, position.get("epoch"), position["offset"])
            if isinstance(positions, dict):
                for topic, position in positions.items():
                    if isinstance(position, dict) and isinstance(position.get("offset"), int):
                        epoch = position.get("epoch")
                        tracker.seed(topic, epoch if isinstance(epoch, int) else None, position["offset"])
            subscription._replay_request = None

"""The state every part of the hub shares, and the small helpers they all use.

:class:`~rtnb.server.hub.Hub` is built in layers of one job each, every one a
class on top of :class:`HubState`: delivery (``_hub_delivery.py``), presence
(``_hub_presence.py``), subscriptions (``_hub_subscribe.py``), and the hub
itself (``hub.py``: lifecycle, connections, publish, events from the backplane).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.cursor_store import CursorIssuer
from ..core.fanout import Fanout, Member
from ..core.limits import Limits
from ..core.topics import Pattern
from ._hub_config import HubConfig, HubStats

if TYPE_CHECKING:
    from ..core.backplane import Backplane

__all__ = ["HubState"]


class HubState:
    """The hub's fields (set by :meth:`Hub.__init__ <rtnb.server.hub.Hub>`) and shared helpers."""

    config: HubConfig
    limits: Limits
    clock: Callable[[], float]
    backplane: Backplane
    fanout: Fanout
    cursors: CursorIssuer
    stats: HubStats
    _loop: asyncio.AbstractEventLoop | None
    _flush_scheduled: bool
    _tasks: set[asyncio.Task[Any]]
    _closing: bool
    _presence_watchers: dict[Member, set[Pattern]]
    _subscribing: Counter[Pattern]

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _forget_cursors(self, member: Member | None, group: Any) -> None:
        """Drop the cursor chains of a member that left and of a group that is gone."""
        if member is not None:
            self.cursors.forget(member)
        if group is not None and self.fanout.groups.get(group.key) is not group:
            self.cursors.forget(group)

    def _all_patterns(self) -> set[Any]:
        """Every pattern a group holds, and those whose subscribe is under way."""
        return {pattern for group in self.fanout.groups.values() for pattern in group.patterns} | set(self._subscribing)

    def _watch_patterns(self) -> None:
        if not self.backplane.is_local and not self._closing:
            self._spawn(self.backplane.watch(self._all_patterns()))

    def record_error(self, code: str) -> None:
        self.stats.errors[code] += 1

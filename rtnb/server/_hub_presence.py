"""The hub's presence: who subscribes to what, and join/leave events for those who watch."""

from __future__ import annotations

from ..core.fanout import Member
from ..core.presence import is_present
from ..core.topics import Pattern
from ._hub_state import HubState

__all__ = ["HubPresence"]


class HubPresence(HubState):
    """Presence queries and membership announcements."""

    def local_subscriptions(self) -> dict[str, list[str]]:
        """Client id -> patterns, for every connection of this hub that subscribes."""
        return {member.id: list(member.patterns) for member in self.fanout.members.values() if member.patterns}

    async def presence(self, query: Pattern) -> list[dict[str, str]]:
        """Clients subscribed to what ``query`` names: cluster-wide on a shared backplane.

        Returns:
            ``[{"client": ID, "hub": HUB_ID}, ...]``, the same shape on every backplane.

        Raises:
            Unavailable: the shared backplane cannot be read.
        """
        return list(await self.backplane.presence(query))

    def watch_presence(self, member: Member, query: Pattern, enabled: bool) -> None:
        """Send ``member`` join/leave events for ``query`` from now on (or stop)."""
        queries = self._presence_watchers.setdefault(member, set())
        if enabled:
            queries.add(query)
        else:
            queries.discard(query)
            if not queries:
                del self._presence_watchers[member]

    def _announce_membership(self, client: str, before: list[str], after: list[str]) -> None:
        if sorted(before) == sorted(after):
            return
        self.backplane.announce_membership(client, before, after)  # every hub, this one included, hears it

    def membership_changed(self, client: str, before: list[str], after: list[str], hub_id: str | None = None) -> None:
        """A client's subscriptions changed (here or, via the backplane, on ``hub_id``): tell watchers."""
        if not self._presence_watchers:
            return

        old = [Pattern.parse(text) for text in before]
        new = [Pattern.parse(text) for text in after]
        for member, queries in list(self._presence_watchers.items()):
            for query in queries:
                was = any(is_present(pattern, query) for pattern in old)
                now = any(is_present(pattern, query) for pattern in new)
                if was != now and member.sink is not None:
                    event = {"op": "join" if now else "leave", "topic": query.text, "client": client}
                    if hub_id is not None:
                        event["hub"] = hub_id
                    member.sink.send_control(event)

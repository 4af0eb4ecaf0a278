"""The hub's subscriptions: subscribe with replay (``last``/``since``), resume cursors, checkpoints, unsubscribe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..core.errors import CursorExpired, TooManySubscriptions
from ..core.fanout import Cursor, Member, MemberState
from ..core.history import Gap
from ..core.protocol import SinceCursor, Subscribe
from ..core.topics import Pattern
from ._hub_delivery import HubDelivery
from ._hub_presence import HubPresence

__all__ = ["HubSubscriptions"]


class HubSubscriptions(HubDelivery, HubPresence):
    """Subscribing a member and meeting its group without loss or duplicates."""

    async def subscribe(self, member: Member, request: Subscribe) -> None:
        """Add ``request.pattern`` to ``member``, reply ``subscribed``, replay, go live.

        Replay (``last`` or ``since``) and live messages meet without loss or
        duplicates: the member is fed from history until it reaches its group's
        position, then joins the group's batches. A topic already covered by
        another of the member's patterns is not replayed again, unless this
        request asks for it with ``last``/``since`` (honoured on every subscribe).

        Raises:
            TooManySubscriptions: the connection holds ``max_subscriptions`` patterns.
        """
        pattern = request.pattern
        if pattern.text not in member.patterns and len(member.patterns) >= self.limits.max_subscriptions:
            raise TooManySubscriptions(
                f"A connection may hold at most {self.limits.max_subscriptions} subscriptions.",
                request_id=request.id,
            )
        # While this awaits, the pattern is in no group yet: counted as subscribing, so that a
        # watch made meanwhile (another connection leaving) keeps it watched.
        self._subscribing[pattern] += 1
        try:
            await self.backplane.watch({*self._all_patterns(), pattern})
            # Read before the member joins its group: from there to its catch-up nothing may await,
            # or live batches would reach it ahead of its replay.
            lost_epochs = await self.lost_epochs(pattern, request.since) if request.since is not None else []
        finally:
            self._subscribing[pattern] -= 1
            if not self._subscribing[pattern]:
                del self._subscribing[pattern]
        if member.state is MemberState.CLOSED:
            return
        self.flush()
        start: Cursor = member.position()
        patterns = dict(member.patterns)
        patterns[pattern.text] = pattern
        before = list(member.patterns)
        old_group = member.group
        group = self.fanout.set_patterns(member, patterns)
        assert group is not None
        self._forget_cursors(None, old_group)
        self._announce_membership(member.id, before, list(patterns))
        lost: list[Gap] = []
        positions = self.backplane.positions(pattern)
        tracked = len(group.cursor)
        for known in group.patterns:
            for topic, position in (positions if known is pattern else self.backplane.positions(known)).items():
                group.cursor.setdefault(topic, (position.epoch, position.last_offset))
        if len(group.cursor) != tracked:
            self.cursors.forget(group)  # its next stored cursor is a full one
        for topic, position in positions.items():
            # ``last``/``since`` are honoured on every subscribe, even on topics this
            # connection already receives through another (or the same) pattern: the
            # requested range is sent again (clients drop what they already had).
            if request.since is not None and topic in request.since:
                epoch, offset = request.since[topic]
                start[topic] = (position.epoch if epoch is None else epoch, offset)
            elif request.last is not None:
                start[topic] = (position.epoch, max(position.first_offset - 1, position.last_offset - request.last))
            elif topic in start:
                continue
            elif request.since is not None:
                # A resuming client lists every topic it has seen; a matching topic it
                # does not list is new to it (e.g. created while it was offline), so it
                # gets that topic's retained history rather than losing it silently.
                start[topic] = (position.epoch, 0)
            else:
                start[topic] = (position.epoch, position.last_offset)
        if request.since is not None:
            for topic, (_epoch, offset) in request.since.items():
                if offset and topic not in positions and pattern.matches(topic):
                    lost.append(Gap(topic, offset + 1, None, "epoch_changed"))
            lost += lost_epochs
        reply: dict[str, Any] = {"op": "subscribed", "topic": pattern.text}
        if request.id is not None:
            reply["id"] = request.id
        # Where this subscription starts on each matching topic, so a client can
        # resume later from there even on topics it has not received anything from.
        # Omitted when no topic matches yet.
        starts = {topic: {"offset": start[topic][1], "epoch": start[topic][0]} for topic in positions if topic in start}
        if starts:
            reply["positions"] = starts
        member.sink.send_control(reply)
        if lost:
            self._send_gaps(member, lost)
        was_live = member.state is MemberState.LIVE
        member.cursor = start
        if was_live:
            member.transition(MemberState.CATCHING_UP)
            await self._catch_up(member)
            if member.state is MemberState.LAGGING:
                self._spawn(self._recover(member))
        # Otherwise a recovery is already under way and will read the new cursor.

    def checkpoint(self, member: Member) -> dict[str, Any]:
        """A ``checkpoint`` reply: a resume cursor for everything written to ``member`` so far.

        Pending batches are written first, so a live member stands exactly at its
        group's position, and the reply goes out after them, in stream order. A
        member still catching up (or lagging) gets no cursor: its position is
        moving under a replay, and it may simply ask again later.
        """
        self.flush()
        group = member.group
        reply: dict[str, Any] = {"op": "checkpoint", "patterns": sorted(member.patterns)}
        if member.state is MemberState.LIVE and group is not None:
            reply["cursor"] = self.cursors.issue(group.cursor, group.key, member)
        return reply

    async def resume_from_cursor(self, request: Subscribe) -> Subscribe:
        """``request`` with its cursor (``since: "~ID"`` plus ``delta``) turned into a ``since`` map.

        The cursor's positions on topics ``request.pattern`` matches, overridden by the
        delta. A topic the cursor does not list is new to the client (as with a full map).

        Raises:
            CursorExpired: a stored cursor this hub (and the backplane's mirror) no longer holds.
        """
        point = request.cursor
        if point is None:
            return request
        positions: SinceCursor = dict(point.positions)
        if point.stored_id is not None:
            head = await self.cursors.load(point.stored_id)
            if head is None:
                raise CursorExpired(
                    "The hub no longer holds this stored cursor; subscribe again with the full 'since' map.",
                    request_id=request.id,
                )
            positions = dict(head.positions)
        pattern = request.pattern
        since: SinceCursor = {topic: place for topic, place in positions.items() if pattern.matches(topic)}
        since.update(request.since or {})
        return replace(request, since=since, cursor=None)

    async def lost_epochs(self, pattern: Pattern, listed: Any) -> list[Gap]:
        """Gaps for epochs that reset topics lost, on topics a resuming client does not list.

        It never saw the topic, so the lost epoch was created after its cursor: all of it
        was owed (``epoch_changed`` from offset 1). The gap carries no ``epoch``: the
        ``subscribed`` reply already named the current one as where the subscription
        starts, and a client must not take this notice for one it already handled.
        """
        gaps = []
        for topic, _place in (await self.backplane.lost_epochs(pattern)).items():
            if topic not in listed:
                gaps.append(Gap(topic, 1, None, "epoch_changed"))
        return gaps

    async def watch(self, patterns: Sequence[Pattern]) -> None:
        """Make the backplane follow ``patterns`` now, so :meth:`Backplane.positions` knows
        their topics before a resume is planned (a shared backplane learns them on watch).

        Raises:
            Unavailable: the backplane cannot follow them now (e.g. Redis is down).
        """
        if not self.backplane.is_local:
            await self.backplane.watch({*self._all_patterns(), *patterns})

    def unsubscribe(self, member: Member, pattern: str) -> bool:
        """Drop ``pattern`` from ``member``; returns False if it was not subscribed."""
        if pattern not in member.patterns:
            return False
        self.flush()
        if member.state is MemberState.LIVE:
            member.cursor = {}
        patterns = dict(member.patterns)
        del patterns[pattern]
        old_group = member.group
        self.fanout.set_patterns(member, patterns)
        self._forget_cursors(None, old_group)
        self._announce_membership(member.id, [*list(member.patterns), pattern], list(patterns))
        self._watch_patterns()
        return True

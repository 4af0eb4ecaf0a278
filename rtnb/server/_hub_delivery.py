"""The hub's delivery: flushing batches to sinks, slow consumers' recovery and catch-up, gaps."""

from __future__ import annotations

import asyncio
import logging

from ..core.close_codes import CloseCode
from ..core.errors import RtnbError, SlowConsumer
from ..core.fanout import Fanout, Member, MemberState
from ..core.history import Gap
from ..core.message import Message
from ._hub_state import HubState

__all__ = ["HubDelivery"]

log = logging.getLogger("rtnb.hub")


class HubDelivery(HubState):
    """Writes what the fan-out decided; recovers members that fall behind."""

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every pending batch to its group's live members."""
        self._flush_scheduled = False
        fanout = self.fanout
        if not fanout.has_pending:
            return
        live = MemberState.LIVE
        delivered = 0
        batches = fanout.take_batches()
        for batch in batches:
            count = len(batch.messages)
            for member in tuple(batch.group.members):
                if member.state is live:
                    if member.sink.send_batch(batch):
                        delivered += count
                    else:
                        self._lag(member, batch.messages)
        self.stats.messages_out += delivered
        self.stats.batches_out += len(batches)

    def _lag(self, member: Member, skipped: list[Message]) -> None:
        Fanout.mark_lagging(member, skipped)
        self.stats.lag_events += 1
        log.info("subscriber %s is slow; skipping it until it drains", member.id)
        self._spawn(self._recover(member))

    async def _recover(self, member: Member) -> None:
        """Wait for a lagging member to drain, then catch it up from history.

        A member that makes no progress (its buffer does not drain) for
        ``max_lag_seconds`` is closed with 1008; one that drains slowly is
        caught up round after round, each round bounded by its queue limit.
        """
        sink = member.sink
        limit = self.limits.max_lag_seconds
        while member.state is MemberState.LAGGING:
            try:
                await asyncio.wait_for(sink.drained(), limit)
            except asyncio.TimeoutError:
                self.stats.slow_consumer_closes += 1
                log.warning("closing subscriber %s: its queue did not drain for %ss", member.id, limit)
                self.record_error(SlowConsumer.code)
                sink.send_control(
                    SlowConsumer(
                        f"Closing (1008): this connection took nothing from its queue for {limit:g} s;"
                        " resume from your cursor to get what you missed."
                    ).to_wire()
                )
                sink.close(CloseCode.POLICY_VIOLATION, "slow consumer: outbound queue over its limit")
                return
            except RtnbError:
                return
            if member.state is not MemberState.LAGGING:
                return
            member.transition(MemberState.CATCHING_UP)
            await self._catch_up(member)

    async def _catch_up(self, member: Member) -> None:
        """Feed a CATCHING_UP member from history until it meets its group.

        What history gives is written in chunks of about ``max_batch_bytes`` that
        may span several topics (per-topic order is kept), so a catch-up over
        thousands of topics costs a few writes, not one per topic. Gaps of topics
        with nothing after them go first in a chunk, together, so transports can
        coalesce them.

        Ends with the member ``LIVE``, or ``LAGGING`` when its buffer went over
        the limit (the caller then waits for it to drain), or closed.
        """
        sink, limits = member.sink, self.limits
        chunk_bytes = min(limits.max_batch_bytes, limits.max_queue_bytes)
        while member.state is MemberState.CATCHING_UP:
            self.flush()
            behind = Fanout.behind(member)
            if not behind:
                member.cursor = {}
                member.transition(MemberState.LIVE)
                return
            lone_gaps: list[Gap] = []
            chunk: list[Message | Gap] = []
            size = 0
            for topic, (epoch, offset) in behind.items():
                gaps, messages, position = await self.backplane.read_since(topic, offset, epoch)
                if member.state is not MemberState.CATCHING_UP:
                    return
                if not messages:
                    lone_gaps.extend(gaps)
                else:
                    chunk.extend(gaps)
                    size += 64 * len(gaps)
                group_position = member.group.cursor.get(topic) if member.group is not None else None
                for message in messages:
                    chunk.append(message)
                    size += message.size
                    if size < chunk_bytes:
                        continue
                    self._send_chunk(member, lone_gaps, chunk)
                    lone_gaps, chunk, size = [], [], 0
                    if sink.buffered_bytes() > limits.max_queue_bytes:
                        member.cursor[topic] = (message.epoch, message.offset)
                        member.transition(MemberState.LAGGING)
                        self.stats.lag_events += 1
                        return
                member.cursor[topic] = position or group_position or (epoch, offset)
            self._send_chunk(member, lone_gaps, chunk)
            if sink.buffered_bytes() > limits.max_queue_bytes:
                member.transition(MemberState.LAGGING)
                self.stats.lag_events += 1
                return

    def _send_chunk(self, member: Member, lone_gaps: list[Gap], chunk: list[Message | Gap]) -> None:
        """Write one catch-up chunk: the lone gaps first, then the rest in order."""
        if not lone_gaps and not chunk:
            return
        gaps = len(lone_gaps) + sum(1 for item in chunk if isinstance(item, Gap))
        self.stats.gaps_sent += gaps
        self.stats.messages_out += len(chunk) + len(lone_gaps) - gaps
        member.sink.send_items([*lone_gaps, *chunk])

    def _send_gaps(self, member: Member, gaps: list[Gap]) -> None:
        """Send ``gaps`` to one member in one call (transports coalesce long runs of them)."""
        self.stats.gaps_sent += len(gaps)
        member.sink.send_items(gaps)

    def topic_reset(self, topic: str) -> None:
        """``topic``'s history was reset: tell its live subscribers now (``epoch_changed``).

        Groups keep the old epoch's position: a cursor issued from it resumes with an
        ``epoch_changed`` gap and the new epoch from its start. Members catching up or
        lagging learn of the reset when their catch-up reads the topic.
        """
        self.flush()
        for group in list(self.fanout.groups.values()):
            position = group.cursor.get(topic)
            if position is None:
                continue
            gap = Gap(topic, position[1] + 1, None, "epoch_changed")
            for member in tuple(group.members):
                if member.state is MemberState.LIVE:
                    self.stats.gaps_sent += 1
                    member.sink.send_items([gap])

"""Subscribing an :class:`~rtnb.client.AsyncClient`: subscribe, resubscribe when reconnected, retry, unsubscribe."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ..core.errors import (
    BadArgument,
    ConnectionClosed,
    RtnbError,
    Timeout,
)
from ..core.protocol import parse_since
from ..core.topics import Pattern, validate_pattern
from ._requests import _ConnectionLost
from ._resume import ResumeTracker
from ._routing import PatternRouting, _PatternState
from ._state import ClientState
from ._subscription import ItemCallback, Subscription

__all__ = ["Subscribing"]

log = logging.getLogger("rtnb.client")


class Subscribing(PatternRouting):
    """Subscriptions sent to the hub, again on every connection, from where the client stands."""

    async def _resubscribe(self, connection: Any) -> None:
        """Send every pattern not yet subscribed on ``connection`` and await the replies.

        Loops until none is left, so a ``subscribe`` made meanwhile is not missed;
        the state then turns CONNECTED without yielding to the loop in between.
        """
        while True:
            waiting = [
                state for state in self._patterns.values() if state.sent_on is not connection and not state.refused
            ]
            if not waiting:
                return
            replies = []
            for state in waiting:
                replies.append((state, await self._send_subscribe(connection, state)))
                listening = {sub for subs in self._listeners.values() for sub in subs}
                for subscription in list(state.subscriptions):
                    if subscription._replay_request is not None and subscription not in listening:
                        replies.append((state, await self._send_replay(connection, state, subscription)))
            for state, reply in replies:
                try:
                    await reply
                except _ConnectionLost:
                    raise
                except Timeout:
                    raise _ConnectionLost("The hub did not answer a subscribe request in time.") from None
                except RtnbError as error:
                    if error.code == "unavailable":
                        self._refused(connection, state, error)
                        continue
                    if error.code == "cursor_expired":
                        # The hub no longer holds the checkpoint: ask again with the full map.
                        log.info("the hub no longer holds this client's checkpoint; resuming with the full map")
                        self._tracker.drop_checkpoint()
                        state.sent_on = None
                        continue
                    log.error("the hub refused the subscription %r: %s", state.compiled.text, error.message)
                    self._drop_pattern(state, error)
                else:
                    state.retrying = False

    def _refused(self, connection: Any, state: _PatternState, error: RtnbError) -> None:
        """The hub cannot take the subscription now (e.g. Redis is down): keep it and retry.

        The application hears of it through ``on_error`` and each subscription's
        ``active`` flag; once the hub takes it again, it resumes from the client's
        positions, so nothing is lost (or the hub says what is, with gaps).
        """
        state.sent_on = None
        state.refused, state.retrying = True, False
        for subscription in state.subscriptions:
            subscription.active = False
        log.warning("the hub cannot take the subscription %r now (%s); retrying", state.compiled.text, error.message)
        self._report(error)
        if self._refusal_retry is None or self._refusal_retry.done():
            self._refusal_retry = asyncio.ensure_future(self._retry_refused(connection))

    async def _retry_refused(self, connection: Any) -> None:
        """Send refused subscriptions again, with the reconnection backoff, while ``connection`` lasts."""
        attempt = 0
        policy = self._backoff.policy
        while self._connection is connection and any(state.refused for state in self._patterns.values()):
            attempt += 1
            await self._sleep(policy.delay(attempt, self._backoff.random))
            if self._connection is not connection:
                return
            for state in self._patterns.values():
                if state.refused:
                    state.refused, state.retrying = False, True
            try:
                await self._resubscribe(connection)
            except (_ConnectionLost, ConnectionClosed):
                return
        for state in self._patterns.values():
            if state.sent_on is connection:
                for subscription in state.subscriptions:
                    subscription.active = True

    async def _send_subscribe(self, connection: Any, state: _PatternState) -> asyncio.Future[dict[str, Any]]:
        frame: dict[str, Any] = {"op": "subscribe", "topic": state.compiled.text}
        first = not state.established
        if state.established:
            frame.update(self._tracker.resume_for(state.compiled))
        elif state.last is not None:
            frame["last"] = state.last
        elif state.since is not None:
            frame["since"] = state.since
        state.sent_on = connection
        state.established = True
        # The first request carries the creating subscription's last/since: it is that one's replay.
        spec = {key: frame[key] for key in ("last", "since") if key in frame}
        listeners = [sub for sub in state.subscriptions if first and sub._replay_request == spec]
        return await self._start_request(connection, frame, listeners[:1])

    async def _send_replay(
        self, connection: Any, state: _PatternState, subscription: Subscription
    ) -> asyncio.Future[dict[str, Any]]:
        """Ask the hub to replay what ``subscription`` asked for (``last``/``since``) on this connection."""
        assert subscription._replay_request is not None
        frame: dict[str, Any] = {"op": "subscribe", "topic": state.compiled.text, **subscription._replay_request}
        return await self._start_request(connection, frame, [subscription])

    # -- subscribing ---------------------------------------------------------------------

    async def subscribe(
        self,
        pattern: str,
        last: int | None = None,
        since: Mapping[str, Any] | None = None,
        callback: ItemCallback | None = None,
    ) -> Subscription:
        """Subscribe to ``pattern`` (``+`` one level, ``#`` the rest).

        Args:
            pattern: e.g. ``"plant/+/temp"``.
            last: first replay the last ``last`` messages of each matching topic.
            since: resume from ``{TOPIC: OFFSET}`` or ``{TOPIC: {"offset": N, "epoch": E}}``
                (the last offsets already seen).
            callback: called with each item (it may be a coroutine function);
                without one, iterate the returned subscription.

        ``last``/``since`` apply when a pattern is first subscribed on this client;
        a second subscription to the same pattern receives from then on.

        Returns:
            The subscription. While offline it is registered and goes out on reconnection.

        Raises:
            InvalidPattern / BadArgument: bad input.
            ConnectionClosed: the client is closed.
            RtnbError: the hub refused the subscription.
        """
        text = validate_pattern(pattern)
        if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 0):
            raise BadArgument("last must be a non-negative integer.")
        if last is not None and since is not None:
            raise BadArgument("Give either last or since, not both.")
        wire_since: dict[str, Any] | None = None
        if since is not None:
            cursor = parse_since(dict(since))
            wire_since = {}
            for topic, (epoch, offset) in cursor.items():
                wire_since[topic] = {"offset": offset} if epoch is None else {"offset": offset, "epoch": epoch}
                self._tracker.seed(topic, epoch, offset)
        if self._state in (ClientState.CLOSING, ClientState.CLOSED):
            raise ConnectionClosed("This client is closed.")
        compiled = Pattern.parse(text)
        subscription = Subscription(self, compiled, callback=callback, max_queue=self.max_queue)
        replay = (last is not None or wire_since is not None) and bool(self._patterns)
        if replay:
            # Other subscriptions may already have had what this one asks to replay:
            # it gets its own bookkeeping and hears nothing until the hub answers its
            # request, after which the hub sends the replay, then live messages.
            subscription._own_tracker = ResumeTracker()
            subscription._replay_request = {"last": last} if last is not None else {"since": wire_since}
        self._routes.clear()
        state = self._patterns.get(text)
        if state is not None:
            state.subscriptions.append(subscription)
            if not replay:
                return subscription
            connection = self._connection
            if self._state is ClientState.CONNECTED and connection is not None:
                try:
                    await (await self._send_replay(connection, state, subscription))
                except _ConnectionLost:
                    pass  # sent again after reconnection
            return subscription
        state = _PatternState(compiled, [subscription], last, wire_since)
        self._patterns[text] = state
        connection = self._connection
        if self._state is ClientState.CONNECTED and connection is not None:
            try:
                reply = await self._send_subscribe(connection, state)
                await reply
            except _ConnectionLost:
                pass  # resubscribed with the rest after reconnection
            except RtnbError as error:
                self._drop_pattern(state, error)
                raise
        return subscription

    async def authenticate(self, token: str) -> dict[str, Any]:
        """Switch to a new token: refresh it on the live connection, and use it for reconnections.

        A hub with ``--auth jwt`` closes a connection (4004) when its token
        expires; calling this with a fresh token before then keeps it open.

        Returns:
            The hub's ``authenticated`` reply (``{}`` when not connected right now).

        Raises:
            Unauthorized: the hub refused the token (the connection keeps the old one).
        """
        self.token = token
        self.headers["Authorization"] = f"Bearer {token}"
        connection = self._connection
        if connection is None:
            return {}
        return await (await self._start_request(connection, {"op": "auth", "token": token}))

    async def unsubscribe(self, pattern: str) -> bool:
        """End every subscription to ``pattern`` and tell the hub.

        Returns:
            False if this client held no such subscription.
        """
        state = self._patterns.get(pattern)
        if state is None:
            return False
        await self._drop_and_unsubscribe(state)
        return True

    async def _discard(self, subscription: Subscription) -> None:
        state = self._patterns.get(subscription.pattern)
        if state is None or subscription not in state.subscriptions:
            subscription._end()
            return
        if len(state.subscriptions) > 1:
            state.subscriptions.remove(subscription)
            self._routes.clear()
            subscription._end()
            return
        await self._drop_and_unsubscribe(state)

    async def _drop_and_unsubscribe(self, state: _PatternState) -> None:
        was_sent = state.sent_on is not None and state.sent_on is self._connection
        self._drop_pattern(state, None)
        connection = self._connection
        if was_sent and connection is not None and self._state is ClientState.CONNECTED:
            try:
                await (await self._start_request(connection, {"op": "unsubscribe", "topic": state.compiled.text}))
            except _ConnectionLost:
                pass  # the next connection will not subscribe it

"""Where a recorder's messages come from: its source turned into subscriptions, and closed again.

A :class:`~rtnb.record.Recorder` records from a hub URL, from an object with a
``url`` (a :class:`~rtnb.server.runner.HubServer`, an embedded hub), or from a
client the caller already holds, sync or async. :class:`Feed` hides that
choice: it opens one subscription per pattern, delivering to the recorder's
``add``, and on close it unsubscribes and closes the client only when it made
that client itself. The recorder keeps the columns; this module keeps the
connection.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from ..core.errors import BadArgumentType, RtnbError
from ..core.history import Gap
from ..core.message import Message

__all__ = ["Feed"]


def source_url(source: Any) -> str | None:
    """The hub URL ``source`` stands for (a URL, a path-like, a server), or ``None`` for a client."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    url = getattr(source, "url", None)
    if isinstance(url, str) and not hasattr(source, "subscribe"):
        return url  # a HubServer, an EmbeddedHub...
    return None


class Feed:
    """The subscriptions of one recorder on its source.

    Args:
        source: a hub URL, an object with a ``url``, or a sync or async client.
        patterns: one subscription each.
        callback: receives every delivered message and gap.
        last / since: the history to ask for first (see :class:`~rtnb.record.Recorder`).
        token: access token, used when the feed connects a client itself.
    """

    def __init__(
        self,
        source: Any,
        patterns: tuple[str, ...],
        callback: Callable[[Message | Gap], None],
        *,
        last: int | None,
        since: dict[str, int] | None,
        token: str | None,
    ) -> None:
        self.source = source
        self.patterns = patterns
        self.callback = callback
        self.last = last
        self.since = since
        self.token = token
        self._client: Any = None
        self._owns_client = False
        self._subscriptions: list[Any] = []

    def _client_options(self) -> dict[str, Any]:
        return {"token": self.token} if self.token else {}

    def open(self) -> None:
        """Subscribe through a sync client (connecting one for a URL); on failure, close what opened.

        Raises:
            BadArgumentType (a TypeError): the source is neither a URL nor a sync client.
            RtnbError: the hub refused or could not be reached.
        """
        try:
            self._client, self._owns_client = self._sync_client()
            for pattern in self.patterns:
                self._subscriptions.append(
                    self._client.subscribe(pattern, callback=self.callback, last=self.last, since=self.since)
                )
        except BaseException:
            self.close()
            raise

    def _sync_client(self) -> tuple[Any, bool]:
        url = source_url(self.source)
        if url is not None:
            from ..client import connect

            return connect(url, **self._client_options()), True
        subscribe = getattr(self.source, "subscribe", None)
        if subscribe is None:
            raise BadArgumentType(f"A recorder records from a URL or a client, not {type(self.source).__name__}.")
        if inspect.iscoroutinefunction(subscribe):
            raise BadArgumentType("This is an AsyncClient: use 'await recorder.astart()' or 'async with recorder'.")
        return self.source, False

    async def aopen(self) -> None:
        """Subscribe through an :class:`~rtnb.client.AsyncClient` (connecting one for a URL).

        Raises:
            RtnbError: the hub refused or could not be reached.
        """
        try:
            url = source_url(self.source)
            if url is not None:
                from ..client import AsyncClient

                self._client, self._owns_client = AsyncClient(url, **self._client_options()), True
                await self._client.connect()
            else:
                self._client, self._owns_client = self.source, False
            for pattern in self.patterns:
                self._subscriptions.append(
                    await self._client.subscribe(pattern, last=self.last, since=self.since, callback=self.callback)
                )
        except BaseException:
            await self.aclose()
            raise

    def close(self) -> None:
        """Unsubscribe, and close the client if the feed made it; safe to call twice."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            try:
                subscription.close()
            except RtnbError:
                pass  # the connection is already gone: nothing left to unsubscribe
        if self._owns_client and self._client is not None:
            self._client.close()
        self._client = None

    async def aclose(self) -> None:
        """The async counterpart of :meth:`close`."""
        subscriptions, self._subscriptions = self._subscriptions, []
        client = self._client
        if client is not None and not self._owns_client:
            for subscription in subscriptions:
                try:
                    await subscription.close()
                except RtnbError:
                    pass  # the connection is already gone: nothing left to unsubscribe
        if self._owns_client and client is not None:
            await client.close()
        self._client = None

"""Python clients of an rtnb hub.

* :class:`AsyncClient`: asyncio, on the ``websockets`` library;
* :func:`connect` / :class:`Client`: the same on a background thread, for
  scripts, threads and notebooks;
* :mod:`rtnb.client.sse`: a listen-only Server-Sent Events client.

All of them resume after a lost connection from the last offset they handed
to the application, drop duplicates, and report every loss as a
:class:`~rtnb.core.history.Gap`. ``docs/guarantees.md`` states the guarantees.
Logging goes to the ``rtnb.client`` logger; every frame is logged on
``rtnb.client.frames`` at DEBUG level.
"""

from __future__ import annotations

from ._async import AsyncClient, Overflow, StateCallback
from ._backoff import Backoff, BackoffPolicy
from ._resume import ResumeTracker
from ._state import ClientState
from ._subscription import Item, ItemCallback, Subscription
from ._sync import Client, SyncSubscription, connect

__all__ = [
    "AsyncClient",
    "Backoff",
    "BackoffPolicy",
    "Client",
    "ClientState",
    "Item",
    "ItemCallback",
    "Overflow",
    "ResumeTracker",
    "StateCallback",
    "Subscription",
    "SyncSubscription",
    "connect",
]

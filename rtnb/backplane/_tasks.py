"""Ending background tasks for certain, even when a cancellation is swallowed.

On Python 3.10 and 3.11, ``asyncio.wait_for`` returns the inner result instead
of raising ``CancelledError`` when the cancel arrives in the same loop turn as
that result (CPython gh-86296, fixed in 3.12 by a rewrite of ``wait_for``).
redis-py reads every reply through such a timeout, so a ``while True`` loop
around a Redis call that is cancelled just as its reply comes in carries on, and
then waits for its next item forever: a single ``cancel()`` followed by
``gather`` hangs the hub's shutdown. Cancelling again until each task is done
ends it whatever it was awaiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], interval: float = 0.5) -> None:
    """Cancel ``tasks`` and return once every one has ended (their outcomes are retrieved).

    Args:
        tasks: tasks or futures to end.
        interval: seconds between repeated cancels of a task that is still running;
            long enough for a task's own cleanup (closing a connection) to finish
            before it is cancelled again.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=interval)
    await asyncio.gather(*tasks, return_exceptions=True)

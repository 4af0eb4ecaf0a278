"""What the client tests share besides fixtures: fast reconnects and a hub on its own thread.

Named ``client_helpers`` (not imported from ``conftest``): every test directory has a
``conftest`` module, and which one ``from conftest import`` finds depends on the order
pytest collected the directories in.
"""

from __future__ import annotations

from rtnb.client._loop_thread import LoopThread
from rtnb.core.history import HistoryLimits
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer

#: reconnect fast in tests; the policy itself is tested with a fake clock
FAST_BACKOFF = {"initial": 0.01, "cap": 0.05}


class ThreadedHub:
    """A HubServer running on its own thread and event loop (like a kernel's embedded hub)."""

    def __init__(self) -> None:
        self.loop_thread = LoopThread("test-hub")
        self.loop = self.loop_thread.loop
        self.server = HubServer(Hub(HubConfig(history=HistoryLimits(max_messages=10_000))))

    def start(self) -> ThreadedHub:
        self.loop_thread.start().run(self.server.start(), timeout=10)
        return self

    def stop(self) -> None:
        self.loop_thread.run(self.server.stop(), timeout=10)
        self.loop_thread.stop(10)
        assert self.loop_thread.finished

    @property
    def url(self) -> str:
        return self.server.url

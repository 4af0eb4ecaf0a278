"""A recording comm: count and size the messages widgets would send to the browser.

Use it to test your own dashboards without a browser::

    with recording_comms() as recorder:
        chart = rtnb.LiveChart("plant/+/temp")
        ...
    print(recorder.count("comm_msg"), recorder.bytes())

Every widget created inside the block gets a :class:`RecordingComm` instead
of the kernel's; each message it would publish is kept with its JSON size and
binary buffer sizes, which is what Jupyter's IOPub limits are about.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["CommRecorder", "RecordedMessage", "RecordingComm", "recording_comms", "start_flood"]


@dataclass(frozen=True)
class RecordedMessage:
    """One message a widget published: when, what kind, how big."""

    at: float
    comm_id: str
    msg_type: str
    data: Any
    size: int  # JSON bytes of ``data`` plus the bytes of every binary buffer
    thread: str
    buffers: tuple[bytes, ...] = ()  # the binary buffers themselves (relay's typed arrays)

    @property
    def is_state_update(self) -> bool:
        return self.msg_type == "comm_msg" and isinstance(self.data, dict) and self.data.get("method") == "update"


class CommRecorder:
    """Collects :class:`RecordedMessage` from every :class:`RecordingComm`; thread-safe."""

    def __init__(self) -> None:
        self.messages: list[RecordedMessage] = []
        self._lock = threading.Lock()

    def record(self, comm_id: str, msg_type: str, data: Any, buffers: Any) -> None:
        size = len(orjson.dumps(data, default=str, option=orjson.OPT_SERIALIZE_NUMPY))
        kept = tuple(bytes(buffer) for buffer in buffers or ())
        size += sum(len(buffer) for buffer in kept)
        message = RecordedMessage(
            time.monotonic(), comm_id, msg_type, data, size, threading.current_thread().name, kept
        )
        with self._lock:
            self.messages.append(message)

    def since(self, start: float) -> list[RecordedMessage]:
        with self._lock:
            return [message for message in self.messages if message.at >= start]

    def count(self, msg_type: str | None = None, since: float = 0.0) -> int:
        return sum(1 for message in self.since(since) if msg_type is None or message.msg_type == msg_type)

    def state_updates(self, since: float = 0.0) -> list[RecordedMessage]:
        return [message for message in self.since(since) if message.is_state_update]

    def bytes(self, since: float = 0.0) -> int:
        return sum(message.size for message in self.since(since))

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


class RecordingComm:
    """Stands in for a kernel comm; records instead of sending. Built by :func:`recording_comms`."""

    def __new__(cls, recorder: CommRecorder, **kwargs: Any) -> Any:
        from comm.base_comm import BaseComm

        class _Recording(BaseComm):
            def publish_msg(
                self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
            ) -> None:
                recorder.record(self.comm_id, msg_type, data, buffers)

        return _Recording(**kwargs)


@contextlib.contextmanager
def recording_comms() -> Iterator[CommRecorder]:
    """Within the block, widgets created get recording comms; yields the recorder."""
    import comm

    recorder = CommRecorder()
    original = comm.create_comm

    def create(*args: Any, **kwargs: Any) -> Any:
        return RecordingComm(recorder, **kwargs)

    comm.create_comm = create
    try:
        yield recorder
    finally:
        comm.create_comm = original


def start_flood(embedded: Any, topics: list[str], rate: float, seconds: float, *, tick: float = 0.01) -> Any:
    """Publish ``rate`` messages/s spread over ``topics`` for ``seconds``, on the hub's own loop.

    The load comes from inside the hub, so what is measured downstream (client,
    pump, widgets) is not limited by a publisher's socket. Payloads look like
    sensor readings: ``{"value": float, "seq": int}``.

    Returns:
        A ``concurrent.futures.Future`` whose result is the number of messages published.
    """
    import asyncio

    hub = embedded.hub

    async def flood() -> int:
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = int(rate * seconds)
        published = 0
        while published < total:
            due = min(int(rate * (loop.time() - start)), total)
            while published < due:
                topic = topics[published % len(topics)]
                hub.publish_now(topic, {"value": float(published % 1000) / 10.0, "seq": published}, trusted=True)
                published += 1
            await asyncio.sleep(tick)
        return published

    return asyncio.run_coroutine_threadsafe(flood(), embedded.loop)

"""Replay a recording into a hub, with its original spacing scaled by a speed.

A replay runs on its own thread with a sync client: message *i* is published
``(t_i - t_0) / speed`` seconds after the start, in the recording's time order
(stable, so per-topic order is kept). A late publisher never sleeps to catch up,
it publishes at once, so a slow moment does not shift everything after it by
more than the delay itself. ``speed=None`` publishes as fast as the connection
takes them.

Payloads are rebuilt from the raw ``data`` column when the recording kept it,
otherwise from the flattened columns: dotted names become nested dicts, missing
(null) fields are left out, and topics whose payloads were bare values (see
``frame.attrs["rtnb"]["scalar_topics"]``) get their ``value`` back bare.

States: ``NEW`` -> ``RUNNING`` -> ``DONE`` | ``STOPPED`` | ``FAILED``.
"""

from __future__ import annotations

import enum
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import BadArgument, BadArgumentType, RtnbError, Timeout
from ..core.topics import validate_topic
from ._flatten import RESERVED_COLUMNS
from ._layout import FRAME_ATTRIBUTE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Replay", "ReplayState", "TopicMap", "replay"]

#: rename topics: a mapping (unlisted topics keep their name) or a function
#: returning the new topic, or ``None`` to leave that topic's messages out
TopicMap = Mapping[str, str] | Callable[[str], str | None]

#: rows turned into payloads at a time, so a long replay never holds them all
_BLOCK_ROWS = 4096


class ReplayState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if type(value) is float:
        return value != value
    return value is _NA


try:  # pandas' NA singleton, compared by identity in the hot loop
    from pandas import NA as _NA
except ImportError:  # pragma: no cover - pandas is part of the record extra
    _NA = object()


def _load_frame(recording: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(recording, (str, os.PathLike)):
        from . import load

        return load(Path(recording))
    if isinstance(recording, pd.DataFrame):
        return recording
    to_frame = getattr(recording, "to_frame", None)
    if callable(to_frame):
        return to_frame()
    raise BadArgumentType(
        f"replay() takes a recording frame, a Recorder or a file path, not {type(recording).__name__}."
    )


class _Schedule:
    """The recording reduced to what publishing needs: delays, topics, payload blocks."""

    def __init__(self, frame: pd.DataFrame, topic_map: TopicMap | None) -> None:
        import numpy as np
        import pandas as pd

        if not isinstance(frame.index, pd.DatetimeIndex):
            raise BadArgument("A recording frame needs a DatetimeIndex of hub timestamps.")
        if "topic" not in frame.columns:
            raise BadArgument("A recording frame needs a 'topic' column.")
        nanoseconds = frame.index.as_unit("ns").asi8
        order = np.argsort(nanoseconds, kind="stable")
        self.frame = frame.iloc[order] if not np.array_equal(order, np.arange(len(order))) else frame
        stamps = nanoseconds[order]
        self.delays = ((stamps - stamps[0]) / 1e9).tolist() if len(stamps) else []
        self.span = self.delays[-1] if self.delays else 0.0
        self.total = len(self.delays)
        attrs = frame.attrs.get(FRAME_ATTRIBUTE) or {}
        self.scalar_topics = set(attrs.get("scalar_topics", ()))
        self.has_raw = "data" in frame.columns
        self.fields = [
            (name, self._path(name)) for name in frame.columns if name not in ("topic", "offset", "epoch", "data")
        ]
        self.targets = self._map_topics(sorted(set(self.frame["topic"].astype(object).tolist())), topic_map)

    @staticmethod
    def _path(name: str) -> tuple[str, ...]:
        if name.startswith("data.") and name[5:] in RESERVED_COLUMNS:
            return (name[5:],)
        return tuple(str(name).split("."))

    @staticmethod
    def _map_topics(topics: list[str], topic_map: TopicMap | None) -> dict[str, str | None]:
        targets: dict[str, str | None] = {}
        for topic in topics:
            if topic_map is None:
                target: str | None = topic
            elif isinstance(topic_map, Mapping):
                target = topic_map.get(topic, topic)
            elif callable(topic_map):
                target = topic_map(topic)
            else:
                raise BadArgumentType("topic_map must be a mapping or a function of the topic.")
            if target is not None:
                validate_topic(target)
            targets[topic] = target
        return targets

    def blocks(self) -> Iterator[tuple[int, list[str | None], list[Any]]]:
        """``(first row, target topics, payloads)`` block by block."""
        frame = self.frame
        for start in range(0, self.total, _BLOCK_ROWS):
            block = frame.iloc[start : start + _BLOCK_ROWS]
            topics = block["topic"].astype(object).tolist()
            targets = [self.targets[topic] for topic in topics]
            if self.has_raw:
                payloads = block["data"].tolist()
            else:
                payloads = self._rebuild(topics, {name: (path, block[name].tolist()) for name, path in self.fields})
            yield start, targets, payloads

    def _rebuild(self, topics: list[str], columns: dict[str, tuple[tuple[str, ...], list[Any]]]) -> list[Any]:
        scalar_topics = self.scalar_topics
        payloads: list[Any] = []
        for row, topic in enumerate(topics):
            payload: dict[str, Any] = {}
            for path, values in columns.values():
                value = values[row]
                if _is_missing(value):
                    continue
                if len(path) == 1:
                    payload[path[0]] = value
                    continue
                node = payload
                for key in path[:-1]:
                    child = node.get(key)
                    if type(child) is not dict:
                        child = node[key] = {}
                    node = child
                node[path[-1]] = value
            if topic in scalar_topics and payload.keys() <= {"value"}:
                payloads.append(payload.get("value"))
            else:
                payloads.append(payload)
        return payloads


class Replay:
    """A running (or finished) replay; made by :func:`replay`.

    Attributes:
        total: messages in one pass over the recording.
        published: messages published so far, over all passes.
        loops: passes completed.
        state: a :class:`ReplayState`.
        error: what ended a ``FAILED`` replay.
    """

    def __init__(
        self,
        schedule: _Schedule,
        target: Any,
        speed: float | None,
        loop: bool,
        progress: bool,
        token: str | None = None,
    ) -> None:
        self._schedule = schedule
        self._target = target
        self._token = token
        self.speed = speed
        self.loop = loop
        self.show_progress = progress
        self.total = schedule.total
        self.published = 0
        self.skipped = 0
        self.loops = 0
        self.state = ReplayState.NEW
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def progress(self) -> float:
        """Fraction of the recording published, 0.0 to 1.0 (of the current pass when looping)."""
        if not self.total:
            return 1.0
        done = self.published + self.skipped
        if self.loop:
            done -= self.loops * self.total
        return min(1.0, max(0.0, done / self.total))

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def start(self) -> Replay:
        """Start publishing on a background thread; returns the replay.

        Raises:
            RuntimeError: already started.
        """
        if self.state is not ReplayState.NEW:
            raise RuntimeError(f"A replay cannot start when {self.state.value}.")
        self.state = ReplayState.RUNNING
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="rtnb-replay", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> Replay:
        """Block until the replay ends; returns it.

        Raises:
            Timeout: still running after ``timeout`` seconds (a looping replay
                only ends with :meth:`stop`).
            RtnbError: the replay failed (the hub refused a message, the
                connection broke); the original error is re-raised.
        """
        if self.state is ReplayState.NEW:
            raise RuntimeError("The replay was not started; call start() first.")
        if not self._done.wait(timeout):
            raise Timeout(f"The replay is still running after {timeout}s ({self.published} published).")
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error
        return self

    def stop(self, timeout: float | None = 5.0) -> Replay:
        """Stop publishing and wait for the thread to end; returns the replay."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Replay {self.state.value}: {self.published}/{self.total} published, {self.loops} loops>"

    # -- the publishing thread -------------------------------------------------------

    def _open_client(self) -> tuple[Any, bool]:
        target = self._target
        url = target if isinstance(target, str) else None
        if url is None and not hasattr(target, "publish"):
            url = getattr(target, "url", None)
        if isinstance(url, str):
            from ..client import connect

            return connect(url, **({"token": self._token} if self._token else {})), True
        publish = getattr(target, "publish", None)
        if publish is None or inspect.iscoroutinefunction(publish):
            raise BadArgumentType("replay() publishes through a URL or a sync rtnb client (rtnb.connect(url)).")
        return target, False

    def _run(self) -> None:
        bar = None
        client, owned = None, False
        try:
            client, owned = self._open_client()
            if self.show_progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=self.total if not self.loop else None, unit="msg", desc="replay")
            self._publish_all(client, bar)
            self.state = ReplayState.STOPPED if self._stop.is_set() else ReplayState.DONE
        except BaseException as error:  # reported through wait(); the thread must not die silently
            self.error = error
            self.state = ReplayState.FAILED
        finally:
            if bar is not None:
                bar.close()
            if owned and client is not None:
                try:
                    client.close()
                except RtnbError as error:
                    self.error = self.error or error
            self._done.set()

    def _publish_all(self, client: Any, bar: Any) -> None:
        schedule, speed, stop = self._schedule, self.speed, self._stop
        if schedule.total == 0:
            return
        period = schedule.span + (schedule.span / (schedule.total - 1) if schedule.total > 1 else 1.0)
        clock = time.perf_counter
        begin = clock()
        shown = 0
        last_shown = begin
        while not stop.is_set():
            pass_begin = begin + (self.loops * period / speed if speed else 0.0)
            if speed is None:
                pass_begin = clock()
            final_pass = not self.loop
            for start, targets, payloads in schedule.blocks():
                for row, (topic, payload) in enumerate(zip(targets, payloads, strict=True)):
                    if speed is not None:
                        delay = pass_begin + schedule.delays[start + row] / speed - clock()
                        if delay > 0.0002 and stop.wait(delay):
                            return
                    elif stop.is_set():
                        return
                    if topic is None:
                        self.skipped += 1
                        continue
                    is_last = final_pass and start + row == schedule.total - 1
                    # the first message is acknowledged so a refusal (no token, no grant) stops the
                    # replay at once; the last one too: once it is, the hub has taken all before it
                    client.publish(topic, payload, ack=is_last or self.published == 0)
                    self.published += 1
                    if bar is not None and clock() - last_shown > 0.1:
                        bar.update(self.published - shown)
                        shown, last_shown = self.published, clock()
            self.loops += 1
            if not self.loop:
                break
        if bar is not None:
            bar.update(self.published - shown)


def replay(
    recording: Any,
    target: Any,
    speed: float | None = 1.0,
    topic_map: TopicMap | None = None,
    loop: bool = False,
    *,
    progress: bool = False,
    start: bool = True,
    token: str | None = None,
) -> Replay:
    """Publish a recording again, keeping its spacing scaled by ``speed``.

    Args:
        recording: a frame from :meth:`Recorder.to_frame` / :func:`rtnb.load`,
            a :class:`Recorder`, or a ``.parquet`` / ``.csv`` path.
        target: a hub URL, an object with a ``url`` (a HubServer, an embedded
            hub), or a sync client from :func:`rtnb.connect`.
        speed: 10 plays ten times faster; ``None`` as fast as possible.
        topic_map: rename topics (see :data:`TopicMap`).
        loop: start over after the end until :meth:`Replay.stop`.
        progress: show a tqdm progress bar (a widget in notebooks).
        start: start at once (else call :meth:`Replay.start`).
        token: access token for a hub with ``--auth jwt``, used when ``target``
            is a URL (a client from :func:`rtnb.connect` carries its own).

    Returns:
        The :class:`Replay` handle: ``.progress``, ``.published``, ``.wait()``, ``.stop()``.

    Raises:
        BadArgument / BadArgumentType (a ValueError / TypeError): a bad speed, recording or topic map.
        InvalidTopic: the topic map produces an invalid topic.
    """
    if speed is not None and not speed > 0:
        raise BadArgument("speed must be > 0, or None for as fast as possible.")
    schedule = _Schedule(_load_frame(recording), topic_map)
    handle = Replay(schedule, target, speed, loop, progress, token=token)
    return handle.start() if start else handle

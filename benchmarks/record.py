"""Recording benchmark: messages/s from a subscription's items into a pandas frame, and memory.

Three ways to turn N delivered messages (``rtnb.core.message.Message`` objects,
as the client hands them over) into a DataFrame with a UTC DatetimeIndex,
topic, offset, epoch and one column per payload field:

* ``rtnb``: ``Recorder.add`` per message (what the subscription callback does),
  then ``to_frame()``; the buffer is columnar (Arrow chunks).
* ``list_of_dicts``: one flat dict per message in a list, then
  ``pd.DataFrame(list)`` and the index/categorical conversions.
* ``concat_per_message``: ``pd.concat`` of a one-row frame per message, the
  naive way; quadratic, so it runs on fewer messages and its rate is reported
  for that count.

Memory: the recorder's buffer before ``to_frame()`` and the peak while
ingesting and building (Python/NumPy allocations via tracemalloc plus the Arrow
pool's peak), both against the final frame's ``memory_usage(deep=True)``. The
two peaks are added although they need not coincide, so ``peak/frame`` is an
upper bound.

Run::

    python benchmarks/record.py                    # 500,000 sensor messages
    python benchmarks/record.py --messages 200000 --payload mixed
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa

from rtnb.core.message import Message
from rtnb.record import Recorder

TOPICS = ("plant/boiler/temp", "plant/turbine/temp", "plant/pump/temp")


def sensor_messages(count: int, seed: int = 1) -> list[Message]:
    """The demo's payload: ``{"value", "unit", "setpoint", "on"}`` on three topics."""
    generator = random.Random(seed)
    start = time.time()
    offsets = dict.fromkeys(TOPICS, 0)
    messages = []
    for index in range(count):
        topic = TOPICS[index % 3]
        offsets[topic] += 1
        data = {"value": 60 + generator.random() * 30, "unit": "°C", "setpoint": 80.0, "on": index % 7 != 0}
        messages.append(Message(topic, offsets[topic], 1_790_000_000_000, start + index * 1e-4, data))
    return messages


def mixed_messages(count: int, seed: int = 1) -> list[Message]:
    """Nested dicts, missing fields, strings, scalars: the slower flattening path."""
    generator = random.Random(seed)
    start = time.time()
    offsets: dict[str, int] = {}
    messages = []
    for index in range(count):
        kind = index % 4
        if kind == 0:
            topic, data = "plant/boiler/temp", {"value": generator.random(), "meta": {"sensor": "a-1", "ok": True}}
        elif kind == 1:
            topic, data = "plant/boiler/temp", {"value": generator.random()}
        elif kind == 2:
            topic, data = "plant/status", "running"
        else:
            topic, data = "plant/counter", index
        offsets[topic] = offsets.get(topic, 0) + 1
        messages.append(Message(topic, offsets[topic], 1_790_000_000_000, start + index * 1e-4, data))
    return messages


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {"value": data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def finish_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The conversions every approach needs: UTC DatetimeIndex, categorical topic."""
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("ts"), unit="s", utc=True), name="time")
    frame["topic"] = frame["topic"].astype("category")
    return frame


def with_rtnb(messages: list[Message]) -> tuple[pd.DataFrame, int]:
    recorder = Recorder(None).start()
    add = recorder.add
    for message in messages:
        add(message)
    recorder.stop()
    buffered = recorder.memory_bytes
    return recorder.to_frame(), buffered


def with_list_of_dicts(messages: list[Message]) -> tuple[pd.DataFrame, int]:
    rows = [{"ts": m.ts, "topic": m.topic, "offset": m.offset, "epoch": m.epoch, **flatten(m.data)} for m in messages]
    return finish_frame(pd.DataFrame(rows)), 0


def with_concat_per_message(messages: list[Message]) -> tuple[pd.DataFrame, int]:
    frame = pd.DataFrame()
    for m in messages:
        row = pd.DataFrame([{"ts": m.ts, "topic": m.topic, "offset": m.offset, "epoch": m.epoch, **flatten(m.data)}])
        frame = pd.concat([frame, row], ignore_index=True)
    return finish_frame(frame), 0


def measure(
    build: Callable[[list[Message]], tuple[pd.DataFrame, int]], messages: list[Message], repeat: int
) -> dict[str, float]:
    """Best-of-``repeat`` rate (untraced runs), then one traced run for memory.

    Tracing slows Python allocations several times over, so it never runs
    during the timed runs.
    """
    # the traced run first: the Arrow pool's high-water mark cannot be reset, so
    # it must not include earlier runs (measure() runs rtnb first in a fresh process)
    gc.collect()
    pool = pa.default_memory_pool()
    arrow_before = pool.bytes_allocated()
    tracemalloc.start()
    frame, _ = build(messages)
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del frame
    arrow_peak = max(0, (pool.max_memory() or 0) - arrow_before)
    best = float("inf")
    frame_bytes = rows = buffered = 0
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        frame, buffered = build(messages)
        best = min(best, time.perf_counter() - started)
        rows, frame_bytes = len(frame), int(frame.memory_usage(deep=True).sum())
        del frame
    return {
        "rows": rows,
        "seconds": best,
        "rate": len(messages) / best,
        "frame_bytes": frame_bytes,
        "buffer_bytes": buffered,
        "peak_bytes": python_peak + arrow_peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500_000, help="messages for rtnb and list_of_dicts")
    parser.add_argument("--naive-messages", type=int, default=2_000, help="messages for concat_per_message")
    parser.add_argument("--payload", choices=["sensor", "mixed"], default="sensor")
    parser.add_argument("--repeat", type=int, default=3, help="runs per approach; the best is reported")
    args = parser.parse_args()

    make = sensor_messages if args.payload == "sensor" else mixed_messages
    messages = make(args.messages)
    naive = messages[: args.naive_messages]
    results = {
        "rtnb Recorder": measure(with_rtnb, messages, args.repeat),
        "pd.DataFrame(list_of_dicts)": measure(with_list_of_dicts, messages, args.repeat),
        "pd.concat per message": measure(with_concat_per_message, naive, 1),
    }
    ours = results["rtnb Recorder"]
    print(f"payload: {args.payload}; pandas {pd.__version__}, pyarrow {pa.__version__}")
    print(f"{'approach':30} {'messages':>9} {'msg/s':>12} {'vs rtnb':>9} {'peak/frame':>11}")
    for name, result in results.items():
        print(
            f"{name:30} {int(result['rows']):>9,} {result['rate']:>12,.0f} "
            f"{ours['rate'] / result['rate']:>8.1f}x {result['peak_bytes'] / result['frame_bytes']:>10.2f}x"
        )
    print()
    print(f"rtnb is {ours['rate'] / results['pd.DataFrame(list_of_dicts)']['rate']:.2f}x pd.DataFrame(list_of_dicts)")
    print(f"rtnb is {ours['rate'] / results['pd.concat per message']['rate']:.0f}x pd.concat per message")
    print(
        f"rtnb buffer before to_frame: {ours['buffer_bytes'] / 2**20:.1f} MiB"
        f" for a {ours['frame_bytes'] / 2**20:.1f} MiB"
        f" frame ({ours['buffer_bytes'] / ours['frame_bytes']:.2f}x); peak while ingesting and building:"
        f" {ours['peak_bytes'] / ours['frame_bytes']:.2f}x the frame"
    )
    target = "meets" if ours["rate"] >= 200_000 else "MISSES"
    print(f"target 200,000 msg/s into a frame: {target} ({ours['rate']:,.0f} msg/s)")


if __name__ == "__main__":
    main()

"""PublishPipeline without sockets: answers in request order, a loop turn's answers in one write."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import orjson
import pytest

from rtnb.core.errors import BadField, RateLimited, RtnbError, Unavailable
from rtnb.core.message import Message
from rtnb.server._publish_pipeline import MAX_PUBLISHES_IN_FLIGHT, PublishPipeline


class Recorder:
    """The connection side: every write (a list of encoded objects) and every error code counted."""

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []
        self.errors: list[str] = []

    def pipeline(self, fmt: Any = "json") -> PublishPipeline:
        return PublishPipeline(fmt, self.writes.append, self.errors.append)

    def answers(self) -> list[tuple[str, Any]]:
        """Every answer written so far, as (op or error code, id), in write order."""
        decoded = [orjson.loads(part) for write in self.writes for part in write]
        return [(item.get("code", item["op"]), item.get("id")) for item in decoded]


def message(topic: str, offset: int) -> Message:
    return Message(topic=topic, data=offset, offset=offset, epoch=1, ts=0.0)


async def accepted_when(future: asyncio.Future[Message]) -> Message:
    """What hub.publish does on a shared backplane: wait for the backplane's future."""
    return await future


async def refused_at_once(error: RtnbError) -> Message:
    raise error


async def one_loop_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_answers_settled_in_one_loop_turn_go_out_in_one_write_in_request_order() -> None:
    recorder = Recorder()
    pipeline = recorder.pipeline()
    pipeline.acknowledge(1, message("a", 1))
    pipeline.refuse(BadField("no", request_id=2))
    pipeline.acknowledge(None, message("a", 2))  # no id: nothing to answer
    pipeline.acknowledge(3, message("b", 1))
    assert recorder.writes == [] and pipeline.pending
    await one_loop_turn()
    assert len(recorder.writes) == 1
    assert recorder.answers() == [("ack", 1), ("bad_field", 2), ("ack", 3)]
    assert recorder.errors == ["bad_field"]
    assert not pipeline.pending


async def test_answers_wait_for_an_earlier_publish_in_flight_whatever_order_the_backplane_replies_in() -> None:
    recorder = Recorder()
    pipeline = recorder.pipeline()
    loop = asyncio.get_running_loop()
    first: asyncio.Future[Message] = loop.create_future()
    second: asyncio.Future[Message] = loop.create_future()
    assert pipeline.publish("p1", accepted_when(first)) is None
    assert pipeline.publish("p2", accepted_when(second)) is None
    pipeline.refuse(RateLimited("slow down", request_id="r3"))  # refused at once, yet after p1 and p2
    assert pipeline.in_flight == 2
    second.set_result(message("t", 2))
    await one_loop_turn()
    assert recorder.writes == [], "p2's ack waits for p1's"
    first.set_result(message("t", 1))
    await one_loop_turn()
    assert recorder.answers() == [("ack", "p1"), ("ack", "p2"), ("rate_limited", "r3")]
    assert len(recorder.writes) == 1 and pipeline.in_flight == 0 and not pipeline.pending


async def test_a_refused_publish_is_answered_with_its_error_and_id_in_its_turn() -> None:
    recorder = Recorder()
    pipeline = recorder.pipeline()
    loop = asyncio.get_running_loop()
    first: asyncio.Future[Message] = loop.create_future()
    second: asyncio.Future[Message] = loop.create_future()
    pipeline.publish(1, accepted_when(first))
    pipeline.publish(2, accepted_when(second))
    pipeline.publish(3, refused_at_once(Unavailable("Redis is down")))
    pipeline.publish(None, accepted_when(loop.create_future()))  # never settles: blocks what follows
    second.set_exception(Unavailable("Redis is down"))
    first.set_result(message("t", 1))
    await one_loop_turn()
    assert recorder.answers() == [("ack", 1), ("unavailable", 2), ("unavailable", 3)]
    assert recorder.errors == ["unavailable", "unavailable"]
    pipeline.acknowledge(5, message("t", 2))
    await one_loop_turn()
    assert len(recorder.answers()) == 3, "answer 5 waits behind the publish still in flight"
    assert pipeline.pending and pipeline.in_flight == 1


async def test_a_cancelled_backplane_future_is_answered_unavailable() -> None:
    recorder = Recorder()
    pipeline = recorder.pipeline()
    future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    pipeline.publish(7, accepted_when(future))
    future.cancel()
    await one_loop_turn()
    assert recorder.answers() == [("unavailable", 7)]


async def test_reading_pauses_at_max_publishes_in_flight_and_resumes_when_one_settles() -> None:
    recorder = Recorder()
    pipeline = recorder.pipeline()
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Message]] = []
    waits = []
    for n in range(MAX_PUBLISHES_IN_FLIGHT):
        futures.append(loop.create_future())
        waits.append(pipeline.publish(n, accepted_when(futures[-1])))
    assert waits[:-1] == [None] * (MAX_PUBLISHES_IN_FLIGHT - 1)
    resume = waits[-1]
    assert resume is not None and not resume.done()
    futures[5].set_result(message("t", 6))
    await one_loop_turn()
    assert resume.done(), "one publish fewer in flight: read on"
    assert recorder.writes == [], "but publish 5's ack still waits for 0..4"
    for n, future in enumerate(futures):
        if not future.done():
            future.set_result(message("t", n + 1))
    await one_loop_turn()
    assert [answer_id for _, answer_id in recorder.answers()] == list(range(MAX_PUBLISHES_IN_FLIGHT))


async def test_msgpack_answers_are_concatenated_objects() -> None:
    recorder = Recorder()
    pipeline = recorder.pipeline("msgpack")
    pipeline.acknowledge(1, message("a", 1))
    pipeline.refuse(BadField("no", request_id=2))
    await one_loop_turn()
    (write,) = recorder.writes
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(b"".join(write))
    assert [(item["op"], item["id"]) for item in unpacker] == [("ack", 1), ("error", 2)]


@pytest.mark.parametrize("count", [1, 50])
async def test_flush_writes_what_is_ready_at_once(count: int) -> None:
    recorder = Recorder()
    pipeline = recorder.pipeline()
    for n in range(count):
        pipeline.acknowledge(n, message("a", n + 1))
    pipeline.flush()
    assert [answer_id for _, answer_id in recorder.answers()] == list(range(count))
    await one_loop_turn()
    assert len(recorder.writes) == 1, "the scheduled flush finds nothing left to write"

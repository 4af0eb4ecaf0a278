"""The bridge under stress, on private Mosquitto brokers (the shared one is never restarted):
a broker restart mid-stream with recovery, a broker behind a port forwarder, the clients' backoff,
and thousands of messages per second at QoS 1 without loss."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from typing import Any

import pytest
from mqtt_helpers import SHARED_PORT, Forwarder, UnretrievedFutures, free_port, mqtt_client, record

from rtnb.bridge import start_mqtt_bridge
from rtnb.bridge.mqtt import BridgeState, MqttBridge
from rtnb.bridge.options import MqttOptions
from rtnb.client._backoff import BackoffPolicy
from rtnb.core.history import HistoryLimits
from rtnb.core.limits import Limits
from rtnb.server.hub import Hub, HubConfig
from rtnb.testing import wait_until


async def test_broker_restart_mid_stream_recovers_without_losing_acknowledged_messages(
    private_broker_factory: Any, namespace: str
) -> None:
    import aiomqtt

    broker = await private_broker_factory()
    hub = Hub(HubConfig(history=HistoryLimits(max_messages=10_000)))
    await hub.start()
    try:
        status = await record(hub, "$rtnb/bridge/mqtt")
        bridge = await start_mqtt_bridge(
            hub,
            url=broker.url,
            inbound=[f"{namespace}/#"],
            client_id=f"bridge-{namespace}",
            reconnect_initial=0.05,
            reconnect_max=0.2,
        )
        await bridge.wait_connected()
        sink = await record(hub, f"{namespace}/#")
        acknowledged: set[int] = set()
        restart_at, total = 400, 1000

        async def device() -> None:
            """Publishes 0..total-1 at QoS 1, retrying each until the broker acknowledges it."""
            sequence = 0
            while sequence < total:
                try:
                    async with aiomqtt.Client("127.0.0.1", broker.port, timeout=2) as client:
                        while sequence < total:
                            await client.publish(f"{namespace}/meter", b'{"seq": %d}' % sequence, qos=1)
                            acknowledged.add(sequence)
                            sequence += 1
                            if sequence == restart_at:
                                return
                except aiomqtt.MqttError:
                    await asyncio.sleep(0.05)

        await device()
        await broker.stop()  # mid-stream: the bridge still has work in flight
        await wait_until(lambda: bridge.state is not BridgeState.CONNECTED)
        assert hub.health()["status"] == "degraded"
        assert hub.health()["components"]["mqtt"]["ok"] is False
        await broker.start()
        restart_at = -1
        await device()
        await wait_until(lambda: acknowledged <= {m.data["seq"] for m in sink.messages}, timeout=20)
        await wait_until(lambda: bridge.state is BridgeState.CONNECTED)
        assert hub.health()["status"] == "ok"
        assert bridge.connects == 2 and bridge.connect_failures >= 0
        states = [message.data["state"] for message in status.messages]
        changes = [state for index, state in enumerate(states) if index == 0 or states[index - 1] != state]
        # one "disconnected" report per failed attempt while the broker is away
        assert changes[:3] == ["connected", "disconnected", "connected"], states
        assert "lost connection" in status.messages[1].data["last_error"]
        # at least once: duplicates are allowed around the restart, losses are not
        assert {m.data["seq"] for m in sink.messages} == set(range(total))
    finally:
        await hub.stop()


async def test_broker_behind_a_forwarder_is_retried_at_once_and_rejoined_within_the_backoff(
    private_broker_factory: Any, namespace: str
) -> None:
    """A forwarder accepts and closes while the broker is down. The bridge used to believe the
    next attempt connected, wait 10 s for a SUBACK, and log "Future exception was never retrieved"."""
    broker = await private_broker_factory()
    forwarder = await Forwarder(broker.port).start()
    unretrieved = UnretrievedFutures()
    hub = Hub()
    await hub.start()
    try:
        bridge = await start_mqtt_bridge(
            hub,
            url=forwarder.url,
            inbound=[f"{namespace}/#"],
            outbound=[f"{namespace}/+/cmd"],
            reconnect_initial=0.1,
            reconnect_max=0.5,
        )
        await bridge.wait_connected()
        sink = await record(hub, f"{namespace}/#")
        await broker.stop()
        # each attempt fails as soon as the forwarder closes, not after a 10 s timeout
        await wait_until(lambda: bridge.failed_attempts >= 3, timeout=5)
        assert bridge.state is not BridgeState.CONNECTED
        assert "closed before the broker's CONNACK" in str(bridge.last_error)
        await broker.start()
        back = time.monotonic()
        await wait_until(lambda: bridge.state is BridgeState.CONNECTED, timeout=5)
        assert time.monotonic() - back < 2.0  # within one backoff cap (0.5 s) and a connection
        async with mqtt_client(forwarder.url) as device:
            await device.publish(f"{namespace}/boiler/temp", b"21", qos=1)
        await wait_until(lambda: sink.on(f"{namespace}/boiler/temp") == [21])
    finally:
        await hub.stop()
        await forwarder.stop()
    assert unretrieved.collect() == []
    unretrieved.restore()


async def test_a_bridge_the_hub_evicts_while_the_broker_is_away_rejoins_and_resumes_from_history(
    broker_url: str, namespace: str
) -> None:
    """While the bridge cannot reach the broker its outbound queue stays over the hub's limit, so the
    hub closes its subscription (1008). Once the broker is back the bridge rejoins the hub from where
    its queue stood: every command published meanwhile reaches the broker, none is lost."""
    hub = Hub(
        HubConfig(limits=Limits(max_queue_bytes=4096, max_lag_seconds=0.3), history=HistoryLimits(max_messages=10_000))
    )
    await hub.start()
    forwarder = await Forwarder(SHARED_PORT).start()
    try:
        bridge = await start_mqtt_bridge(
            hub, url=forwarder.url, outbound=[f"{namespace}/#"], qos=1, reconnect_initial=0.05, reconnect_max=0.2
        )
        await bridge.wait_connected()
        async with mqtt_client(broker_url) as device:
            await device.subscribe(f"{namespace}/#", qos=1)
            forwarder.pause()
            await wait_until(lambda: bridge.state is not BridgeState.CONNECTED)
            total = 300
            for sequence in range(total):
                await hub.publish(f"{namespace}/valve/cmd", {"seq": sequence})
                await asyncio.sleep(0)  # a loop turn: the hub flushes each message to the queue on its own
            await wait_until(lambda: hub.stats.slow_consumer_closes >= 1)
            forwarder.resume()
            seen: set[int] = set()

            async def receive_all() -> None:
                async for message in device.messages:
                    seen.add(json.loads(message.payload)["seq"])
                    if len(seen) == total:
                        return

            await asyncio.wait_for(receive_all(), 30)
        assert seen == set(range(total))
        await wait_until(lambda: bridge.messages_out >= total)  # counted once the broker acknowledged a window
        assert bridge.state is BridgeState.CONNECTED and hub.stats.slow_consumer_closes == 1
    finally:
        await hub.stop()
        await forwarder.stop()


async def test_retries_follow_the_clients_backoff_with_full_jitter(namespace: str) -> None:
    """Delays are drawn in [0, min(cap, initial * 2**(n-1))], as the Python clients draw theirs."""
    hub = Hub()
    await hub.start()
    try:
        status = await record(hub, "$rtnb/bridge/mqtt")
        bridge = MqttBridge(
            MqttOptions(
                url=f"mqtt://127.0.0.1:{free_port()}",
                inbound=[f"{namespace}/#"],
                reconnect_initial=0.02,
                reconnect_max=0.08,
                status_interval=None,
            )
        )
        await hub.add_component("mqtt", bridge)

        def reports() -> list[dict[str, Any]]:
            return [m.data for m in status.messages if m.data["state"] == "disconnected"]

        await wait_until(lambda: len(reports()) >= 12, timeout=10)
        policy = BackoffPolicy(initial=0.02, cap=0.08)
        assert [report["failed_attempts"] for report in reports()[:12]] == list(range(1, 13))
        delays = [report["retry_in"] for report in reports()[:12]]
        for attempt, delay in enumerate(delays, start=1):
            assert 0 <= delay <= policy.ceiling(attempt) + 0.001, (attempt, delays)
        assert len(set(delays)) > 6  # jittered, not a fixed schedule
        assert min(delays[3:]) < 0.8 * policy.cap  # full jitter: well below the cap, not cap +- 20 %
    finally:
        await hub.stop()


@pytest.fixture
def mosquitto_tools() -> tuple[str, str]:
    publish, subscribe = shutil.which("mosquitto_pub"), shutil.which("mosquitto_sub")
    if publish is None or subscribe is None:
        pytest.skip("mosquitto_pub / mosquitto_sub are not installed (apt-get install mosquitto-clients)")
    return publish, subscribe


async def test_thousands_of_messages_per_second_in_and_out_without_loss_at_qos1(
    private_broker_factory: Any, mosquitto_tools: tuple[str, str], namespace: str
) -> None:
    """Load generators are separate processes (mosquitto_pub/sub), so they do not share our loop."""
    mosquitto_pub, mosquitto_sub = mosquitto_tools
    # A broker configured for lossless QoS 1 bursts: no cap on queued or in-flight messages
    # (Mosquitto's defaults, 1000 queued and 20 in flight, drop bursts for any slow subscriber).
    broker = await private_broker_factory("max_inflight_messages 0\n")
    hub = Hub(HubConfig(history=HistoryLimits(max_messages=100)))
    await hub.start()
    try:
        bridge = await start_mqtt_bridge(
            hub, url=broker.url, inbound=[f"{namespace}/in/#"], outbound=[f"{namespace}/out/#"], qos=1
        )
        await bridge.wait_connected()
        sink = await record(hub, f"{namespace}/in/#")
        topics, per_topic = 4, 2500
        total = topics * per_topic

        started = time.perf_counter()
        publishers = [
            await asyncio.create_subprocess_exec(
                mosquitto_pub,
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-q",
                "1",
                "-t",
                f"{namespace}/in/{index}",
                "-l",
                stdin=asyncio.subprocess.PIPE,
            )
            for index in range(topics)
        ]
        lines = b"".join(b'{"seq": %d}\n' % sequence for sequence in range(per_topic))
        await asyncio.gather(*(publisher.communicate(lines) for publisher in publishers))
        await wait_until(lambda: len(sink.messages) >= total, timeout=60, interval=0.02)
        inbound_rate = total / (time.perf_counter() - started)
        for index in range(topics):
            assert [data["seq"] for data in sink.on(f"{namespace}/in/{index}")] == list(range(per_topic))
        assert bridge.messages_in == total and bridge.health()["inbound_dropped"] == 0

        subscriber = await asyncio.create_subprocess_exec(
            mosquitto_sub,
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "-q",
            "1",
            "-t",
            f"{namespace}/out/#",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert subscriber.stdout is not None
            # wait until the subscriber is in place: warm-up messages until one comes through
            first_line = asyncio.ensure_future(subscriber.stdout.readline())
            while not first_line.done():
                hub.publish_now(f"{namespace}/out/warmup", "warmup")
                await asyncio.wait([first_line], timeout=0.05)
            started = time.perf_counter()
            for sequence in range(total):
                hub.publish_now(f"{namespace}/out/{sequence % topics}", {"seq": sequence})
                if sequence % 500 == 499:
                    await asyncio.sleep(0)  # let the loop flush to the bridge, as a busy hub would
            received: list[int] = []
            while len(received) < total:
                line = await asyncio.wait_for(subscriber.stdout.readline(), 30)
                if line.startswith(b"{"):
                    received.append(int(line.split(b":")[1].strip(b" }\n")))
            outbound_rate = total / (time.perf_counter() - started)
        finally:
            subscriber.kill()
            await subscriber.wait()
        assert sorted(received) == list(range(total))
        print(f"\nMQTT bridge at QoS 1: in {inbound_rate:,.0f} msg/s, out {outbound_rate:,.0f} msg/s ({total} each)")
        assert inbound_rate > 1000 and outbound_rate > 1000
    finally:
        await hub.stop()

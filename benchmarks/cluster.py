"""Scale-out numbers: one hub in memory, 3 hubs on one Redis, 3 hubs on a Redis Cluster, and a peer.

Four setups, each started fresh on loopback with its own private Redis:

* ``memory``: one rtnb hub, in-memory backplane (the ceiling for one process);
* ``redis``: three rtnb hubs (``rtnb serve --redis``) sharing one ``redis-server``;
* ``cluster``: three rtnb hubs on a 3-master Redis Cluster (same ``--redis`` URL form);
* ``socketio``: three python-socketio servers (aiohttp) sharing one Redis through
  ``AsyncRedisManager``, every subscriber in one room: the peer users pick for this job.

For each it prints:

* ``publish/s``: acknowledged publishes per second from one publisher connection
  (``--window`` unacknowledged in flight), with no subscribers attached, so it
  measures the publish path alone;
* ``deliver/s``: messages delivered per second to all subscribers together
  (spread evenly over the hubs, all subscribed to everything), publishing as
  fast as acknowledgements allow;
* ``p50``/``p99``: publish -> delivery latency at a fixed ``--latency-rate``
  (200 messages/s by default), every payload carrying its send time;
* ``cmds/msg``: Redis commands per published message (``INFO commandstats``
  delta over the deliver run, on every Redis node; Lua-internal calls included);
* ``cpu/pub`` and ``cpu/msg``: CPU time the server processes (all of them
  together, Redis not included) spent per acknowledged publish in the
  publish run, and per published message in the deliver run, in
  microseconds. Rates move with whatever else runs on the machine; CPU per
  message moves far less, so it is the column to compare between versions
  on a busy machine (Linux only: read from ``/proc``).

Messages are ~100-byte JSON payloads, round-robin over 8 topics (rtnb) or one
room (socket.io; its deliver run sends a tenth of ``--messages``, as it is far
slower). The publisher runs in its own process; the subscribers' receiving
side runs in this process and on a 2-core machine is part of the measured load. Example::

    python benchmarks/cluster.py                       # all four, 150 subscribers over 3 servers
    python benchmarks/cluster.py --only redis --subscribers 60 --messages 2000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

PAYLOAD = "x" * 60  # with the other fields the payload is ~100 bytes of JSON
TOPICS = [f"bench/{n}" for n in range(8)]
SETUPS = ("memory", "redis", "cluster", "socketio")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free(port: int) -> bool:
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# -- Redis: one server, or a 3-master cluster ----------------------------------------------


class PrivateRedis:
    """A ``redis-server`` (or three, as a cluster) on free ports, gone when stopped."""

    def __init__(self, directory: Path, cluster: bool) -> None:
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server is not installed")
        directory.mkdir(parents=True, exist_ok=True)
        self.ports: list[int] = []
        while len(self.ports) < (3 if cluster else 1):
            port = free_port()  # a cluster node also listens on port + 10000 (its bus)
            if port not in self.ports and (not cluster or (port + 10000 <= 65535 and free(port + 10000))):
                self.ports.append(port)
        self.processes = []
        for port in self.ports:
            options = (
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--cluster-require-full-coverage",
                    "no",
                ]
                if cluster
                else []
            )
            self.processes.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(directory),
                        "--logfile",
                        str(directory / f"redis-{port}.log"),
                        *options,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self.url = f"redis://127.0.0.1:{self.ports[0]}"
        try:
            for port in self.ports:
                wait_port(port)
            if cluster:
                self._create_cluster()
        except BaseException:
            self.stop()
            for log in directory.glob("redis-*.log"):
                print(log.read_text()[-2000:], file=sys.stderr)
            raise

    def _create_cluster(self) -> None:
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
        deadline = time.monotonic() + 30
        while any(
            b"cluster_state:ok"
            not in subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"], capture_output=True).stdout
            for p in self.ports
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark's Redis Cluster did not become ok")
            time.sleep(0.1)

    async def commandstats(self, reset: bool = False) -> dict[str, int]:
        import redis.asyncio

        total: dict[str, int] = {}
        for port in self.ports:
            client = redis.asyncio.Redis(host="127.0.0.1", port=port)
            try:
                if reset:
                    await client.config_resetstat()
                    continue
                for name, value in (await client.info("commandstats")).items():
                    command = name.removeprefix("cmdstat_")
                    total[command] = total.get(command, 0) + int(value["calls"])
            finally:
                await client.aclose()
        return total

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait(timeout=10)


# -- servers under test ----------------------------------------------------------------------


class Servers:
    """The hub (or socket.io server) processes of one setup; ``urls`` are their WebSocket URLs."""

    def __init__(self, setup: str, redis_url: str | None, directory: Path) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        count = 1 if setup == "memory" else 3
        for index in range(count):
            log_path = directory / f"{setup}-{index}.log"
            if setup == "socketio":
                port = free_port()
                command = [sys.executable, __file__, "--serve-socketio", str(port), "--redis", str(redis_url)]
            else:
                redis = (
                    ["--redis", str(redis_url), "--redis-prefix", "bench:", "--hub-id", f"h{index}"]
                    if (redis_url)
                    else []
                )
                command = [
                    sys.executable,
                    "-m",
                    "rtnb",
                    "--log-level",
                    "WARNING",
                    "serve",
                    "--port",
                    "0",
                    "--ping-interval",
                    "0",
                    "--max-queue-bytes",
                    str(64 * 2**20),
                    *redis,
                ]
            with log_path.open("wb") as log:
                self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            if setup == "socketio":
                wait_port(port)
                self.urls.append(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")
                continue
            deadline = time.monotonic() + 30
            while not (found := re.search(r"rtnb hub on (http://\S+)", log_path.read_text())):
                if time.monotonic() > deadline or self.processes[-1].poll() is not None:
                    raise RuntimeError(log_path.read_text())
                time.sleep(0.05)
            self.urls.append(found.group(1).replace("http", "ws", 1) + "/ws")

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds used so far by the processes ``pids`` (None where ``/proc`` is absent)."""
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


def serve_socketio(port: int, redis_url: str) -> None:
    """The peer: a python-socketio server whose rooms span processes through Redis."""
    import socketio
    from aiohttp import web

    manager = socketio.AsyncRedisManager(redis_url)
    server = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, logger=False, engineio_logger=False)

    @server.on("subscribe")
    async def subscribe(sid: str, *args: object) -> None:
        await server.enter_room(sid, "bench")
        await server.emit("subscribed", to=sid)

    @server.on("publish")
    async def publish(sid: str, data: object) -> bool:
        await server.emit("message", data, room="bench")  # through Redis to every server
        return True  # the acknowledgement, once Redis took it

    application = web.Application()
    server.attach(application)
    web.run_app(application, host="127.0.0.1", port=port, print=None, access_log=None)


# -- the wire: rtnb frames or socket.io packets ------------------------------------------------


async def open_connection(url: str, setup: str) -> Any:
    import websockets

    connection = await websockets.connect(url, max_size=2**24, ping_interval=None)
    if setup == "socketio":
        await connection.recv()  # engine.io open
        await connection.send("40")
        while not str(await connection.recv()).startswith("40"):
            pass
    else:
        await connection.recv()  # welcome
    return connection


def publish_frame(setup: str, number: int, sent: float) -> str:
    data = {"n": number, "sent": sent, "pad": PAYLOAD}
    if setup == "socketio":
        return "42" + str(number) + orjson.dumps(["publish", data]).decode()
    return orjson.dumps({"op": "publish", "topic": TOPICS[number % len(TOPICS)], "id": number, "data": data}).decode()


def count_acks(setup: str, frame: str | bytes) -> int:
    text = frame.decode() if isinstance(frame, bytes) else frame
    if setup == "socketio":
        return 1 if text.startswith("43") else 0
    return text.count('"op":"ack"') + text.count('"op":"error"')


def publisher_main(
    url: str, setup: str, messages: int, rate: float | None, window: int, start_at: float, result: Any
) -> None:
    """Separate process: publish ``messages``, up to ``window`` unacknowledged, at ``rate`` if given."""
    result.value = asyncio.run(_publish(url, setup, messages, rate, window, start_at))


async def _publish(url: str, setup: str, messages: int, rate: float | None, window: int, start_at: float) -> float:
    connection = await open_connection(url, setup)
    in_flight = asyncio.Semaphore(window)
    acked = 0
    done = asyncio.Event()

    async def read_acks() -> None:
        nonlocal acked
        async for frame in connection:
            if setup == "socketio" and frame == "2":
                await connection.send("3")  # engine.io ping
            count = count_acks(setup, frame)
            for _ in range(count):
                in_flight.release()
            acked += count
            if acked >= messages:
                done.set()
                return

    reader = asyncio.ensure_future(read_acks())
    while time.time() < start_at:
        await asyncio.sleep(0.005)
    began = time.perf_counter()
    for number in range(messages):
        if rate is not None:
            delay = began + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await in_flight.acquire()
        await connection.send(publish_frame(setup, number, time.time()))
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - began
    reader.cancel()
    await connection.close()
    return messages / elapsed


def _client_frame(text: str) -> bytes:
    """A masked text frame (mask key 0: the payload stays as is)."""
    payload = text.encode()
    if len(payload) < 126:
        return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload
    return bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + b"\0\0\0\0" + payload


class Subscriber(asyncio.Protocol):
    """A bare WebSocket client that counts messages: far cheaper per frame than a full client library,
    so that the receiving side (one process for every subscriber) disturbs the measurement less."""

    def __init__(self, setup: str) -> None:
        self.setup = setup
        self.marker = b'42["message"' if setup == "socketio" else b'"op":"message"'
        self.buffer = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.counting = False
        self.received = 0
        self.target = 0
        self.latencies: list[float] | None = None
        self.finished: asyncio.Future[float] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(_client_frame(text))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            del buffer[: end + 4]
            self.open = True
        while len(buffer) >= 2:
            length, offset = buffer[1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < offset + length:
                return
            opcode = buffer[0] & 0x0F
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            if opcode == 9:  # ping
                assert self.transport is not None
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode in (1, 2):
                self.frame(payload)

    def frame(self, payload: bytes) -> None:
        if payload == b"2" and self.setup == "socketio":
            self.send("3")  # engine.io ping
            return
        if not self.counting:
            self.frames.put_nowait(payload)
            return
        arrived = payload.count(self.marker)
        if not arrived:
            return
        self.received += arrived
        if self.latencies is not None:
            now = time.time()
            self.latencies.extend(now - float(sent) for sent in re.findall(rb'"sent":([0-9.e+-]+)', payload))
        if self.received >= self.target and self.finished is not None and not self.finished.done():
            self.finished.set_result(time.perf_counter())

    def expect(self, count: int, latencies: list[float] | None) -> asyncio.Future[float]:
        self.received, self.target, self.latencies, self.counting = 0, count, latencies, True
        self.finished = asyncio.get_running_loop().create_future()
        return self.finished

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def subscribe_all(urls: list[str], setup: str, count: int) -> list[Subscriber]:
    loop = asyncio.get_running_loop()
    subscribers = []
    for index in range(count):
        url = urls[index % len(urls)]
        host_port, _, path = url.removeprefix("ws://").partition("/")
        host, _, port = host_port.partition(":")
        _, subscriber = await loop.create_connection(lambda: Subscriber(setup), host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        assert subscriber.transport is not None
        subscriber.transport.write(
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await subscriber.frames.get()  # rtnb's welcome, or engine.io's open packet
        if setup == "socketio":
            subscriber.send("40")
            while not (await subscriber.frames.get()).startswith(b"40"):
                pass
        subscriber.send('42["subscribe"]' if setup == "socketio" else '{"op":"subscribe","topic":"bench/#"}')
        while b"subscribed" not in await subscriber.frames.get():
            pass
        subscribers.append(subscriber)
    return subscribers


async def run_setup(
    setup: str, subscribers: int, messages: int, window: int, latency_rate: float, directory: Path
) -> dict[str, Any]:
    redis = None
    for attempt in range(3 if setup != "memory" else 0):  # a free port may be taken meanwhile: try again
        try:
            redis = PrivateRedis(directory / f"{setup}-{attempt}", cluster=setup == "cluster")
            break
        except RuntimeError as error:
            print(f"starting Redis failed ({error}); again", file=sys.stderr)
    try:
        servers = Servers(setup, redis.url if redis else None, directory)
    except BaseException:
        if redis:
            redis.stop()
        raise
    context = multiprocessing.get_context("spawn")

    async def one_run(
        count: int, rate: float | None, latencies: list[float] | None, connections: list[Any], limit: float = 600
    ) -> tuple[float, float, float]:
        start_at = time.time() + 0.5
        result = context.Value("d", 0.0)
        process = context.Process(
            target=publisher_main, args=(servers.urls[0], setup, count, rate, window, start_at, result)
        )
        process.start()
        receivers = [c.expect(count, latencies) for c in connections]
        while time.time() < start_at:
            await asyncio.sleep(0.005)
        began = time.perf_counter()
        try:
            finished = await asyncio.wait_for(asyncio.gather(*receivers), limit) if receivers else [began]
        except asyncio.TimeoutError:  # saturated: what arrived so far is all there is to measure
            finished = [math.inf]
        await asyncio.get_running_loop().run_in_executor(None, process.join, limit)
        if process.is_alive():
            process.kill()
        return began, max(finished), float(result.value)

    pids = [process.pid for process in servers.processes]

    def cpu_per(count: int, before: float | None) -> float | None:
        after = cpu_seconds(pids)
        return None if before is None or after is None else (after - before) / count * 1e6

    try:
        cpu = cpu_seconds(pids)
        _, _, publish_rate = await one_run(messages * 5, None, None, [])  # the publish path alone
        cpu_per_publish = cpu_per(messages * 5, cpu)
        connections = await subscribe_all(servers.urls, setup, subscribers)
        if redis:
            await redis.commandstats(reset=True)
        if setup == "socketio":
            messages = max(100, messages // 10)  # about 100 times slower per delivery: keep the run short
        cpu = cpu_seconds(pids)
        began, ended, _ = await one_run(messages, None, None, connections)
        cpu_per_message = cpu_per(messages, cpu)
        calls = await redis.commandstats() if redis else {}
        latencies: list[float] = []
        _, latency_end, _ = await one_run(int(latency_rate * 3), latency_rate, latencies, connections, limit=60)
        latencies.sort()
        for connection in connections:
            connection.close()
        ignored = ("info", "config|resetstat", "ping", "time", "client|setname", "cluster|slots", "cluster|info")
        commands = sum(count for name, count in calls.items() if name not in ignored)
        return {
            "setup": setup,
            "servers": len(servers.urls),
            "subscribers": subscribers,
            "publish_per_s": publish_rate,
            "delivered_per_s": messages * subscribers / (ended - began),
            "p50_ms": statistics.median(latencies) * 1000 if latencies else math.inf,
            "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000 if latencies else math.inf,
            "commands_per_message": commands / messages if redis else None,
            "cpu_per_publish_us": cpu_per_publish,
            "cpu_per_message_us": cpu_per_message,
            # not every message arrived within 60 s at the latency rate: the figures are a lower bound
            "saturated": latency_end == math.inf,
        }
    finally:
        servers.stop()
        if redis:
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=SETUPS, help="run only these setups")
    parser.add_argument("--subscribers", type=int, default=150, help="subscribers, spread over the servers")
    parser.add_argument("--messages", type=int, default=2000, help="messages of the deliver run")
    parser.add_argument("--window", type=int, default=1000, help="unacknowledged publishes in flight")
    parser.add_argument("--latency-rate", type=float, default=200.0, help="messages/s for the latency run")
    parser.add_argument("--serve-socketio", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_socketio:
        serve_socketio(args.serve_socketio, args.redis)
        return
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        for setup in args.only or SETUPS:
            rows.append(
                asyncio.run(
                    run_setup(setup, args.subscribers, args.messages, args.window, args.latency_rate, Path(temporary))
                )
            )
            print(f"done: {setup}", file=sys.stderr)
    header = (
        f"{'setup':<9} {'servers':>7} {'subs':>5} {'publish/s':>10} {'deliver/s':>10} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'cmds/msg':>8} {'cpu/pub':>8} {'cpu/msg':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        commands = "-" if row["commands_per_message"] is None else f"{row['commands_per_message']:.2f}"
        cpu_publish, cpu_message = (
            "-" if row[name] is None else f"{row[name]:.0f}" for name in ("cpu_per_publish_us", "cpu_per_message_us")
        )
        mark = "*" if row["saturated"] else " "
        print(
            f"{row['setup']:<9} {row['servers']:>7} {row['subscribers']:>5} {row['publish_per_s']:>10.0f} "
            f"{row['delivered_per_s']:>10.0f} {row['p50_ms']:>7.1f}{mark} {row['p99_ms']:>7.1f}{mark} {commands:>8} "
            f"{cpu_publish:>8} {cpu_message:>8}"
        )
    if any(row["saturated"] for row in rows):
        print(
            "* saturated: not every message was delivered within 60 s at the latency rate; "
            "latencies of those that were (a lower bound)"
        )


if __name__ == "__main__":
    main()

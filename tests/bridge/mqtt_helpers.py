"""Helpers for the MQTT bridge tests (imported by conftest and the test modules)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from rtnb.core.fanout import Batch
from rtnb.core.history import Gap
from rtnb.core.message import Message
from rtnb.core.protocol import Subscribe
from rtnb.core.topics import Pattern
from rtnb.server.hub import Hub

SHARED_HOST, SHARED_PORT = "127.0.0.1", 1883


def broker_reachable(host: str = SHARED_HOST, port: int = SHARED_PORT, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class RecordingSink:
    """A hub subscriber that keeps everything it is sent (implements the hub's Sink)."""

    transport = "test"

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.gaps: list[Gap] = []
        self.leave: Any = None  # set by record(): leaves the hub when the hub closes us

    def send_batch(self, batch: Batch) -> bool:
        self.messages.extend(batch.messages)
        return True

    def send_items(self, items: Sequence[Message | Gap]) -> None:
        for item in items:
            (self.messages if isinstance(item, Message) else self.gaps).append(item)  # type: ignore[arg-type]

    def send_control(self, frame: dict[str, Any]) -> None:
        pass

    def buffered_bytes(self) -> int:
        return 0

    async def drained(self) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        if self.leave is not None:
            self.leave()

    def on(self, topic: str) -> list[Any]:
        return [message.data for message in self.messages if message.topic == topic]


async def record(hub: Hub, pattern: str) -> RecordingSink:
    """Subscribe a :class:`RecordingSink` to ``pattern`` on ``hub``."""
    sink = RecordingSink()
    member = hub.connect(sink)
    sink.leave = lambda: hub.disconnect(member)
    await hub.subscribe(member, Subscribe(Pattern.parse(pattern)))
    return sink


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateBroker:
    """A ``mosquitto`` process of our own on a free port, which tests may stop and restart."""

    def __init__(self, binary: str, directory: Path, extra_config: str = "") -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "max_queued_messages 0\n"
            f"log_dest file {directory}/mosquitto.log\n" + ("user root\n" if os.geteuid() == 0 else "") + extra_config
            # run as root (CI containers), mosquitto would switch to the 'mosquitto' user and lose our files
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> PrivateBroker:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(500):
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.process.stderr.read().decode()!r}")  # type: ignore[union-attr]
            if broker_reachable("127.0.0.1", self.port, 0.1):
                return self
            await asyncio.sleep(0.01)
        raise RuntimeError("mosquitto did not start listening within 5s")

    async def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file) and wait for the exit."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        for _ in range(500):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.01)
        else:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@contextlib.asynccontextmanager
async def mqtt_client(url: str, **options: Any) -> AsyncIterator[Any]:
    """A plain aiomqtt client (a "device") connected to ``url``."""
    import aiomqtt

    from rtnb.bridge.options import parse_broker_url

    address = parse_broker_url(url)
    async with aiomqtt.Client(address.host, address.port, **options) as client:
        yield client


async def next_messages(client: Any, count: int, timeout: float = 5.0) -> list[Any]:
    """The next ``count`` MQTT messages a client receives, or ``TimeoutError``."""
    found: list[Any] = []

    async def collect() -> None:
        async for message in client.messages:
            found.append(message)
            if len(found) >= count:
                return

    await asyncio.wait_for(collect(), timeout)
    return found


class Forwarder:
    """A TCP port forwarder to a broker, like a container runtime's or ``kubectl port-forward``'s.

    It keeps accepting while the broker behind it is down, and then closes each
    connection at once: a client sees its connection accepted and closed before
    any CONNACK, not a refused connection.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port: int | None = None
        #: while set, every forwarded connection is cut and new ones are closed at once
        self.paused = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def pause(self) -> None:
        """The broker goes away for whoever connects through the forwarder (it stays up for the others)."""
        self.paused = True
        for writer in list(self._writers):
            writer.close()

    def resume(self) -> None:
        self.paused = False

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> Forwarder:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.paused:
            writer.close()
            return
        self._writers.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self._writers.discard(writer)
            writer.close()
            return
        self._writers.add(upstream_writer)

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    target.write(data)
                    await target.drain()
            except OSError:
                pass
            finally:
                target.close()

        try:
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        finally:
            self._writers.discard(writer)
            self._writers.discard(upstream_writer)


class UnretrievedFutures:
    """Collects what the loop reports as "Future exception was never retrieved"."""

    def __init__(self) -> None:
        self.reports: list[str] = []
        self._loop = asyncio.get_running_loop()
        self._previous = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._handle)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.reports.append(f"{context.get('message')}: {context.get('exception')!r}")
        loop.default_exception_handler(context)

    def collect(self) -> list[str]:
        """Run the garbage collector (futures report when collected) and return the reports."""
        import gc

        gc.collect()
        return [report for report in self.reports if "never retrieved" in report]

    def restore(self) -> None:
        self._loop.set_exception_handler(self._previous)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (cryptography)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtnb test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths

"""Which Redis node holds which bucket: one Redis, or the masters of a Redis Cluster.

The same ``redis://host:port`` URL names either. :meth:`Topology.discover`
asks the server: ``INFO`` says whether cluster mode is on (and the version, for
sharded pub/sub, Redis >= 7); on a cluster ``CLUSTER SLOTS`` says which master
serves each bucket's hash slot. A single Redis is a topology of one node that
holds every bucket, so the rest of the backplane has one code path.

Each node gets its own redis-py client for commands (scripts, history reads)
and, elsewhere, its own pub/sub listener. Rediscovery asks every node known so
far, not only the one in the URL, so losing that node does not blind a hub.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ._redis_keys import BUCKETS, bucket_tag, key_slot
from ._redis_listener import Endpoint

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["Node", "Topology", "endpoint_of", "redacted", "redis_errors", "split_prefix"]

log = logging.getLogger("rtnb.backplane.redis")


def endpoint_of(url: str) -> Endpoint:
    """The host, port, login and TLS options (``ssl_*`` query parameters) of a ``redis://`` or ``rediss://`` URL."""
    parts = urlsplit(url)
    return Endpoint(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=parts.scheme == "rediss",
        tls_options=tuple((name, value) for name, value in parse_qsl(parts.query) if name.startswith("ssl_")),
    )


def redacted(url: str) -> str:
    """``url`` without its password, for logs and ``/healthz``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def split_prefix(url: str) -> tuple[str, str | None]:
    """Take an rtnb ``prefix=`` query parameter out of a Redis URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for name, value in query if name == "prefix"), None)
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), prefix


def redis_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis is unreachable now" (redis-py's, imported lazily)."""
    import redis.exceptions

    return (redis.exceptions.RedisError, OSError, asyncio.TimeoutError, LookupError)


async def execute_command(client: Any, *arguments: Any) -> Any:
    """``client.execute_command(*arguments)``; redis-py leaves that method unannotated."""
    command: Callable[..., Awaitable[Any]] = client.execute_command
    return await command(*arguments)


def _url_for(url: str, host: str, port: int) -> str:
    """``url`` pointed at another node: same scheme, login and options; database 0 on a cluster."""
    parts = urlsplit(url)
    login = parts.netloc.rpartition("@")[0]
    netloc = f"{login}@{host}:{port}" if login else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, "/0", parts.query, parts.fragment))


@dataclass(eq=False)
class Node:
    """One Redis server the hub talks to, and the buckets it holds."""

    endpoint: Endpoint
    url: str
    client: redis.asyncio.Redis
    buckets: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.endpoint.name


class Topology:
    """The nodes behind one URL and the bucket -> node map.

    Args:
        url: the Redis URL given by the user (any node of a cluster).
        client_options: keyword arguments for every redis-py client.
        sharded_pubsub: use sharded pub/sub where the server has it (Redis >= 7);
            False keeps to classic ``PUBLISH``/``SUBSCRIBE`` everywhere.
    """

    def __init__(self, url: str, client_options: dict[str, Any], sharded_pubsub: bool = True) -> None:
        self.url = url
        self.client_options = client_options
        self.sharded_pubsub = sharded_pubsub
        self.cluster = False
        self.sharded = False
        self.version = ""
        self.nodes: dict[str, Node] = {}
        self._bucket_nodes: list[Node] = []
        self._owners: list[tuple[int, int, Node]] = []

    def node_of(self, bucket: int) -> Node:
        """The node that holds ``bucket``.

        Raises:
            LookupError: nothing discovered yet.
        """
        if not self._bucket_nodes:
            raise LookupError("the Redis topology is not known yet")
        return self._bucket_nodes[bucket]

    def node_for(self, key: str) -> Node:
        """The node that holds ``key`` (for keys outside the buckets, e.g. presence).

        Raises:
            LookupError: nothing discovered yet, or no node serves the key's slot.
        """
        if not self._bucket_nodes:
            raise LookupError("the Redis topology is not known yet")
        if not self.cluster:
            return self._bucket_nodes[0]
        slot = key_slot(key)
        for start, end, node in self._owners:
            if start <= slot <= end:
                return node
        raise LookupError(f"no Redis Cluster node serves hash slot {slot}")

    @property
    def known(self) -> bool:
        return bool(self._bucket_nodes)

    def _node(self, host: str, port: int) -> Node:
        name = f"{host}:{port}"
        node = self.nodes.get(name)
        if node is None:
            import redis.asyncio

            url = self.url if not self.cluster else _url_for(self.url, host, port)
            endpoint = endpoint_of(url)
            client = redis.asyncio.Redis.from_url(url, **self.client_options)
            node = self.nodes[name] = Node(endpoint, url, client)
        return node

    def _seeds(self) -> Iterable[tuple[str, int]]:
        first = endpoint_of(self.url)
        yield first.host, first.port
        for node in list(self.nodes.values()):
            if node.name != first.name:
                yield node.endpoint.host, node.endpoint.port

    async def discover(self) -> None:
        """Learn (again) whether this is a cluster and which node holds each bucket.

        Raises:
            redis.exceptions.RedisError, OSError: no node answered.
        """
        last_error: BaseException | None = None
        for host, port in self._seeds():
            try:
                await self._discover_from(host, port)
                return
            except Exception as error:
                last_error = error
        assert last_error is not None
        raise last_error

    async def _discover_from(self, host: str, port: int) -> None:
        seed = self._node(host, port)
        info = await seed.client.info("server")
        cluster_info = await seed.client.info("cluster")
        self.version = str(info.get("redis_version", ""))
        self.sharded = self.sharded_pubsub and int(self.version.split(".", 1)[0] or 0) >= 7
        cluster = bool(int(cluster_info.get("cluster_enabled", 0)))
        if cluster and not self.cluster:
            # The seed was made for a single Redis (it keeps the URL's database): remake it.
            self.cluster = True
            self.nodes.pop(seed.name, None)
            await seed.client.aclose()
            seed = self._node(host, port)
        if not cluster:
            self.cluster = False
            seed.buckets = set(range(BUCKETS))
            self._bucket_nodes = [seed] * BUCKETS
            self._owners = [(0, 16383, seed)]
            return
        ranges = await execute_command(seed.client, "CLUSTER SLOTS")
        owners: list[tuple[int, int, str, int]] = []
        for entry in ranges:
            start, end, master = int(entry[0]), int(entry[1]), entry[2]
            master_host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            owners.append((start, end, master_host or host, int(master[1])))
        bucket_nodes: list[Node] = []
        for bucket in range(BUCKETS):
            slot = key_slot(bucket_tag(bucket))
            owner = next(((h, p) for start, end, h, p in owners if start <= slot <= end), None)
            if owner is None:
                raise LookupError(f"no Redis Cluster node serves hash slot {slot}")
            bucket_nodes.append(self._node(*owner))
        for node in self.nodes.values():
            node.buckets = set()
        for bucket, node in enumerate(bucket_nodes):
            node.buckets.add(bucket)
        self._owners = [(start, end, self._node(h, p)) for start, end, h, p in owners]
        if self._bucket_nodes and [n.name for n in self._bucket_nodes] != [n.name for n in bucket_nodes]:
            log.warning("Redis Cluster slots moved; buckets now on %s", sorted({n.name for n in bucket_nodes}))
        self._bucket_nodes = bucket_nodes

    def serving(self) -> list[Node]:
        """Nodes that hold at least one bucket."""
        return [node for node in self.nodes.values() if node.buckets]

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.client.aclose()
        self.nodes.clear()
        self._bucket_nodes = []

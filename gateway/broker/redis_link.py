"""The Redis broker's one seam with redis-py: which client a URL asks for, a bounded connection pool, and
a pub/sub reader, for one Redis or a Redis Cluster, so the broker's logic exists once.

URLs:

- ``redis://[user:password@]host:port/db`` and ``rediss://...`` (TLS): one Redis, plain PUBLISH and
  SUBSCRIBE (any Redis version the broker ran on before keeps working);
- ``redis+cluster://[user:password@]host:port[,host:port...]/`` and ``rediss+cluster://...`` (TLS): a
  Redis Cluster (Redis >= 7) through the listed seed nodes (any of them is enough to find the rest);
  sharded SPUBLISH and SSUBSCRIBE, so a channel's messages go only through its slot's shard.

Connections: at most ``max_connections`` commands (a pipeline counts as one) run at once; more wait
their turn, up to ``pool_timeout`` seconds, instead of failing at the pool's limit (redis-py's own
asyncio pools refuse beyond it, and a Cluster node's pool cannot wait at all). On a Cluster the limit
applies per node, as each node has its own pool. The pub/sub reader holds its own connection (one per
node on a Cluster) outside that limit.
"""

import asyncio
import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from gateway.broker.redis_keys import KeyLayout

PLAIN_SCHEMES = ("redis", "rediss")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SCHEMES = PLAIN_SCHEMES + CLUSTER_SCHEMES

Message = dict[str, Any]
"""A pub/sub message as redis-py gives it: ``type`` (``subscribe``, ``message``, ...), ``channel``, ``data``;
sharded types (``ssubscribe``, ``smessage``) are given their plain names, so the broker reads one kind."""


class UrlError(ValueError):
    """A ``PULSE_BROKER_URL`` this module cannot connect with."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a broker URL names."""

    cluster: bool
    seeds: list[tuple[str, int]]
    options: dict[str, Any]
    """Connection options every connection gets (credentials, TLS, timeouts)."""


def parse_url(url: str, *, timeout: float) -> Target:
    """The client a URL asks for; ``UrlError`` saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise UrlError(f"{url!r}: the scheme must be one of {', '.join(s + '://' for s in SCHEMES)}")
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "ssl": parts.scheme.startswith("rediss"),
    }
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if userinfo:
        user, _, password = userinfo.partition(":")
        options["username"] = unquote(user) or None
        options["password"] = unquote(password) or None
    seeds = [_host_port(url, seed) for seed in hosts.split(",")]
    cluster = parts.scheme in CLUSTER_SCHEMES
    if not cluster:
        return Target(False, seeds, options)
    if parts.path.strip("/") not in ("", "0"):
        raise UrlError(f"{url!r}: a Redis Cluster has only database 0; leave the path empty")
    if parts.query:
        raise UrlError(f"{url!r}: options after '?' are not read for a Redis Cluster")
    return Target(True, seeds, options)


def _host_port(url: str, seed: str) -> tuple[str, int]:
    host, _, port = seed.rpartition(":")
    if not host or not port.isdigit():
        raise UrlError(f"{url!r}: {seed!r} is not host:port")
    return host.strip("[]"), int(port)


T = TypeVar("T")


class Gate:
    """At most ``size`` commands at once; the rest wait in line up to ``timeout`` seconds.

    A command that started runs to its end even when its caller is cancelled (a client that left in
    the middle of a subscribe), and holds its place in the gate until then. redis-py's cluster client is
    not safe to cancel mid-command: the connection is closed under the command while another coroutine
    takes it from the pool, which then fails with "'NoneType' object has no attribute 'writelines'" or a
    closed transport (seen in a 300-client subscribe storm, about one run in three). The caller still
    sees its cancellation at once. A command still waiting for its turn is dropped, never run.
    """

    def __init__(self, size: int, timeout: float) -> None:
        self._slots = asyncio.Semaphore(size)
        self._timeout = timeout

    async def run(self, command: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            # A RedisError, so callers treat it as Redis being unavailable (503), not as a crash.
            raise RedisConnectionError(
                f"no Redis connection free within {self._timeout} s (PULSE_REDIS_MAX_CONNECTIONS)"
            ) from None
        try:
            running = asyncio.ensure_future(command())
        except BaseException:
            self._slots.release()
            raise
        running.add_done_callback(lambda _: self._slots.release())
        return await asyncio.shield(running)


class _GatedRedis(Redis):
    def __init__(self, *, gate: Gate, **options: Any) -> None:
        super().__init__(**options)
        self.gate = gate

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await self.gate.run(functools.partial(super().execute_command, *args, **options))


class _GatedRedisCluster(RedisCluster):
    def __init__(self, *, gate: Gate, **options: Any) -> None:
        super().__init__(**options)
        self.gate = gate

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return await self.gate.run(functools.partial(super().execute_command, *args, **kwargs))


@dataclass
class RedisLink:
    """A connected client: commands through ``client``, pipelines through ``pipeline``, pub/sub through
    ``listener``, and the names to use (``layout``)."""

    target: Target
    client: Redis | RedisCluster
    gate: Gate
    layout: KeyLayout = field(init=False)

    def __post_init__(self) -> None:
        self.layout = KeyLayout(cluster=self.target.cluster)

    @property
    def publish_command(self) -> str:
        return "SPUBLISH" if self.target.cluster else "PUBLISH"

    def publish(self, channel: str, message: str) -> Awaitable[int]:
        if isinstance(self.client, RedisCluster):
            return self.client.spublish(channel, message)
        return self.client.publish(channel, message)

    @contextlib.asynccontextmanager
    async def pipeline(self) -> AsyncIterator[Pipeline | ClusterPipeline]:
        """A non-transactional pipeline to fill, then run with ``execute``."""
        async with self.client.pipeline(transaction=False) as pipe:
            yield pipe

    async def execute(self, pipe: Pipeline | ClusterPipeline) -> list[Any]:
        """Run a pipeline filled inside ``pipeline()``, as one command of the gate (on a Cluster, split by
        node)."""
        answers: list[Any] = await self.gate.run(pipe.execute)
        return answers

    def listener(self) -> "Listener":
        if isinstance(self.client, RedisCluster):
            return ShardedListener(self.client, self.target.options)
        return PlainListener(self.client.pubsub())

    async def aclose(self) -> None:
        await self.client.aclose()


def connect(url: str, *, max_connections: int, pool_timeout: float, timeout: float) -> RedisLink:
    """A client for ``url`` (no I/O yet: it connects on first use)."""
    target = parse_url(url, timeout=timeout)
    gate = Gate(max_connections, pool_timeout)
    # One more connection than the gate lets commands use: the pub/sub reader's (one Redis) never has to
    # wait for one, and so a command never meets the pool's own limit.
    pool_size = max_connections + 1
    client: Redis | RedisCluster
    if target.cluster:
        nodes = [ClusterNode(host, port) for host, port in target.seeds]
        client = _GatedRedisCluster(
            # Twice the gate per node: redis-py's cluster node counts a connection it is still closing or
            # reopening in the background as taken, and with the node's pool at the gate's size a storm of
            # commands met its limit ("MaxConnectionsError") although the gate let through no more.
            gate=gate,
            startup_nodes=nodes,
            max_connections=2 * pool_size,
            **target.options,
        )
    else:
        pool = ConnectionPool.from_url(url, max_connections=pool_size, **_url_free(target.options))
        client = _GatedRedis(gate=gate, connection_pool=pool)
        client.auto_close_connection_pool = True  # the pool is the client's own: closed with it
    return RedisLink(target, client, gate)


def _url_free(options: dict[str, Any]) -> dict[str, Any]:
    # from_url reads credentials and TLS from the URL itself; passing them again would conflict.
    return {key: value for key, value in options.items() if key.startswith("socket_")}


class Listener(ABC):
    """A pub/sub reader: channels in, messages out; any failure raises from ``get_message``."""

    @abstractmethod
    async def subscribe(self, *channels: str) -> None: ...

    @abstractmethod
    async def unsubscribe(self, *channels: str) -> None: ...

    @abstractmethod
    async def get_message(self, wait: float) -> Message | None:
        """The next message, or None after ``wait`` seconds without one."""

    @abstractmethod
    async def aclose(self) -> None: ...


class PlainListener(Listener):
    """SUBSCRIBE on one Redis, one connection."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def subscribe(self, *channels: str) -> None:
        await self._pubsub.subscribe(*channels)

    async def unsubscribe(self, *channels: str) -> None:
        await self._pubsub.unsubscribe(*channels)

    async def get_message(self, wait: float) -> Message | None:
        message: Message | None = await self._pubsub.get_message(
            ignore_subscribe_messages=False, timeout=wait
        )
        return message

    async def aclose(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]


SHARDED_TYPES = {"ssubscribe": "subscribe", "sunsubscribe": "unsubscribe", "smessage": "message"}


class ShardedListener(Listener):
    """SSUBSCRIBE on a Cluster: one connection per master that owns a wanted channel's slot, each read
    by its own task into one queue, so a busy shard never waits behind an idle one.

    The slot map is the client's, refreshed before the first subscribe. A shard connection that fails,
    or a SUNSUBSCRIBE nobody asked for (Redis sends one when the slot moved to another master, as in a
    failover), ends the listener with an error: the broker then starts a new one and reads what it
    missed from the streams, rather than trusting a resubscription that may have lost messages.
    """

    def __init__(self, cluster: RedisCluster, options: dict[str, Any]) -> None:
        self._cluster = cluster
        # No retries below the listener: a reconnect there would resubscribe with a gap nobody sees.
        self._options = {**options, "retry": Retry(NoBackoff(), 0)}
        self._shards: dict[str, tuple[Redis, PubSub, asyncio.Task[None]]] = {}
        self._queue: asyncio.Queue[Message | BaseException] = asyncio.Queue()
        self._leaving: dict[str, int] = {}
        """Channels we sent SUNSUBSCRIBE for, with how many confirmations are still due."""
        self._owners: dict[tuple[int, int], tuple[str, int]] | None = None

    async def _owner(self, channel: str) -> tuple[str, int]:
        if self._owners is None:
            # The slot map as the cluster says now, read once per listener: after a failover the
            # client's own map may still name the old master until a command is redirected. Not by
            # reloading the client's map, which closes connections other commands are using.
            # Parsed by redis-py into {(first, last): {"primary": (host, port), ...}} (typed as a list).
            slots: dict[tuple[int, int], dict[str, Any]] = await self._cluster.cluster_slots()  # type: ignore[assignment]
            self._owners = {
                span: (str(node["primary"][0]), int(node["primary"][1])) for span, node in slots.items()
            }
        slot = key_slot(channel.encode())
        for (start, end), owner in self._owners.items():
            if start <= slot <= end:
                return owner
        raise RedisConnectionError(f"no master serves the slot of {channel}")

    async def subscribe(self, *channels: str) -> None:
        for channel in channels:
            host, port = await self._owner(channel)
            name = f"{host}:{port}"
            shard = self._shards.get(name)
            if shard is None:
                client = Redis(host=host, port=port, **self._options)
                pubsub = client.pubsub()
                await pubsub.ssubscribe(channel)
                task = asyncio.create_task(self._read(pubsub), name=f"redis-shard-{name}")
                self._shards[name] = (client, pubsub, task)
            else:
                await shard[1].ssubscribe(channel)

    async def unsubscribe(self, *channels: str) -> None:
        for channel in channels:
            host, port = await self._owner(channel)
            shard = self._shards.get(f"{host}:{port}")
            if shard is not None:
                self._leaving[channel] = self._leaving.get(channel, 0) + 1
                await shard[1].sunsubscribe(channel)

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=None)
                if message is not None:
                    self._queue.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the broker's listener, which reconnects
            self._queue.put_nowait(exc)

    async def get_message(self, wait: float) -> Message | None:
        try:
            # Without yielding while messages are queued: the hub hands out what arrived within one turn
            # of the event loop as one frame per subscriber, and a yield per message would split it.
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            try:
                async with asyncio.timeout(wait):
                    item = await self._queue.get()
            except TimeoutError:
                return None
        if isinstance(item, BaseException):
            raise item
        kind = SHARDED_TYPES.get(item["type"], item["type"])
        if kind == "unsubscribe":
            channel = item["channel"].decode()
            due = self._leaving.get(channel, 0)
            if not due:
                raise RedisConnectionError(f"redis dropped the subscription to {channel} (its slot moved)")
            if due == 1:
                del self._leaving[channel]
            else:
                self._leaving[channel] = due - 1
        return {**item, "type": kind}

    async def aclose(self) -> None:
        for client, pubsub, task in self._shards.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await client.aclose()
        self._shards.clear()

"""Gateway workers: several processes serving one hub's device connections.

With ``mqtt.workers = N`` (N > 1) the hub process keeps the REST API, MQTT over
WebSockets, routing and journal compaction, and starts N gateway worker processes
(``wellguard.apps.gateway.worker``). The workers listen on the same MQTT port
(``SO_REUSEPORT``: the kernel spreads new connections over them), authenticate against
the same store and append to the same ingest journal. One process can hold only as many
connections as it may open files, and one Python process uses one core; workers lift
both limits.

What crosses processes goes over a control channel between the hub process and each
worker (a Unix stream socket in Linux's abstract namespace, frames of 4-byte length +
JSON):

- registry changes, both ways and relayed to every other process: live enforcement,
  desired-property patches, queued C2D, IP filter rules, policies;
- where each identity is connected (``claim``/``release``/``subs``): one connection per
  identity across processes (a new connection elsewhere closes the old one), and the
  API's direct methods find the worker holding the device;
- persistent MQTT sessions as they change, so a device that reconnects to another
  worker keeps its subscriptions;
- direct method calls (``invoke``) and their results;
- each worker's metrics, once a second, summed by the hub process at ``/metrics``.

A worker whose control channel closes (the hub process ended) closes its connections
and exits; the hub process restarts a worker that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from wellguard.core.gateway import SubscriptionKind
from wellguard.core.registry.events import ChangeKind, RegistryChange, RegistryNotifier
from wellguard.errors import InvalidInputError

if TYPE_CHECKING:
    from wellguard.apps.gateway.server import GatewayServer

__all__ = [
    "MAX_FRAME_BYTES",
    "ClusterClient",
    "ClusterHub",
    "decode_change",
    "encode_change",
    "metrics_snapshot",
    "read_frame",
    "summed_metrics",
    "write_frame",
]

_log = logging.getLogger("wellguard.cluster")
_HEADER = struct.Struct(">I")
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
MAX_FRAME_BYTES = 4 * 1024 * 1024
"""Largest control frame (a method payload is at most 128 KiB in IoT Hub)."""
_STATS_SECONDS = 1.0


# -- framing --------------------------------------------------------------------------------


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame, or None at end of stream; ``InvalidInputError`` when malformed."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise InvalidInputError(f"control frame of {size} bytes is over the limit")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    try:
        frame = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"control frame is not JSON: {exc}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("op"), str):
        raise InvalidInputError("control frame has no op")
    return frame


def write_frame(writer: asyncio.StreamWriter, frame: dict[str, Any]) -> None:
    """Queue one frame (the stream buffers; control traffic is small)."""
    body = orjson.dumps(frame)
    writer.write(_HEADER.pack(len(body)) + body)


def encode_change(change: RegistryChange) -> dict[str, Any]:
    """A registry change as a control frame (the twin itself is not carried)."""
    return {
        "op": "change",
        "kind": change.kind.value,
        "device": change.device_id,
        "module": change.module_id,
        "patch": change.patch,
    }


def decode_change(frame: dict[str, Any]) -> RegistryChange:
    """The registry change of a ``change`` frame."""
    patch = frame.get("patch")
    device, module = frame.get("device"), frame.get("module")
    if not (device is None or isinstance(device, str)) or not (
        module is None or isinstance(module, str)
    ):
        raise InvalidInputError("change frame with a malformed identity")
    return RegistryChange(
        ChangeKind(frame["kind"]),
        device_id=device,
        module_id=module,
        patch=patch if isinstance(patch, dict) else None,
    )


def _kinds(values: Iterable[str]) -> frozenset[SubscriptionKind]:
    return frozenset(SubscriptionKind(v) for v in values)


class _Relay:
    """Publishes changes that came from another process without sending them back."""

    def __init__(self, notifier: RegistryNotifier) -> None:
        self.notifier = notifier
        self.origin: int | None = None  # set while a relayed change is being published

    def publish(self, change: RegistryChange, origin: int) -> None:
        self.origin = origin
        try:
            self.notifier.publish(change)
        finally:
            self.origin = None


# -- the hub process's side -----------------------------------------------------------------


class _Worker:
    def __init__(self, index: int, writer: asyncio.StreamWriter) -> None:
        self.index = index
        self.writer = writer
        self.metrics: list[dict[str, Any]] = []

    def send(self, frame: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            write_frame(self.writer, frame)


class ClusterHub:
    """The hub process's end: routes between its own gateway and the workers'."""

    def __init__(self, gateway: GatewayServer, notifier: RegistryNotifier) -> None:
        self.gateway = gateway
        self.address = f"\0wellguard-{os.getpid()}-{os.urandom(6).hex()}"
        self.workers: dict[int, _Worker] = {}
        self.where: dict[str, tuple[int, frozenset[SubscriptionKind]]] = {}
        self._relay = _Relay(notifier)
        self._pending: dict[str, asyncio.Future[tuple[int, Any]]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._joined: dict[int, asyncio.Future[None]] = {}
        self._allowed: set[int] = set()
        notifier.subscribe(self._local_change)

    def allow(self, pid: int) -> None:
        """Accept the channel of process ``pid`` (a worker this process started). An
        abstract socket has no file permissions: any local process could connect, so
        the channel admits only peers whose kernel-reported pid was allowed here."""
        self._allowed.add(pid)

    def disallow(self, pid: int) -> None:
        """Process ``pid`` has ended."""
        self._allowed.discard(pid)

    async def start(self) -> None:
        """Listen for workers."""
        # Bound here: uvloop (libuv) takes a path up to its first NUL, so it cannot name
        # an abstract socket itself.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.address)
        sock.listen(64)
        sock.setblocking(False)
        self._server = await asyncio.start_unix_server(
            self._serve_worker, sock=sock, limit=MAX_FRAME_BYTES + 64
        )

    async def stop(self) -> None:
        """Stop listening and drop the workers' channels."""
        if self._server is not None:
            self._server.close()
        for worker in list(self.workers.values()):
            worker.writer.close()
        for future in self._pending.values():
            if not future.done():
                future.cancel()

    @property
    def argv_address(self) -> str:
        """The channel's address as a worker's command line carries it."""
        return "@" + self.address[1:]

    def expect(self, index: int) -> asyncio.Future[None]:
        """Resolved when worker ``index`` (about to start) is listening."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._joined[index] = future
        return future

    # what the local gateway tells the cluster (GatewayCluster)

    def claimed(self, key: str, kinds: Iterable[SubscriptionKind]) -> None:
        """A connection in this process took ``key``: close it elsewhere."""
        previous = self.where.pop(key, None)
        if previous is not None and previous[0] in self.workers:
            self.workers[previous[0]].send({"op": "kick", "key": key})

    def released(self, key: str) -> None:
        """Nothing to do: this process's own sessions are the gateway's."""

    def subscriptions(self, key: str, kinds: Iterable[SubscriptionKind]) -> None:
        """Nothing to do locally (methods look at the gateway's own table first)."""

    def session(self, key: str, subscriptions: dict[str, int] | None) -> None:
        """A persistent session changed here: every worker keeps the same view."""
        for worker in self.workers.values():
            worker.send({"op": "session", "key": key, "subs": subscriptions})

    def admission(self, ip: str, flap: bool) -> None:
        """A failure or flap from ``ip`` here: every worker counts it."""
        for worker in self.workers.values():
            worker.send({"op": "admission", "ip": ip, "flap": flap})

    def reachable(self, key: str) -> bool:
        """True when a worker holds ``key`` subscribed to methods."""
        place = self.where.get(key)
        return place is not None and SubscriptionKind.METHODS in place[1]

    async def invoke(
        self, key: str, name: str, payload: object, rid: str, response_timeout: float
    ) -> tuple[int, Any]:
        """Run a direct method on the worker that holds ``key``: the device's status and
        payload (``TimeoutError`` when it does not answer in time or went away)."""
        place = self.where.get(key)
        if place is None or place[0] not in self.workers:
            raise TimeoutError
        future: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        frame = {"op": "invoke", "rid": rid, "key": key, "name": name, "payload": payload}
        self.workers[place[0]].send({**frame, "timeout": response_timeout})
        try:
            return await asyncio.wait_for(future, response_timeout)
        finally:
            self._pending.pop(rid, None)

    # aggregated views

    @property
    def remote_connections(self) -> int:
        """Authenticated device connections held by the workers."""
        return len(self.where)

    def collector(self, local: CollectorRegistry) -> Collector:
        """A collector that serves this process's metrics summed with the workers'."""
        return summed_metrics(local, lambda: [w.metrics for w in self.workers.values()])

    # worker channels

    async def _serve_worker(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        worker: _Worker | None = None
        try:
            peer = _peer_pid(writer)
            if peer not in self._allowed:
                _log.warning("refused a control channel from pid %s (not a worker)", peer)
                return
            hello = await read_frame(reader)
            if hello is None or hello["op"] != "hello" or not isinstance(hello.get("worker"), int):
                raise InvalidInputError("worker did not say hello")
            worker = _Worker(hello["worker"], writer)
            old = self.workers.get(worker.index)
            if old is not None:
                old.writer.close()
                self._forget(old.index)
            self.workers[worker.index] = worker
            for key, subscriptions in self.gateway.persistent.snapshot().items():
                worker.send({"op": "session", "key": key, "subs": subscriptions})
            while (frame := await read_frame(reader)) is not None:
                self._on_frame(worker, frame)
        except (InvalidInputError, KeyError, ValueError, TypeError) as exc:
            _log.error("gateway worker channel closed on a bad frame: %s", exc)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if worker is not None and self.workers.get(worker.index) is worker:
                del self.workers[worker.index]
                self._forget(worker.index)
            writer.close()

    def _forget(self, index: int) -> None:
        """A worker went away: its connections are gone with it."""
        lost = [key for key, place in self.where.items() if place[0] == index]
        for key in lost:
            del self.where[key]
            self.gateway.lost_elsewhere(key)

    def _on_frame(self, worker: _Worker, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if op == "ready":
            joined = self._joined.pop(worker.index, None)
            if joined is not None and not joined.done():
                joined.set_result(None)
        elif op == "claim":
            key = str(frame["key"])
            previous = self.where.get(key)
            self.where[key] = (worker.index, _kinds(frame["kinds"]))
            if previous is not None and previous[0] != worker.index:
                other = self.workers.get(previous[0])
                if other is not None:
                    other.send({"op": "kick", "key": key})
            self.gateway.evict(key, "on another gateway worker")
            self._arrived(key)
        elif op == "subs":
            key = str(frame["key"])
            if self.where.get(key, (None,))[0] == worker.index:
                self.where[key] = (worker.index, _kinds(frame["kinds"]))
                self._arrived(key)
        elif op == "release":
            key = str(frame["key"])
            if self.where.get(key, (None,))[0] == worker.index:
                del self.where[key]
        elif op == "session":
            key, subscriptions = str(frame["key"]), frame.get("subs")
            self.gateway.persistent.apply_remote(key, subscriptions)
            for other in self.workers.values():
                if other is not worker:
                    other.send(frame)
        elif op == "admission":
            self.gateway.remote_admission(str(frame["ip"]), bool(frame["flap"]))
            for other in self.workers.values():
                if other is not worker:
                    other.send(frame)
        elif op == "change":
            self._relay.publish(decode_change(frame), worker.index)
        elif op == "result":
            future = self._pending.get(str(frame["rid"]))
            if future is not None and not future.done():
                future.set_result((int(frame["status"]), frame.get("body")))
        elif op == "stats":
            worker.metrics = list(frame["metrics"])
        else:
            raise InvalidInputError(f"unknown control op {op!r}")

    def _arrived(self, key: str) -> None:
        if self.reachable(key):
            self.gateway.methods.arrived(key)

    def _local_change(self, change: RegistryChange) -> None:
        """A change committed in this process (or relayed from a worker): tell the
        other workers. Called from any thread."""
        origin = self._relay.origin
        frame = encode_change(change)
        loop = self.gateway.loop

        def send() -> None:
            for worker in self.workers.values():
                if worker.index != origin:
                    worker.send(frame)

        loop.call_soon_threadsafe(send)


Snapshot = list[dict[str, Any]]
"""A process's metrics as ``metrics_snapshot`` makes them."""


def summed_metrics(local: CollectorRegistry, snapshots: Callable[[], list[Snapshot]]) -> Collector:
    """A collector of ``local``'s metrics plus the ``snapshots`` of other processes,
    summed sample by sample (counters, histograms and the connection gauge add up)."""
    return _SummedMetrics(local, snapshots)


def _peer_pid(writer: asyncio.StreamWriter) -> int | None:
    """The pid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return None
    pid, _uid, _gid = _PEERCRED.unpack(creds)
    return int(pid)


class _SummedMetrics:
    def __init__(self, local: CollectorRegistry, snapshots: Callable[[], list[Snapshot]]) -> None:
        self._local = local
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        remote: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for families in self._snapshots():
            for snapshot in families:
                for name, labels, value in snapshot["samples"]:
                    key = (snapshot["name"], name, tuple(sorted(labels.items())))
                    remote[key] = remote.get(key, 0.0) + float(value)
        for family in self._local.collect():
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                extra = remote.pop(key, 0.0)
                merged.add_sample(sample.name, sample.labels, sample.value + extra)
            for (fam, name, labels), value in list(remote.items()):
                if fam == family.name:  # a label set only the workers have seen
                    merged.add_sample(name, dict(labels), value)
                    del remote[(fam, name, labels)]
            yield merged


def metrics_snapshot(registry: CollectorRegistry) -> Snapshot:
    """A worker's metrics as a control frame payload."""
    return [
        {
            "name": family.name,
            "samples": [
                (s.name, s.labels, s.value)
                for s in family.samples
                if not s.name.endswith("_created")
            ],
        }
        for family in registry.collect()
    ]


# -- a worker's side ------------------------------------------------------------------------


class ClusterClient:
    """A worker's end of the control channel."""

    def __init__(
        self,
        gateway: GatewayServer,
        notifier: RegistryNotifier,
        *,
        index: int,
        address: str,
        metrics: CollectorRegistry,
    ) -> None:
        self.gateway = gateway
        self.index = index
        self._address = address
        self._metrics = metrics
        self._relay = _Relay(notifier)
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        notifier.subscribe(self._local_change)

    async def connect(self) -> None:
        """Open the channel and say hello."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self._address)  # a local socket: connects at once or fails
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._reader, self._writer = await asyncio.open_unix_connection(
            sock=sock, limit=MAX_FRAME_BYTES + 64
        )
        write_frame(self._writer, {"op": "hello", "worker": self.index})

    async def run(self) -> None:
        """Serve the channel until the hub process closes it."""
        assert self._reader is not None
        stats = self.gateway.loop.create_task(self._stats_forever())
        try:
            while (frame := await read_frame(self._reader)) is not None:
                self._on_frame(frame)
        except (InvalidInputError, KeyError, ValueError, TypeError) as exc:
            _log.error("control channel closed on a bad frame: %s", exc)
        except ConnectionError:
            pass
        finally:
            stats.cancel()
            for task in self._tasks:
                task.cancel()

    def close(self) -> None:
        """Close the channel."""
        if self._writer is not None:
            self._writer.close()

    def _send(self, frame: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            write_frame(self._writer, frame)

    def ready(self) -> None:
        """The worker is listening."""
        self._send({"op": "ready"})

    # what the local gateway tells the cluster (GatewayCluster)

    def claimed(self, key: str, kinds: Iterable[SubscriptionKind]) -> None:
        """A connection here took ``key``."""
        self._send({"op": "claim", "key": key, "kinds": sorted(k.value for k in kinds)})

    def released(self, key: str) -> None:
        """The connection of ``key`` here ended."""
        self._send({"op": "release", "key": key})

    def subscriptions(self, key: str, kinds: Iterable[SubscriptionKind]) -> None:
        """What the connection of ``key`` here is subscribed to now."""
        self._send({"op": "subs", "key": key, "kinds": sorted(k.value for k in kinds)})

    def session(self, key: str, subscriptions: dict[str, int] | None) -> None:
        """A persistent session changed here."""
        self._send({"op": "session", "key": key, "subs": subscriptions})

    def admission(self, ip: str, flap: bool) -> None:
        """A failure or flap from ``ip`` here."""
        self._send({"op": "admission", "ip": ip, "flap": flap})

    def reachable(self, key: str) -> bool:
        """Workers do not invoke methods (the API runs in the hub process)."""
        return False

    async def invoke(
        self, key: str, name: str, payload: object, rid: str, response_timeout: float
    ) -> tuple[int, Any]:
        """Workers do not invoke methods."""
        raise TimeoutError

    # frames from the hub process

    def _on_frame(self, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if op == "change":
            self._relay.publish(decode_change(frame), -1)
        elif op == "kick":
            self.gateway.evict(str(frame["key"]), "on another gateway worker")
        elif op == "session":
            self.gateway.persistent.apply_remote(str(frame["key"]), frame.get("subs"))
        elif op == "admission":
            self.gateway.remote_admission(str(frame["ip"]), bool(frame["flap"]))
        elif op == "invoke":
            task = self.gateway.loop.create_task(self._invoke(frame))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            raise InvalidInputError(f"unknown control op {op!r}")

    async def _invoke(self, frame: dict[str, Any]) -> None:
        rid = str(frame["rid"])
        key, name, timeout = str(frame["key"]), str(frame["name"]), float(frame["timeout"])
        payload = frame.get("payload")
        result = await self.gateway.methods.invoke_here(key, name, payload, rid, timeout)
        if result is not None:
            self._send({"op": "result", "rid": rid, "status": result[0], "body": result[1]})

    def _local_change(self, change: RegistryChange) -> None:
        if self._relay.origin is not None:
            return  # it came from the hub process
        frame = encode_change(change)
        self.gateway.loop.call_soon_threadsafe(self._send, frame)

    async def _stats_forever(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self._send(
                    {
                        "op": "stats",
                        "metrics": metrics_snapshot(self._metrics),
                    }
                )
            await asyncio.sleep(_STATS_SECONDS)

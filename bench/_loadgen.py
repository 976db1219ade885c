"""MQTT devices over TLS for the benchmarks, in worker processes, with pre-encoded packets.

Theory of operation: ``Fleet`` splits its devices over ``workers`` spawned processes, each
running one uvloop with the ``ssl`` module's TLS (uvloop's C implementation), so the
generator is not the Python-TLS-bound thing being measured. A worker connects its devices
(at most ``concurrency`` handshakes at a time): TLS, a pre-encoded CONNECT, CONNACK, and
reports. ``run`` then keeps ``window`` QoS 1 PUBLISHes outstanding per device: every read
that brings PUBACKs sends as many new PUBLISHes in one write, each spliced together from
the device's pre-encoded packet and a packet id. PUBACKs must come back in order (MQTT
3.1.1, 4.6), so the send times are a FIFO per device.

``drop`` and ``reconnect`` model a network outage of the whole fleet: every worker resets
all its connections at once (TCP RST, no MQTT DISCONNECT, no TLS close_notify), then, when
told, connects all its devices again exactly as the first time, same concurrency, and
reports as the first time. The processes and devices stay; only the connections are new.
The parent drives a worker over its pipe with ``("run", go, t0, t1)`` → ``RunReport``,
``("drop",)`` → connections dropped, ``("connect",)`` → ``ConnectReport`` and
``("close",)`` → ``None`` (the worker then ends).

Acks are counted, and publish→PUBACK latencies kept, only inside the measuring window
[t0, t1) on ``time.monotonic`` — CLOCK_MONOTONIC is one clock for every process of the
machine, so all workers (and the subscriber) measure the same interval. Each worker also
reports the CPU time it used in the window: that is the generator's cost per message.

``Subscriber`` is one more process holding a single connection subscribed at QoS 0, for
brokers that forward (Mosquitto); it counts forwarded bytes, which are whole PUBLISHes of
one known size because every device id has the same length.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import socket
import ssl
import struct
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from wellguard.core.mqtt import Connect, Publish, Subscribe, encode

__all__ = [
    "ConnectReport",
    "DeviceSpec",
    "Fleet",
    "RunReport",
    "Subscriber",
    "Target",
    "percentile",
    "telemetry_payload",
]

_PACKET_IDS = [i.to_bytes(2, "big") for i in range(65_536)]
_DISCONNECT = b"\xe0\x00"
_DRAIN_SECONDS = 3.0
_LINGER_RESET = struct.pack("ii", 1, 0)  # struct linger {on, 0 s}: close() sends RST


@dataclass(frozen=True)
class Target:
    """Where devices connect and how they trust the server."""

    host: str
    port: int
    cafile: str
    server_hostname: str = "localhost"


@dataclass(frozen=True)
class DeviceSpec:
    """One device: its MQTT identity and the loopback address it connects from."""

    client_id: str
    username: str
    password: bytes
    source: str
    topic: str


@dataclass
class ConnectReport:
    """How connecting went, merged over workers; times are ``time.monotonic``."""

    connected: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    started: float = float("inf")
    finished: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    cpu_seconds: float = 0.0
    """Generator CPU time spent connecting, all workers."""
    since_previous: array[float] = field(default_factory=lambda: array("d"))
    """Per device connected again: seconds from the start of its previous connect to this
    CONNACK (empty on the first connect). A server's record of a device read during the
    previous connect is at most this old when the device is let in again."""

    @property
    def rate(self) -> float:
        """Connections (TLS + CONNECT + CONNACK) completed per second over the burst."""
        span = self.finished - self.started
        return self.connected / span if span > 0 else 0.0

    def merge(self, other: ConnectReport) -> None:
        self.connected += other.connected
        self.failed += other.failed
        self.errors.update(other.errors)
        self.started = min(self.started, other.started)
        self.finished = max(self.finished, other.finished)
        self.latencies.extend(other.latencies)
        self.cpu_seconds += other.cpu_seconds
        self.since_previous.extend(other.since_previous)


@dataclass
class RunReport:
    """What a publishing run measured, merged over workers."""

    acked: int = 0
    """PUBACKs that arrived inside the window."""
    latencies: array[float] = field(default_factory=lambda: array("d"))
    """publish→PUBACK seconds of those PUBACKs."""
    sent: int = 0
    acked_total: int = 0
    cpu_seconds: float = 0.0
    """Generator CPU time (user + system) inside the window, all workers."""
    out_of_order: int = 0
    lost_connections: int = 0

    def merge(self, other: RunReport) -> None:
        self.acked += other.acked
        self.latencies.extend(other.latencies)
        self.sent += other.sent
        self.acked_total += other.acked_total
        self.cpu_seconds += other.cpu_seconds
        self.out_of_order += other.out_of_order
        self.lost_connections += other.lost_connections


def telemetry_payload(size: int = 200) -> bytes:
    """A JSON telemetry body of exactly ``size`` bytes."""
    head = b'{"pressure":512.25,"temperature":61.5,"flow":1234.5,"valve":"open","pad":"'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- in the worker processes ------------------------------------------------------------


class _Window:
    """Counters of one worker, shared by its devices (one thread)."""

    __slots__ = (
        "acked",
        "acked_total",
        "changed",
        "latencies",
        "lost",
        "open",
        "out_of_order",
        "running",
        "sent",
        "t0",
        "t1",
    )

    def __init__(self) -> None:
        self.t0 = self.t1 = float("inf")
        self.running = False
        self.open: set[_Device] = set()
        self.acked = self.acked_total = self.sent = self.out_of_order = self.lost = 0
        self.latencies: array[float] = array("d")
        self.changed = asyncio.Event()  # set by acks after the window and by closes

    async def settle(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()``, checked whenever ``changed`` fires (callers bound it)."""
        while not done():
            self.changed.clear()
            await self.changed.wait()


class _Device(asyncio.Protocol):
    __slots__ = (
        "buffer",
        "connack",
        "connect_packet",
        "head",
        "next_id",
        "sent",
        "stats",
        "tail",
        "transport",
        "window",
    )

    def __init__(
        self, spec: DeviceSpec, payload: bytes, keep_alive: int, window: int, stats: _Window
    ) -> None:
        self.connect_packet = encode(
            Connect(
                spec.client_id,
                keep_alive=keep_alive,
                username=spec.username,
                password=spec.password,
            )
        )
        template = encode(Publish(spec.topic, payload, qos=1, packet_id=0xA5A5))
        at = template.index(b"\xa5\xa5", 4 + len(spec.topic.encode()))
        self.head, self.tail = template[:at], template[at + 2 :]
        self.window = window
        self.stats = stats
        self.buffer = b""
        self.next_id = 1
        self.sent: deque[tuple[int, float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.connect_packet)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(exc or ConnectionResetError("closed before CONNACK"))
        if self in self.stats.open:
            self.stats.open.discard(self)
            if self.stats.running:
                self.stats.lost += 1
            self.stats.changed.set()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        end = len(buf)
        at = 0
        acks = 0
        now = time.monotonic()
        stats = self.stats
        sent = self.sent
        in_window = stats.t0 <= now < stats.t1
        record = stats.latencies.append
        while end - at >= 2:
            size = buf[at + 1]  # every packet a server sends a device here is < 128 bytes
            stop = at + 2 + size
            if stop > end:
                break
            kind = buf[at] >> 4
            if kind == 4:  # PUBACK
                packet_id, started = sent.popleft()
                if (buf[at + 2] << 8 | buf[at + 3]) != packet_id:
                    stats.out_of_order += 1
                if in_window:
                    record(now - started)
                acks += 1
            elif kind == 2 and not self.connack.done():  # CONNACK
                self.connack.set_result(buf[at + 3])
            at = stop
        self.buffer = buf[at:]
        if acks:
            stats.acked_total += acks
            if in_window:
                stats.acked += acks
            if stats.running:
                self.publish(acks, now)
            else:
                stats.changed.set()

    def publish(self, count: int, now: float) -> None:
        head, tail, ids, sent = self.head, self.tail, _PACKET_IDS, self.sent
        packet_id = self.next_id
        parts = []
        for _ in range(count):
            parts.append(head + ids[packet_id] + tail)
            sent.append((packet_id, now))
            packet_id = packet_id + 1 if packet_id < 65_535 else 1
        self.next_id = packet_id
        self.stats.sent += count
        assert self.transport is not None
        self.transport.write(b"".join(parts))


async def _connect_all(
    target: Target,
    specs: Sequence[DeviceSpec],
    payload: bytes,
    keep_alive: int,
    window: int,
    concurrency: int,
    stats: _Window,
    began: array[float],
) -> tuple[ConnectReport, list[_Device]]:
    """Connect ``specs``; ``began[i]`` is when device i's last connect started (NaN: never),
    read for ``since_previous`` and updated."""
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context(cafile=target.cafile)
    gate = asyncio.Semaphore(concurrency)
    report = ConnectReport()
    devices: list[_Device] = []

    async def one(index: int, spec: DeviceSpec) -> None:
        async with gate:
            started = time.monotonic()
            previous, began[index] = began[index], started
            report.started = min(report.started, started)
            try:
                _transport, device = await loop.create_connection(
                    lambda: _Device(spec, payload, keep_alive, window, stats),
                    target.host,
                    target.port,
                    ssl=context,
                    server_hostname=target.server_hostname,
                    local_addr=(spec.source, 0),
                    ssl_handshake_timeout=30,
                )
                code = await asyncio.wait_for(device.connack, 30)
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                report.failed += 1
                report.errors[f"{type(exc).__name__}: {exc}"[:100]] += 1
                return
            if code != 0:
                report.failed += 1
                report.errors[f"CONNACK {code}"] += 1
                device.transport.close()  # type: ignore[union-attr]
                return
            finished = time.monotonic()
            report.connected += 1
            report.finished = max(report.finished, finished)
            report.latencies.append(finished - started)
            if not math.isnan(previous):
                report.since_previous.append(finished - previous)
            devices.append(device)
            stats.open.add(device)

    cpu = time.process_time()
    await asyncio.gather(*(one(index, spec) for index, spec in enumerate(specs)))
    report.cpu_seconds = time.process_time() - cpu
    return report, devices


async def _run(
    devices: list[_Device], stats: _Window, go: float, t0: float, t1: float
) -> RunReport:
    await asyncio.sleep(max(0.0, go - time.monotonic()))
    stats.acked = stats.acked_total = stats.sent = stats.out_of_order = stats.lost = 0
    stats.latencies = array("d")
    stats.t0, stats.t1, stats.running = t0, t1, True
    now = time.monotonic()
    for device in devices:
        device.publish(device.window, now)
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    cpu_start = time.process_time()
    await asyncio.sleep(max(0.0, t1 - time.monotonic()))
    cpu = time.process_time() - cpu_start
    stats.running = False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            await stats.settle(lambda: not any(d.sent for d in stats.open))
    return RunReport(
        acked=stats.acked,
        latencies=stats.latencies,
        sent=stats.sent,
        acked_total=stats.acked_total,
        cpu_seconds=cpu,
        out_of_order=stats.out_of_order,
        lost_connections=stats.lost,
    )


async def _close_all(devices: list[_Device], stats: _Window) -> None:
    for device in devices:
        if device.transport is not None and not device.transport.is_closing():
            device.transport.write(_DISCONNECT)
            device.transport.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5.0):
            await stats.settle(lambda: not stats.open)


async def _drop_all(devices: list[_Device], stats: _Window) -> int:
    """Reset every open connection as a lost network does: no DISCONNECT, no close_notify.
    SO_LINGER 0 makes the close a TCP RST, so the server learns of it at once (a FIN would
    do too, but would leave each socket in TIME_WAIT here). Returns how many were open."""
    dropped = 0
    for device in devices:
        transport = device.transport
        if transport is None or transport.is_closing():
            continue
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()
        dropped += 1
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5.0):
            await stats.settle(lambda: not stats.open)
    return dropped


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def _worker_main(
    pipe: Connection,
    target: Target,
    specs: Sequence[DeviceSpec],
    payload: bytes,
    keep_alive: int,
    window: int,
    concurrency: int,
) -> None:
    loop = _event_loop()
    stats = _Window()
    began = array("d", [math.nan]) * len(specs)
    report, devices = loop.run_until_complete(
        _connect_all(target, specs, payload, keep_alive, window, concurrency, stats, began)
    )
    pipe.send(report)
    while True:
        command, *args = pipe.recv()
        if command == "run":
            pipe.send(loop.run_until_complete(_run(devices, stats, *args)))
        elif command == "drop":
            pipe.send(loop.run_until_complete(_drop_all(devices, stats)))
        elif command == "connect":
            report, devices = loop.run_until_complete(
                _connect_all(target, specs, payload, keep_alive, window, concurrency, stats, began)
            )
            pipe.send(report)
        elif command == "close":
            loop.run_until_complete(_close_all(devices, stats))
            pipe.send(None)
            break
    loop.close()


class _Counting(asyncio.Protocol):
    def __init__(self, connect: bytes, subscribe: bytes) -> None:
        self.connect, self.subscribe = connect, subscribe
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.handshake = b""
        self.t0 = self.t1 = float("inf")
        self.in_window = 0
        self.total = 0
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.connect + self.subscribe)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionResetError("closed before SUBACK"))

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self.handshake += data
            if len(self.handshake) >= 9:  # CONNACK (4 bytes) + SUBACK (5 bytes)
                self.ready.set_result(None)
                data = self.handshake[9:]
            else:
                return
        now = time.monotonic()
        self.total += len(data)
        self.arrived.set()
        if self.t0 <= now < self.t1:
            self.in_window += len(data)


def _subscriber_main(pipe: Connection, target: Target, topic_filter: str) -> None:
    loop = _event_loop()

    async def connect() -> tuple[asyncio.BaseTransport, _Counting]:
        context = ssl.create_default_context(cafile=target.cafile)
        connect = encode(Connect("bench-subscriber", keep_alive=3600))
        subscribe = encode(Subscribe(1, ((topic_filter, 0),)))
        transport, protocol = await loop.create_connection(
            lambda: _Counting(connect, subscribe),
            target.host,
            target.port,
            ssl=context,
            server_hostname=target.server_hostname,
        )
        await asyncio.wait_for(protocol.ready, 30)
        return transport, protocol

    async def run(t0: float, t1: float) -> tuple[int, int]:
        protocol.t0, protocol.t1 = t0, t1
        await asyncio.sleep(max(0.0, t1 - time.monotonic()))
        while True:  # until the stream has been quiet for a second
            protocol.arrived.clear()
            try:
                await asyncio.wait_for(protocol.arrived.wait(), 1.0)
            except TimeoutError:
                break
        return protocol.in_window, protocol.total

    transport, protocol = loop.run_until_complete(connect())
    pipe.send("ready")
    while True:
        command, *args = pipe.recv()
        if command == "run":
            pipe.send(loop.run_until_complete(run(*args)))
        elif command == "close":
            transport.close()
            loop.run_until_complete(asyncio.sleep(0.1))
            pipe.send(None)
            break
    loop.close()


# -- in the bench process -----------------------------------------------------------------


def _spawn(target: Callable[..., None], *args: Any) -> tuple[Any, Connection]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=target, args=(theirs, *args), daemon=True)
    process.start()
    theirs.close()
    return process, ours


class Fleet:
    """Devices connected from worker processes; ``run`` makes them publish, ``drop`` and
    ``reconnect`` take the whole fleet off the network and back."""

    def __init__(
        self,
        target: Target,
        devices: Sequence[DeviceSpec],
        *,
        workers: int = 2,
        window: int = 8,
        payload: bytes = b"",
        keep_alive: int = 3600,
        concurrency: int = 64,
    ) -> None:
        workers = max(1, min(workers, len(devices)))
        self.target = target
        self.devices = devices
        self._processes: list[tuple[Any, Connection]] = []
        for index in range(workers):
            share = list(devices[index::workers])
            self._processes.append(
                _spawn(_worker_main, target, share, payload, keep_alive, window, concurrency)
            )

    def pids(self) -> list[int]:
        """Worker process ids."""
        return [process.pid for process, _ in self._processes]

    def connected(self) -> ConnectReport:
        """Wait until every worker has tried all its devices."""
        report = ConnectReport()
        for _, pipe in self._processes:
            report.merge(pipe.recv())
        return report

    def drop(self) -> int:
        """Reset every device's connection at once (a network outage); how many were open."""
        for _, pipe in self._processes:
            pipe.send(("drop",))
        return sum(int(pipe.recv()) for _, pipe in self._processes)

    def reconnect(self) -> ConnectReport:
        """Connect every device again, all workers at once, as the first time; wait for it."""
        for _, pipe in self._processes:
            pipe.send(("connect",))
        return self.connected()

    def start(self, go: float, t0: float, t1: float) -> None:
        """Publish from ``go``, measure in [t0, t1) (``time.monotonic``), then drain."""
        for _, pipe in self._processes:
            pipe.send(("run", go, t0, t1))

    def result(self) -> RunReport:
        """Wait for the run ``start`` began to finish."""
        report = RunReport()
        for _, pipe in self._processes:
            report.merge(pipe.recv())
        return report

    def close(self) -> None:
        """Disconnect every device and end the workers."""
        for _, pipe in self._processes:
            try:
                pipe.send(("close",))
            except OSError:
                pass
        for process, pipe in self._processes:
            try:
                pipe.recv()
            except (EOFError, OSError):
                pass
            process.join(10)
            if process.is_alive():
                process.kill()
        self._processes.clear()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Subscriber:
    """One QoS 0 subscriber in its own process, counting the bytes a broker forwards."""

    def __init__(self, target: Target, topic_filter: str) -> None:
        self._process, self._pipe = _spawn(_subscriber_main, target, topic_filter)
        if self._pipe.recv() != "ready":
            raise RuntimeError("subscriber did not start")

    def pids(self) -> list[int]:
        """The subscriber's process id."""
        return [self._process.pid]

    def start_window(self, t0: float, t1: float) -> None:
        """Count from t0 to t1; ``result`` waits for the answer."""
        self._pipe.send(("run", t0, t1))

    def result(self) -> tuple[int, int]:
        """(bytes received in the window, bytes received in all)."""
        in_window, total = self._pipe.recv()
        return int(in_window), int(total)

    def close(self) -> None:
        """Disconnect and end the process."""
        self._pipe.send(("close",))
        self._pipe.recv()
        self._process.join(10)

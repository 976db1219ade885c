"""Idle device connections: hub RSS per TLS connection and the TLS connect + auth rate.

Run: ``.venv/bin/python bench/connections.py`` (about 1½ minutes for the default 10,000,
reconnect included; ``--connections`` to change it). It starts a real hub, creates the
devices over REST (in bulk, 100 per call), opens ``--warmup`` connections so that lazily
made things (thread pool, caches) are in the baseline, then connects all devices in one
burst from ``--workers`` processes, ``--concurrency`` handshakes in flight per process,
each device from its own loopback address: TLS 1.3, a CONNECT with a SAS token checked
against the registry, CONNACK, then idle (keep-alive ``--keepalive`` s). It reports the
burst's rate, the per-connect latency, and the hub's RSS before and after, per connection.

Then the fleet goes through an outage (``--reconnect``, the default; ``--no-reconnect``
skips it): every connection is reset at once from the device side (TCP RST, no MQTT
DISCONNECT), as a lost cellular network looks to the hub; once the hub's ``/status`` counts
only the warm-up connections again, all devices connect again in one burst, same
concurrency, measured as the first. The hub holds a device's registry record for 30 s after
reading it (``apps/gateway/authcache.py``), so a reconnect within that window reads no
record: the reconnect line says whether it was within it, from the first burst's end to the
reconnect's start, and per device (its first connect's start to its reconnect's CONNACK).

Each connection is a file descriptor: with ``ulimit -Hn`` at 20,000 (as on the bench
machine; root cannot raise it) one process holds at most ~19,900 connections however
much memory it has. ``--hub-workers N`` runs the hub with ``mqtt.workers = N`` (N gateway
worker processes sharing the MQTT port); memory and CPU are then those of the hub process
and its workers together. The generator spreads its side over enough processes to stay
under the limit.

Peer: Mosquitto, same connections (it does not check the credentials), RSS per connection
and connect rate, and the same reconnect (it has dropped the connections when its open
file descriptors have), when installed (``apt-get install -y mosquitto``; else skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import psutil

from _loadgen import ConnectReport, DeviceSpec, Fleet, Target, percentile
from _peers import MOSQUITTO_HINT, Mosquitto, WellguardHub, mosquitto_binary, tls_libraries

MIB = 1024 * 1024
TARGET_CONNECTIONS = 100_000
TARGET_KIB = 20
FDS_PER_WORKER = 15_000
AUTH_CACHE_SECONDS = 30.0
"""How long the hub holds a device record it read (``authcache.DEFAULT_TTL_SECONDS``)."""
DROP_TIMEOUT = 30.0
"""Seconds to wait for the server to notice the dropped connections."""


class ProcessTree:
    """A server process and its children (gateway workers), measured as one."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def processes(self) -> list[psutil.Process]:
        return [self.root, *self.root.children()]

    def memory_info(self) -> SimpleNamespace:
        return SimpleNamespace(rss=sum(p.memory_info().rss for p in self.processes()))

    def cpu_times(self) -> SimpleNamespace:
        times = [p.cpu_times() for p in self.processes()]
        return SimpleNamespace(user=sum(t.user for t in times), system=sum(t.system for t in times))

    def num_fds(self) -> int:
        return sum(p.num_fds() for p in self.processes())


@dataclass
class Figures:
    """One server's idle-connection results."""

    server: str
    asked: int
    connected: int
    failed: int
    connect_rate: float
    connect_p50_ms: float
    connect_p99_ms: float
    rss_before_mib: float
    rss_after_mib: float
    kib_per_connection: float
    generator_ms: float = float("nan")
    """Generator CPU milliseconds per connect."""
    server_ms: float = float("nan")
    """Server CPU milliseconds per connect (all its threads, burst and settling)."""
    rss_closed_mib: float = float("nan")
    reported: int = -1
    """Connections the server itself counts (wellguard ``GET /status``)."""
    errors: str = ""
    reconnect: Reconnect | None = None
    """The same devices again after an outage (``--reconnect``)."""


@dataclass
class Reconnect:
    """Every device dropped at once, then connected again in one burst."""

    dropped: int
    """Connections reset by the generator."""
    noticed_s: float
    """Seconds from the reset until the server counted them gone (NaN: not in time)."""
    gap_s: float
    """Seconds from the first burst's last CONNACK to the reconnect burst's first attempt."""
    asked: int
    connected: int
    failed: int
    connect_rate: float
    connect_p50_ms: float
    connect_p99_ms: float
    generator_ms: float
    """Generator CPU milliseconds per reconnect."""
    server_ms: float
    """Server CPU milliseconds per reconnect (all its threads, burst and settling)."""
    longest_s: float
    """Longest span from a device's first connect attempt to its reconnect's CONNACK."""
    past_cache: int
    """Devices whose span was over ``AUTH_CACHE_SECONDS`` (their record may have expired)."""
    rss_before_mib: float
    rss_after_mib: float
    reported: int = -1
    errors: str = ""


def connect_burst(
    server: str,
    target: Target,
    specs: list[DeviceSpec],
    rss: ProcessTree,
    args: argparse.Namespace,
) -> tuple[Figures, Fleet, ConnectReport]:
    """Connect every device at once; returns the figures, the (still open) fleet and what
    the generator reported."""
    workers = max(args.workers, math.ceil(len(specs) / FDS_PER_WORKER))
    before = rss.memory_info().rss
    cpu = rss.cpu_times()
    fleet = Fleet(
        target,
        specs,
        workers=workers,
        window=0,
        keep_alive=args.keepalive,
        concurrency=args.concurrency,
    )
    report: ConnectReport = fleet.connected()
    time.sleep(args.settle)  # let the server finish what each connect left behind
    after = rss.memory_info().rss
    spent = rss.cpu_times()
    connected = max(report.connected, 1)
    figures = Figures(
        server=server,
        asked=len(specs),
        connected=report.connected,
        failed=report.failed,
        connect_rate=report.rate,
        connect_p50_ms=percentile(report.latencies, 0.50) * 1e3,
        connect_p99_ms=percentile(report.latencies, 0.99) * 1e3,
        rss_before_mib=before / MIB,
        rss_after_mib=after / MIB,
        kib_per_connection=(after - before) / connected / 1024,
        generator_ms=report.cpu_seconds / connected * 1e3,
        server_ms=(spent.user + spent.system - cpu.user - cpu.system) / connected * 1e3,
        errors=_top_errors(report),
    )
    return figures, fleet, report


def _top_errors(report: ConnectReport) -> str:
    return "; ".join(f"{n} x {error}" for error, n in report.errors.most_common(3))


def _wait_until(done: Callable[[], bool], timeout: float) -> float:
    """Poll ``done`` until it holds; seconds that took, NaN after ``timeout``."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > timeout:
            return float("nan")
        time.sleep(0.1)
    return time.monotonic() - started


def reconnect_burst(
    fleet: Fleet,
    first: ConnectReport,
    rss: ProcessTree,
    dropped_all: Callable[[int], bool],
    args: argparse.Namespace,
) -> Reconnect:
    """Reset every connection of ``fleet`` at once, wait until ``dropped_all(dropped)``
    says the server has counted them gone, then connect every device again in one burst."""
    dropped = fleet.drop()
    noticed = _wait_until(lambda: dropped_all(dropped), DROP_TIMEOUT)
    before = rss.memory_info().rss
    cpu = rss.cpu_times()
    report = fleet.reconnect()
    time.sleep(args.settle)
    after = rss.memory_info().rss
    spent = rss.cpu_times()
    connected = max(report.connected, 1)
    return Reconnect(
        dropped=dropped,
        noticed_s=noticed,
        gap_s=report.started - first.finished,
        asked=len(fleet.devices),
        connected=report.connected,
        failed=report.failed,
        connect_rate=report.rate,
        connect_p50_ms=percentile(report.latencies, 0.50) * 1e3,
        connect_p99_ms=percentile(report.latencies, 0.99) * 1e3,
        generator_ms=report.cpu_seconds / connected * 1e3,
        server_ms=(spent.user + spent.system - cpu.user - cpu.system) / connected * 1e3,
        longest_s=max(report.since_previous, default=float("nan")),
        past_cache=sum(span > AUTH_CACHE_SECONDS for span in report.since_previous),
        rss_before_mib=before / MIB,
        rss_after_mib=after / MIB,
        errors=_top_errors(report),
    )


def _burst_line(label: str, server: str, figures: Figures | Reconnect, in_flight: int) -> str:
    return (
        f"{label}: {figures.connected:,} of {figures.asked:,} TLS connections in one"
        f" burst at {figures.connect_rate:,.0f} connects/s ({in_flight} in flight; per connect"
        f" p50 {figures.connect_p50_ms:.0f} ms, p99 {figures.connect_p99_ms:.0f} ms; CPU per"
        f" connect: {server} {figures.server_ms:.2f} ms, generator"
        f" {figures.generator_ms:.2f} ms)"
    )


def show(figures: Figures, in_flight: int) -> None:
    print(_burst_line(figures.server, figures.server, figures, in_flight))
    if figures.failed:
        print(f"{figures.server}: {figures.failed:,} failed: {figures.errors}")
    reported = f"; it reports {figures.reported:,} connections" if figures.reported >= 0 else ""
    print(
        f"{figures.server}: RSS {figures.rss_before_mib:,.1f} → {figures.rss_after_mib:,.1f} MiB"
        f" = {figures.kib_per_connection:.1f} KiB per idle connection{reported}",
        flush=True,
    )


def _cache_window(again: Reconnect, hub_workers: int) -> str:
    """Whether the hub could still hold the records of the reconnecting devices."""
    if again.gap_s > AUTH_CACHE_SECONDS:
        return f"past the hub's {AUTH_CACHE_SECONDS:.0f} s auth cache: every record read again"
    within = f"within the hub's {AUTH_CACHE_SECONDS:.0f} s auth cache"
    if again.past_cache:
        within += (
            f", but {again.past_cache:,} devices came back more than {AUTH_CACHE_SECONDS:.0f} s"
            f" after their first connect began (up to {again.longest_s:.1f} s): their records"
            " may have expired"
        )
    elif not math.isnan(again.longest_s):
        within += f" (each device back ≤ {again.longest_s:.1f} s after its first connect began)"
    if hub_workers > 1:
        within += (
            f"; each of the {hub_workers} gateway workers caches for itself, and a device may"
            " land on another"
        )
    return within


def show_reconnect(
    server: str, again: Reconnect, in_flight: int, watched: str, window: str = ""
) -> None:
    """The reconnect's lines, like the first burst's; ``watched`` is what showed the server's
    side of the drop, ``window`` where the reconnect fell against the hub's auth cache."""
    label = f"{server} reconnect"
    noticed = (
        f"{watched} showed them gone after {again.noticed_s:.1f} s"
        if not math.isnan(again.noticed_s)
        else f"{watched} still showed some after {DROP_TIMEOUT:.0f} s; reconnecting anyway"
    )
    print(
        f"{label}: {again.dropped:,} connections reset at once (TCP RST, no DISCONNECT); {noticed}"
    )
    when = f"{again.gap_s:.1f} s after the first burst ended"
    print(
        f"{_burst_line(label, server, again, in_flight)}, {when}{': ' + window if window else ''}"
    )
    if again.failed:
        print(f"{label}: {again.failed:,} failed: {again.errors}")
    reported = f"; it reports {again.reported:,} connections" if again.reported >= 0 else ""
    print(
        f"{label}: RSS {again.rss_before_mib:,.1f} → {again.rss_after_mib:,.1f} MiB{reported}",
        flush=True,
    )


def _report_fd_trouble(hub: WellguardHub) -> None:
    """Say so when the hub ran out of file descriptors (what it logged, first and count)."""
    lines = [line for line in hub.process.log().splitlines() if "open files" in line]
    if lines:
        print(f"hub: logged 'Too many open files' {len(lines)} times, e.g.: {lines[0][:160]}")


def _hub_counts_at_most(hub: WellguardHub, connections: int) -> bool:
    """Whether the hub's own count of device connections is down to ``connections``."""
    try:
        return hub.connections() <= connections
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=200, help="connections in the baseline")
    parser.add_argument("--workers", type=int, default=2, help="generator processes (at least)")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes per worker")
    parser.add_argument("--keepalive", type=int, default=3600, help="MQTT keep-alive, s")
    parser.add_argument("--settle", type=float, default=3.0, help="s before measuring RSS")
    parser.add_argument(
        "--hub-workers", type=int, default=1, help="the hub's mqtt.workers (gateway processes)"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip Mosquitto")
    parser.add_argument(
        "--reconnect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the burst, drop every connection at once and connect them all again",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(
        f"wellguard idle-connection bench - python {platform.python_version()},"
        f" {tls_libraries()}, {os.cpu_count()} CPUs,"
        f" {psutil.virtual_memory().total / 2**30:.0f} GiB, open files {soft:,}/{hard:,}"
    )
    started = time.perf_counter()
    results: list[Figures] = []
    in_flight = 0
    with tempfile.TemporaryDirectory(prefix="wg-connections-bench-") as tmp:
        folder = Path(tmp)
        ids = [f"idle-{i:06d}" for i in range(args.warmup + args.connections)]
        at = time.perf_counter()
        hub = WellguardHub.start(folder, {"WELLGUARD_MQTT_WORKERS": str(args.hub_workers)})
        try:
            tree = ProcessTree(hub.pid)
            pids = [p.pid for p in tree.processes()]
            print(f"hub: started in {time.perf_counter() - at:.1f} s (pids {pids})")
            at = time.perf_counter()
            keys = hub.create_devices(ids)
            took = time.perf_counter() - at
            print(f"hub: {len(ids):,} devices created over REST in {took:.1f} s")
            hub_fds = tree
            limit = tree.root.rlimit(psutil.RLIMIT_NOFILE)[0]
            processes = max(1, len(tree.processes()) - 1) if args.hub_workers > 1 else 1
            specs = hub.devices(keys)
            with Fleet(hub.target, specs[: args.warmup], workers=1, window=0) as warm:
                warm_report = warm.connected()
                if warm_report.failed:
                    raise SystemExit(f"warm-up failed: {dict(warm_report.errors)}")
                spare = limit * processes - hub_fds.num_fds()
                workers = max(args.workers, math.ceil(args.connections / FDS_PER_WORKER))
                in_flight = workers * args.concurrency
                print(
                    f"hub: {args.warmup} warm-up connections open; {hub_fds.num_fds():,} fds"
                    f" in use, {processes} process(es) accepting devices at {limit:,} each"
                    f" → room for ~{spare:,} more connections"
                )
                figures, fleet, first = connect_burst(
                    "wellguard", hub.target, specs[args.warmup :], hub_fds, args
                )
                with fleet:
                    if hub.process.process.poll() is not None:
                        raise SystemExit(f"the hub died:\n{hub.process.log()[-2000:]}")
                    try:
                        figures.reported = hub.connections()
                    except httpx.HTTPError as exc:
                        print(f"hub: GET /status failed ({exc}); its fds: {hub_fds.num_fds():,}")
                    show(figures, in_flight)
                    _report_fd_trouble(hub)
                    if args.reconnect:
                        again = reconnect_burst(
                            fleet,
                            first,
                            hub_fds,
                            lambda _dropped: _hub_counts_at_most(hub, warm_report.connected),
                            args,
                        )
                        if hub.process.process.poll() is not None:
                            raise SystemExit(f"the hub died:\n{hub.process.log()[-2000:]}")
                        with contextlib.suppress(httpx.HTTPError):
                            again.reported = hub.connections()
                        figures.reconnect = again
                        show_reconnect(
                            "wellguard",
                            again,
                            in_flight,
                            "the hub's /status",
                            _cache_window(again, args.hub_workers),
                        )
                time.sleep(args.settle)
                figures.rss_closed_mib = hub.rss() / MIB
            print(
                f"wellguard: after every device disconnected: RSS {figures.rss_closed_mib:,.1f} MiB"
            )
            results.append(figures)
        finally:
            hub.stop()
        binary = None if args.no_peer else mosquitto_binary()
        if binary is None:
            print("peer: skipped" if args.no_peer else f"peer: no Mosquitto ({MOSQUITTO_HINT})")
        else:
            mosquitto = Mosquitto(folder / "mosquitto", binary)
            try:
                peer_specs = mosquitto.devices(ids[args.warmup :], block=2)
                broker = ProcessTree(mosquitto.pid)
                peer, fleet, first = connect_burst(
                    "mosquitto", mosquitto.target, peer_specs, broker, args
                )
                with fleet:
                    show(peer, in_flight)
                    if args.reconnect:
                        fds = broker.num_fds()
                        peer.reconnect = reconnect_burst(
                            fleet,
                            first,
                            broker,
                            lambda dropped: broker.num_fds() <= fds - dropped,
                            args,
                        )
                        show_reconnect("mosquitto", peer.reconnect, in_flight, "its open files")
                results.append(peer)
            finally:
                mosquitto.stop()
    ours = results[0]
    print(
        f"target {TARGET_CONNECTIONS:,} connections at ≤ {TARGET_KIB} KiB each: reached"
        f" {ours.connected:,} at {ours.kib_per_connection:.1f} KiB"
        f" ({'within' if ours.kib_per_connection <= TARGET_KIB else 'over'} the memory budget;"
        f" {TARGET_CONNECTIONS:,} would need"
        f" {TARGET_CONNECTIONS * ours.kib_per_connection / 1024**2:.1f} GiB)."
        f" One process cannot pass its open-files limit ({limit:,}): 100,000 needs"
        f" --hub-workers {math.ceil(TARGET_CONNECTIONS / (limit - 2000))} or more"
        f" (this run: {args.hub_workers})."
    )
    if len(results) > 1 and results[1].kib_per_connection > 0:
        peer = results[1]
        print(
            f"wellguard/Mosquitto: memory per connection"
            f" {ours.kib_per_connection / peer.kib_per_connection:.1f}x, connect rate"
            f" {ours.connect_rate / peer.connect_rate:.2f}x"
        )
        if ours.reconnect is not None and peer.reconnect is not None:
            print(
                f"wellguard/Mosquitto reconnect: connect rate"
                f" {ours.reconnect.connect_rate / peer.reconnect.connect_rate:.2f}x,"
                f" server CPU per connect"
                f" {ours.reconnect.server_ms / peer.reconnect.server_ms:.1f}x"
            )
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results]))


if __name__ == "__main__":
    main()

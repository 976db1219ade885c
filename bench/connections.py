"""Idle device connections: hub RSS per TLS connection and the TLS connect + auth rate.

Run: ``.venv/bin/python bench/connections.py`` (about 2 minutes for the default 10,000;
``--connections`` to change it). It starts a real hub, creates the devices over REST
(~200/s: the registry commits each one), opens ``--warmup`` connections so that lazily
made things (thread pool, caches) are in the baseline, then connects all devices in one
burst from ``--workers`` processes, ``--concurrency`` handshakes in flight per process,
each device from its own loopback address: TLS 1.3, a CONNECT with a SAS token checked
against the registry, CONNACK, then idle (keep-alive ``--keepalive`` s). It reports the
burst's rate, the per-connect latency, and the hub's RSS before and after, per connection.

Each connection is a file descriptor: with ``ulimit -Hn`` at 20,000 (as on the bench
machine; root cannot raise it) one process holds at most ~19,900 connections however
much memory it has. ``--hub-workers N`` runs the hub with ``mqtt.workers = N`` (N gateway
worker processes sharing the MQTT port); memory and CPU are then those of the hub process
and its workers together. The generator spreads its side over enough processes to stay
under the limit.

Peer: Mosquitto, same connections (it does not check the credentials), RSS per connection
and connect rate, when installed (``apt-get install -y mosquitto``; else skipped).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import tempfile
import time
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


def connect_burst(
    server: str,
    target: Target,
    specs: list[DeviceSpec],
    rss: ProcessTree,
    args: argparse.Namespace,
) -> tuple[Figures, Fleet]:
    """Connect every device at once; returns the figures and the (still open) fleet."""
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
        errors="; ".join(f"{n} x {error}" for error, n in report.errors.most_common(3)),
    )
    return figures, fleet


def show(figures: Figures, in_flight: int) -> None:
    print(
        f"{figures.server}: {figures.connected:,} of {figures.asked:,} TLS connections in one"
        f" burst at {figures.connect_rate:,.0f} connects/s ({in_flight} in flight; per connect"
        f" p50 {figures.connect_p50_ms:.0f} ms, p99 {figures.connect_p99_ms:.0f} ms; CPU per"
        f" connect: {figures.server} {figures.server_ms:.2f} ms, generator"
        f" {figures.generator_ms:.2f} ms)"
    )
    if figures.failed:
        print(f"{figures.server}: {figures.failed:,} failed: {figures.errors}")
    reported = f"; it reports {figures.reported:,} connections" if figures.reported >= 0 else ""
    print(
        f"{figures.server}: RSS {figures.rss_before_mib:,.1f} → {figures.rss_after_mib:,.1f} MiB"
        f" = {figures.kib_per_connection:.1f} KiB per idle connection{reported}",
        flush=True,
    )


def _report_fd_trouble(hub: WellguardHub) -> None:
    """Say so when the hub ran out of file descriptors (what it logged, first and count)."""
    lines = [line for line in hub.process.log().splitlines() if "open files" in line]
    if lines:
        print(f"hub: logged 'Too many open files' {len(lines)} times, e.g.: {lines[0][:160]}")


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
                figures, fleet = connect_burst(
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
                peer, fleet = connect_burst("mosquitto", mosquitto.target, peer_specs, broker, args)
                with fleet:
                    show(peer, in_flight)
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
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results]))


if __name__ == "__main__":
    main()

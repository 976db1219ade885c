"""Durable MQTT ingest over TLS: QoS 1 telemetry msgs/s and publish→PUBACK latency.

Run: ``.venv/bin/python bench/ingest.py`` (about 80 s). It starts a real hub
(``wellguard init`` + ``up``, ``WELLGUARD_MQTT_RATE_PER_DEVICE=100000`` and the hub-wide
rate raised, so nothing is throttled), creates the devices over REST, and drives it from
``--workers`` generator processes (uvloop + ``ssl``, pre-encoded packets; see
``_loadgen``). Every device keeps ``--window`` QoS 1 PUBLISHes of ``--payload`` bytes
outstanding on ``devices/{id}/messages/events/``; a PUBACK means the message is committed
to the journal (synchronous=FULL). Messages/s and latencies count only PUBACKs arriving
inside the measured ``--seconds``, after ``--warmup``.

The peer is Mosquitto from the same run, when installed (``apt-get install -y mosquitto``;
skipped otherwise): same devices, same TLS (TLS 1.3, EC P-256 certificate), one
subscriber receiving everything at QoS 0, no persistence. First, the generator's own
ceiling: the same load against Mosquitto with no subscriber (the cheapest server
there is), and the generator's CPU per message, printed for every scenario too.

Columns: server CPU (all threads; with --hub-workers, of the hub and its workers) and its
event loop threads, as shares of one core;
server and generator CPU per acknowledged message; how busy the whole machine was; CPU
of every other process on it ("others": a shared machine makes noise, see it here); the
connect rate while the fleet came up. Loopback only: hub, broker, generator and
subscriber share the machine's cores, so read the CPU columns with the rates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from _loadgen import DeviceSpec, Fleet, Subscriber, Target, percentile, telemetry_payload
from _peers import (
    MOSQUITTO_HINT,
    TELEMETRY_FILTER,
    Mosquitto,
    WellguardHub,
    mosquitto_binary,
    process_cpu_seconds,
    tls_libraries,
)
from wellguard.core.mqtt import Publish, encode


@dataclass
class Figures:
    """One scenario's results."""

    server: str
    devices: int
    rate: float
    p50_ms: float
    p99_ms: float
    server_cpu: float
    """Share of one core the server process used in the window (all threads)."""
    loop_cpu: float
    """Share of one core its main thread (the event loop) used."""
    server_us: float
    """Server CPU microseconds per acknowledged message (all its threads)."""
    machine_cpu: float
    """Busy share of the whole machine (1.0 = every core busy), softirq included."""
    others_cpu: float
    """Share of one core used by processes that are neither server nor generator."""
    generator_us: float
    """Generator CPU microseconds per acknowledged message."""
    connect_rate: float
    forwarded: float = float("nan")
    """Messages/s the subscriber received (Mosquitto)."""
    notes: str = ""


def _thread_cpu(pid: int) -> float:
    """CPU seconds of the main (event loop) thread of ``pid`` and of its children."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children()]:
        for thread in process.threads():
            if thread.id == process.pid:
                total += thread.user_time + thread.system_time
    return total


def _all_cpu() -> dict[int, float]:
    seconds = {}
    for process in psutil.process_iter(["cpu_times"]):
        times = process.info["cpu_times"]
        if times is not None:
            seconds[process.pid] = times.user + times.system
    return seconds


def _others(before: dict[int, float], after: dict[int, float], ours: set[int]) -> float:
    return sum(spent - before.get(pid, 0.0) for pid, spent in after.items() if pid not in ours)


def _busy(before: Any, after: Any) -> float:
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    total = sum(after) - sum(before)
    return 1 - idle / total if total > 0 else float("nan")


def run_scenario(
    server: str,
    target: Target,
    specs: list[DeviceSpec],
    server_pid: int,
    args: argparse.Namespace,
    *,
    subscriber: bool = False,
    on_window: Callable[[float], object] | None = None,
) -> Figures:
    """Connect, publish for warm-up + window, collect; one fleet per scenario.

    ``on_window(seconds)`` is called when the measured window opens (to attach a profiler).
    """
    payload = telemetry_payload(args.payload)
    with Fleet(
        target,
        specs,
        workers=args.workers,
        window=args.window,
        payload=payload,
        concurrency=args.concurrency,
    ) as fleet:
        connect = fleet.connected()
        if connect.failed:
            raise SystemExit(
                f"{server}: {connect.failed} of {len(specs)} devices did not connect:"
                f" {dict(connect.errors.most_common(3))}"
            )
        sink = Subscriber(target, TELEMETRY_FILTER) if subscriber else None
        go = time.monotonic() + 0.5
        t0 = go + args.warmup
        t1 = t0 + args.seconds
        fleet.start(go, t0, t1)
        if sink is not None:
            sink.start_window(t0, t1)
        time.sleep(max(0.0, t0 - time.monotonic()))
        if on_window is not None:
            on_window(args.seconds)
        machine0, all0 = psutil.cpu_times(), _all_cpu()
        cpu0, loop0 = process_cpu_seconds(server_pid), _thread_cpu(server_pid)
        start = time.monotonic()
        time.sleep(max(0.0, t1 - start))
        cpu1, loop1 = process_cpu_seconds(server_pid), _thread_cpu(server_pid)
        elapsed = time.monotonic() - start
        machine1, all1 = psutil.cpu_times(), _all_cpu()
        children = [p.pid for p in psutil.Process(server_pid).children()]
        ours = {server_pid, *children, os.getpid(), *fleet.pids(), *(sink.pids() if sink else [])}
        run = fleet.result()
        forwarded = float("nan")
        notes = []
        if sink is not None:
            in_window, total = sink.result()
            size = len(encode(Publish(specs[0].topic, payload)))
            forwarded = in_window / size / args.seconds
            if total // size < run.acked_total:
                notes.append(f"subscriber got {total // size} of {run.acked_total}")
            sink.close()
    if run.out_of_order:
        notes.append(f"{run.out_of_order} PUBACKs out of order")
    if run.lost_connections:
        notes.append(f"{run.lost_connections} connections lost")
    server_cpu = (cpu1 - cpu0) / elapsed
    machine_cpu = _busy(machine0, machine1)
    if server != "wellguard" and server_cpu < 0.9 and machine_cpu > 0.85:
        notes.append(
            f"machine-bound: {server} used {server_cpu:.0%} of a core, the generator"
            f"{' and subscriber' if subscriber else ''} the rest; compare µs/msg"
        )
    return Figures(
        server=server,
        devices=len(specs),
        rate=run.acked / args.seconds,
        p50_ms=percentile(run.latencies, 0.50) * 1e3,
        p99_ms=percentile(run.latencies, 0.99) * 1e3,
        server_cpu=server_cpu,
        loop_cpu=(loop1 - loop0) / elapsed,
        server_us=(cpu1 - cpu0) / run.acked * 1e6 if run.acked else float("nan"),
        machine_cpu=machine_cpu,
        others_cpu=_others(all0, all1, ours) / elapsed,
        generator_us=run.cpu_seconds / run.acked * 1e6 if run.acked else float("nan"),
        connect_rate=connect.rate,
        forwarded=forwarded,
        notes="; ".join(notes),
    )


HEADER = (
    f"{'server':10} {'devices':>7} {'msgs/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    f" {'server CPU':>10} {'loop':>5} {'µs/msg':>6} {'gen µs':>6} {'machine':>7}"
    f" {'others':>6} {'conn/s':>6}"
)


def show(figures: Figures) -> None:
    line = (
        f"{figures.server:10} {figures.devices:>7,} {figures.rate:>9,.0f}"
        f" {figures.p50_ms:>8.2f} {figures.p99_ms:>8.2f} {figures.server_cpu:>10.0%}"
        f" {figures.loop_cpu:>5.0%} {figures.server_us:>6.0f} {figures.generator_us:>6.1f}"
        f" {figures.machine_cpu:>7.0%} {figures.others_cpu:>6.0%} {figures.connect_rate:>6,.0f}"
    )
    if figures.forwarded == figures.forwarded:  # not NaN
        line += f"  subscriber {figures.forwarded:,.0f}/s"
    if figures.notes:
        line += f"  ({figures.notes})"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="100,1000", help="comma-separated fleet sizes")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per scenario")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--window", type=int, default=8, help="outstanding QoS 1 per device")
    parser.add_argument("--payload", type=int, default=200, help="bytes per message")
    parser.add_argument("--workers", type=int, default=2, help="generator processes")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes per worker")
    parser.add_argument(
        "--hub-workers", type=int, default=1, help="the hub's mqtt.workers (gateway processes)"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip Mosquitto")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the hub's data")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args()
    sizes = [int(n) for n in args.devices.split(",")]
    binary = None if args.no_peer else mosquitto_binary()
    try:
        loop_name = f"uvloop {metadata.version('uvloop')}"
    except metadata.PackageNotFoundError:
        loop_name = "asyncio"
    print(
        f"wellguard MQTT ingest bench - python {platform.python_version()}, {loop_name},"
        f" {tls_libraries()}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(
        f"load: QoS 1 PUBLISH of {args.payload} bytes, window {args.window} per device,"
        f" {args.workers} generator processes, {args.seconds:g} s measured after"
        f" {args.warmup:g} s warm-up, TLS from one loopback address per device"
    )
    started = time.perf_counter()
    results: list[Figures] = []
    ceiling: Figures | None = None
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="wg-ingest-bench-") as tmp:
        folder = Path(tmp)
        mosquitto = None
        if binary is None:
            print("peer: skipped" if args.no_peer else f"peer: no Mosquitto ({MOSQUITTO_HINT})")
        else:
            mosquitto = Mosquitto(folder / "mosquitto", binary)
            print(f"peer: Mosquitto {mosquitto.version} (TLS, no persistence, QoS 0 subscriber)")
        try:
            ids = [f"bench-{i:06d}" for i in range(max(sizes))]
            if mosquitto is not None:
                peers = mosquitto.devices(ids[: sizes[0]])
                ceiling = run_scenario("mosquitto", mosquitto.target, peers, mosquitto.pid, args)
                print(
                    f"generator ceiling: {ceiling.rate:,.0f} msgs/s against Mosquitto with"
                    f" {sizes[0]} devices and no subscriber (Mosquitto CPU"
                    f" {ceiling.server_cpu:.0%}); generator {ceiling.generator_us:.1f} µs CPU"
                    f" per message → {1e6 / ceiling.generator_us:,.0f} msgs/s per generator core"
                )
            at = time.perf_counter()
            hub = WellguardHub.start(folder, {"WELLGUARD_MQTT_WORKERS": str(args.hub_workers)})
            try:
                workers = f", {args.hub_workers} gateway workers" if args.hub_workers > 1 else ""
                print(f"hub: started in {time.perf_counter() - at:.1f} s (pid {hub.pid}{workers})")
                at = time.perf_counter()
                keys = hub.create_devices(ids)
                took = time.perf_counter() - at
                print(f"hub: {len(ids):,} devices created over REST in {took:.1f} s")
                print(HEADER)
                specs = hub.devices(keys)
                for count in sizes:
                    results.append(
                        run_scenario("wellguard", hub.target, specs[:count], hub.pid, args)
                    )
                    show(results[-1])
            finally:
                hub.stop()
            if mosquitto is not None:
                specs = mosquitto.devices(ids, block=1)
                for count in sizes:
                    results.append(
                        run_scenario(
                            "mosquitto",
                            mosquitto.target,
                            specs[:count],
                            mosquitto.pid,
                            args,
                            subscriber=True,
                        )
                    )
                    show(results[-1])
        finally:
            if mosquitto is not None:
                mosquitto.stop()
    ratios = {}
    for count in sizes:
        ours = [r for r in results if r.server == "wellguard" and r.devices == count]
        peer = [r for r in results if r.server == "mosquitto" and r.devices == count]
        if ours and peer and peer[0].rate:
            ratios[count] = ours[0].rate / peer[0].rate
    if ratios:
        print(
            "wellguard/Mosquitto msgs/s: "
            + ", ".join(f"{count:,} devices {ratio:.2f}" for count, ratio in ratios.items())
        )
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "ceiling": asdict(ceiling) if ceiling else None,
                    "results": [asdict(r) for r in results],
                    "ratios": ratios,
                },
                default=str,
            )
        )


if __name__ == "__main__":
    main()

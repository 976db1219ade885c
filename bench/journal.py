"""Ingest journal throughput and submit→durable latency, synchronous=FULL and NORMAL.

Run: ``.venv/bin/python bench/journal.py`` (about 12 s; ``--seconds`` per phase). For each
mode, on a fresh file in a temporary folder (``--dir`` to pick the disk):

- saturated: ``--producers`` coroutines (1000) each submit a 200-byte message and await
  its future, again and again, so that many messages are always in flight, as when many
  devices publish QoS 1 at once;
- idle: one coroutine does the same, so every commit holds one message (latency ≈ one
  commit).

Each message is a fresh ``DeviceMessage`` with a message id, like the gateway makes.
Latency is measured in the producer, from ``submit`` to resuming after the future, so it
includes the event loop's wake-up. CPU is the whole process's (event loop, writer and
checkpointer threads, and the producers themselves) per committed message. Batch and
commit figures cover the whole phase. Runs on uvloop when installed, as the hub does.
``--max-delay`` sets ``max_delay_s`` (default 0.002, the journal's default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from wellguard.adapters.journal import SqliteJournal
from wellguard.core.ingest import JournalStats
from wellguard.model.message import DeviceMessage, MessageSource

BODY = bytes(range(200))


@dataclass
class Result:
    rate: float
    cpu_us: float
    p50_ms: float
    p99_ms: float
    stats: JournalStats


async def drive(
    journal: SqliteJournal, producers: int, seconds: float
) -> tuple[float, float, list[float]]:
    """Run ``producers`` closed-loop publishers for ``seconds``: messages/s, process CPU
    µs per message (all threads, producers included), submit→durable latencies."""
    latencies: list[float] = []
    record = latencies.append
    stop = False
    now = datetime.now(UTC)

    async def producer(index: int) -> int:
        count = 0
        clock = time.perf_counter
        device = f"well-{index:04d}"
        while not stop:
            message = DeviceMessage(
                device_id=device,
                module_id=None,
                enqueued_at=now,
                source=MessageSource.TELEMETRY,
                body=BODY,
                system_properties={"messageId": f"{index}-{count}"},
            )
            started = clock()
            await journal.submit(message)
            record(clock() - started)
            count += 1
        return count

    tasks = [asyncio.create_task(producer(i)) for i in range(producers)]
    await asyncio.sleep(min(0.5, seconds / 4))  # warm-up: statement cache, WAL growth
    latencies.clear()
    first = journal.stats.messages
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = journal.stats.messages - first
    stop = True
    await asyncio.gather(*tasks)
    return done / elapsed, cpu / max(done, 1) * 1e6, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run_mode(
    folder: Path,
    mode: Literal["FULL", "NORMAL"],
    producers: int,
    seconds: float,
    max_delay_s: float,
) -> tuple[Result, Result]:
    results = []
    for label, count in (("saturated", producers), ("idle", 1)):
        path = folder / f"journal-{mode}-{label}.db"
        journal = SqliteJournal(path, synchronous=mode, max_delay_s=max_delay_s)
        await journal.start()
        before = journal.stats
        rate, cpu_us, latencies = await drive(journal, count, seconds if count > 1 else seconds / 2)
        await journal.close()
        stats = journal.stats
        batches = stats.batches - before.batches
        results.append(
            Result(
                rate=rate,
                cpu_us=cpu_us,
                p50_ms=percentile(latencies, 0.50) * 1e3,
                p99_ms=percentile(latencies, 0.99) * 1e3,
                stats=stats,
            )
        )
        assert batches > 0
    return results[0], results[1]


def report(mode: str, label: str, result: Result) -> None:
    stats = result.stats
    mean_batch = stats.messages / stats.batches if stats.batches else 0.0
    mean_commit = stats.commit_seconds_total / stats.batches * 1e3 if stats.batches else 0.0
    print(
        f"{mode:6} {label:9} {result.rate:9,.0f} msg/s {result.cpu_us:5.1f} µs CPU/msg"
        f"   batch mean {mean_batch:6.1f}"
        f" max {stats.max_batch_size:5d}   commit mean {mean_commit:6.2f} ms"
        f" max {stats.commit_seconds_max * 1e3:6.1f} ms"
        f"   submit→durable p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:6.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0, help="per saturated phase")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the journal files")
    parser.add_argument("--max-delay", type=float, default=0.002, help="max_delay_s")
    args = parser.parse_args()
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    loop_name = "asyncio"
    try:
        import uvloop

        runner, loop_name = uvloop.run, "uvloop"
    except ImportError:
        pass
    print(
        f"python {platform.python_version()}  sqlite {sqlite3.sqlite_version}  {loop_name}"
        f"  cpus {os.cpu_count()}  {platform.machine()}  producers {args.producers}"
    )

    async def everything() -> None:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="wg-journal-bench-") as tmp:
            print(f"journal files in {tmp}")
            for mode in ("FULL", "NORMAL"):
                saturated, idle = await run_mode(
                    Path(tmp), mode, args.producers, args.seconds, args.max_delay
                )
                report(mode, "saturated", saturated)
                report(mode, "idle", idle)

    started = time.perf_counter()
    runner(everything())
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

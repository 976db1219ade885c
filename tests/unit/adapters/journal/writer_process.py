"""What a gateway worker process does with the journal, as a target for ``multiprocessing``
(spawn): open its own ``SqliteJournal`` on the shared file and submit messages."""

from __future__ import annotations

import asyncio
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from tests.unit.adapters.journal.factories import message
from wellguard.adapters.journal import SqliteJournal

Acks = list[tuple[int, int]]
"""``(n, seq)`` for each ``message(n)`` a writer submitted, in submission order."""


def device_of(writer: int) -> str:
    return f"writer-{writer}"


def write_messages(
    path: str,
    writer: int,
    count: int,
    wave: int,
    start: Barrier,
    results: Queue[tuple[int, Acks, int]],
    delay_s: float = 0.0,
    pause_s: float = 0.0,
) -> None:
    """Open a journal on ``path``, wait for everyone at ``start``, sleep ``delay_s``, then
    submit ``message(0 .. count-1)`` from ``device_of(writer)`` in waves of ``wave``, each
    awaited, then ``pause_s`` before the next. Puts ``(writer, acks, stats.messages)``."""
    acks, committed = asyncio.run(_write(Path(path), writer, count, wave, start, delay_s, pause_s))
    results.put((writer, acks, committed))


async def _write(
    path: Path,
    writer: int,
    count: int,
    wave: int,
    start: Barrier,
    delay_s: float,
    pause_s: float,
) -> tuple[Acks, int]:
    journal = SqliteJournal(path, synchronous="NORMAL", max_batch=128)
    await journal.start()
    try:
        await asyncio.to_thread(start.wait, 60)
        await asyncio.sleep(delay_s)
        acks: Acks = []
        device = device_of(writer)
        for first in range(0, count, wave):
            numbers = range(first, min(first + wave, count))
            futures = [journal.submit(message(n, device=device)) for n in numbers]
            acks.extend(zip(numbers, await asyncio.gather(*futures), strict=True))
            await asyncio.sleep(pause_s)
        return acks, journal.stats.messages
    finally:
        await journal.close()

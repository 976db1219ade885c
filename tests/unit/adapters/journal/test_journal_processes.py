"""Several writers on one journal file: gateway worker processes beside the hub process.

Two ``SqliteJournal`` instances in one process are two writers as far as SQLite is
concerned (each has its own connections and takes its own locks), which makes the
interleavings exact. The tests at the end run real processes (``multiprocessing``,
spawn) against the test process, which plays the hub: a writer, the reader routing is,
and compaction.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from tests.unit.adapters.journal.factories import message, number_of, opened, stored_seqs
from tests.unit.adapters.journal.writer_process import Acks, device_of, write_messages
from wellguard.adapters.journal import SqliteJournal
from wellguard.core.ingest import JournalEntry


async def submit_all(journal: SqliteJournal, device: str, numbers: range) -> list[int]:
    return list(await asyncio.gather(*(journal.submit(message(n, device=device)) for n in numbers)))


def contents(journal: SqliteJournal) -> dict[int, tuple[str, int]]:
    """Every stored entry: seq → (device, n)."""
    entries = journal.read(0, 1_000_000)
    return {e.seq: (e.message.device_id, number_of(e.message)) for e in entries}


# -- two writers in one process ---------------------------------------------------------


def test_two_writers_on_one_file_number_one_dense_sequence(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        async with opened(path) as a, opened(path) as b:
            expected: dict[int, tuple[str, int]] = {}
            n = 0
            # Turns, then both at once (the batches interleave).
            for journal, device, count in [(a, "a", 5), (b, "b", 3), (a, "a", 1), (a, "a", 4)]:
                seqs = await submit_all(journal, device, range(n, n + count))
                expected.update(zip(seqs, ((device, k) for k in range(n, n + count)), strict=True))
                n += count
            together = await asyncio.gather(
                submit_all(a, "a", range(n, n + 500)), submit_all(b, "b", range(n + 500, n + 1000))
            )
            for i, (device, seqs) in enumerate(zip("ab", together, strict=True)):
                assert seqs == sorted(seqs)  # each writer keeps its own order
                first = n + i * 500
                expected.update(
                    zip(seqs, ((device, k) for k in range(first, first + 500)), strict=True)
                )
            assert sorted(expected) == list(range(1, 1014))  # dense, each seq once
            assert contents(a) == expected  # every future holds the seq of its message
            assert a.last_seq() == b.last_seq() == 1013
            # Stats are each process's own.
            assert a.stats.messages == 510
            assert b.stats.messages == 503

    asyncio.run(scenario())


def test_a_writer_never_reuses_seqs_another_writer_committed_and_compacted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        async with opened(path) as a, opened(path) as b:
            assert await submit_all(a, "a", range(10)) == list(range(1, 11))
            assert await submit_all(b, "b", range(10)) == list(range(11, 21))
            await asyncio.to_thread(b.set_checkpoint, "routing", 20)
            assert await asyncio.to_thread(b.compact, 20) == 20
            assert stored_seqs(path) == []
            # Writer a last committed seq 10 and nothing is stored past it any more; 11
            # was taken all the same.
            assert await a.submit(message(100, device="a")) == 21
            assert await b.submit(message(100, device="b")) == 22
            assert await a.submit(message(101, device="a")) == 23

    asyncio.run(scenario())
    assert stored_seqs(path) == [21, 22, 23]


def test_a_reader_sees_and_is_woken_by_another_writers_commits(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        async with opened(path) as reader, opened(path) as writer:
            waiter = asyncio.create_task(reader.wait_for(0, 30))
            await asyncio.sleep(0.05)
            assert not waiter.done()
            assert await writer.submit(message(1)) == 1
            assert await asyncio.wait_for(waiter, 1.0) == 1
            assert reader.last_seq() == 1
            assert reader.stats.messages == 0

            # From another thread's event loop too.
            result: list[int] = []
            thread = threading.Thread(
                target=lambda: result.append(asyncio.run(reader.wait_for(1, 30)))
            )
            thread.start()
            await asyncio.sleep(0.05)
            await writer.submit(message(2))
            await asyncio.to_thread(thread.join, 1.0)
            assert result == [2]

            # News short of what is awaited does not end the wait.
            started = time.monotonic()
            later = asyncio.create_task(reader.wait_for(3, 0.3))
            await asyncio.sleep(0.05)
            await writer.submit(message(3))
            assert await later == 3
            assert time.monotonic() - started >= 0.25

            # last_seq reads the file; it does not wait for anybody's wake-up.
            await writer.submit(message(4))
            assert reader.last_seq() == 4
            # A consumer may checkpoint what another process wrote.
            await asyncio.to_thread(reader.set_checkpoint, "routing", 4)

    asyncio.run(scenario())


def test_the_file_is_read_for_other_writers_only_while_someone_waits(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            await submit_all(journal, "d", range(1000))
            await asyncio.sleep(0.05)
            assert journal._follower.reads == 0  # nobody waited: not one read

            assert await journal.wait_for(1000, 0.2) == 1000
            reads = journal._follower.reads
            assert 1 <= reads <= 0.2 / 0.005 + 5  # every 5 ms while waiting
            await asyncio.sleep(0.1)
            assert journal._follower.reads <= reads + 1  # (one may have begun as it ended)

    asyncio.run(scenario())


def test_a_commit_waits_while_another_process_commits(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        async with opened(path, busy_timeout_s=5) as journal:
            assert await journal.submit(message(1)) == 1
            with closing(sqlite3.connect(path, isolation_level=None)) as other:
                other.execute("BEGIN IMMEDIATE")
                other.execute(
                    "INSERT INTO journal SELECT 2, device_id, module_id, enqueued_at, source,"
                    " system, app, body FROM journal WHERE seq = 1"
                )
                future = journal.submit(message(2))
                await asyncio.sleep(0.3)
                assert not future.done()  # waiting for the lock, not failed
                other.execute("COMMIT")
                assert await asyncio.wait_for(future, 2.0) == 3  # after the other's row
            assert journal.stats.failures == 0
            assert journal.stats.failed_batches == 0

    asyncio.run(scenario())


def test_journals_opening_a_new_file_together_all_start(tmp_path: Path) -> None:
    """Switching a new file to WAL does not wait for SQLite's busy handler; without a
    retry about one round in ten failed with 'database is locked'."""

    async def scenario() -> None:
        for round_ in range(20):
            path = tmp_path / f"journal-{round_}.db"
            journals = [SqliteJournal(path) for _ in range(6)]
            try:
                await asyncio.gather(*(journal.start() for journal in journals))
                seqs = await asyncio.gather(*(j.submit(message(k)) for k, j in enumerate(journals)))
                assert sorted(seqs) == list(range(1, 7))
            finally:
                for journal in journals:
                    await journal.close()

    asyncio.run(scenario())


# -- real processes ---------------------------------------------------------------------


@dataclass
class WriterProcesses:
    start: Barrier
    """Every writer and the test pass it together."""
    results: Queue[tuple[int, Acks, int]]
    processes: list[SpawnProcess]

    def collect(self) -> list[tuple[int, Acks, int]]:
        """``(writer, acks, messages it committed)`` of every writer, by writer."""
        return sorted(self.results.get(timeout=60) for _ in self.processes)


@contextmanager
def writer_processes(
    path: Path, *, writers: int, count: int, wave: int, delay_s: float = 0.0, pause_s: float = 0.0
) -> Iterator[WriterProcesses]:
    """``writers`` processes that each open a journal on ``path`` and, once everyone
    passed ``start``, submit ``count`` messages (see ``write_messages``)."""
    ctx = multiprocessing.get_context("spawn")
    group = WriterProcesses(ctx.Barrier(writers + 1), ctx.Queue(), [])
    for writer in range(writers):
        args = (str(path), writer, count, wave, group.start, group.results, delay_s, pause_s)
        group.processes.append(ctx.Process(target=write_messages, args=args, daemon=True))
    for process in group.processes:
        process.start()
    try:
        yield group
    finally:
        group.start.abort()  # should the test fail before the start, nobody waits for it
        for process in group.processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()


WRITERS = 3
PER_WRITER = 3000
HUB_MESSAGES = 300


@dataclass
class Followed:
    entries: list[JournalEntry]
    slowest: float
    """The longest ``wait_for``, in seconds (each may wait 30)."""
    caught_up: int
    """Waits that began with nothing newer in the file: other processes' commits ended them."""
    compacted: int


async def follow(journal: SqliteJournal, total: int) -> Followed:
    """Read like the routing worker until ``total`` entries came, checkpointing and
    compacting behind itself."""
    followed = Followed([], 0.0, 0, 0)
    after = 0
    async with asyncio.timeout(60):
        while after < total:
            followed.caught_up += await asyncio.to_thread(journal.last_seq) == after
            started = time.monotonic()
            await journal.wait_for(after, 30)
            followed.slowest = max(followed.slowest, time.monotonic() - started)
            batch = await asyncio.to_thread(journal.read, after, 500)
            if batch:
                followed.entries.extend(batch)
                after = batch[-1].seq
                await asyncio.to_thread(journal.set_checkpoint, "routing", after)
                followed.compacted += await asyncio.to_thread(journal.compact, after)
    return followed


def test_writers_in_several_processes_share_one_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    total = WRITERS * PER_WRITER + HUB_MESSAGES

    async def hub() -> tuple[Followed, list[tuple[int, Acks, int]], list[int]]:
        async with opened(path, synchronous="NORMAL") as journal:
            with writer_processes(
                path, writers=WRITERS, count=PER_WRITER, wave=100, pause_s=0.02
            ) as group:
                await asyncio.to_thread(group.start.wait, 60)
                own = [journal.submit(message(n, device="hub")) for n in range(HUB_MESSAGES)]
                followed = await follow(journal, total)
                acks = await asyncio.to_thread(group.collect)
            own_seqs = list(await asyncio.gather(*own))
            assert journal.last_seq() == total
            assert journal.stats.messages == HUB_MESSAGES
            # Everything was compacted away, by this process, after the others wrote.
            assert await journal.submit(message(HUB_MESSAGES, device="hub")) == total + 1
        return followed, acks, own_seqs

    followed, acks, own_seqs = asyncio.run(hub())

    entries = followed.entries
    assert [e.seq for e in entries] == list(range(1, total + 1))  # dense, each seq once
    stored = {e.seq: (e.message.device_id, number_of(e.message)) for e in entries}
    assert len(set(stored.values())) == total  # each message once
    assert [writer for writer, _acks, _committed in acks] == list(range(WRITERS))
    interleaved = 0
    for writer, writer_acks, committed in acks:
        assert committed == PER_WRITER  # each process counts its own commits
        assert [n for n, _seq in writer_acks] == list(range(PER_WRITER))
        seqs = [seq for _n, seq in writer_acks]
        assert seqs == sorted(seqs)
        assert all(stored[seq] == (device_of(writer), n) for n, seq in writer_acks)
        interleaved += seqs[-1] - seqs[0] + 1 > len(seqs)
    assert interleaved  # the processes really wrote at the same time
    assert all(stored[seq] == ("hub", n) for n, seq in enumerate(own_seqs))
    # The reader caught up with the writers now and then, and their commits woke it.
    assert followed.caught_up > 0
    assert followed.slowest < 1.0  # and never its 30 s timeout
    assert followed.compacted == total
    assert stored_seqs(path) == [total + 1]


def test_wait_for_returns_soon_after_another_process_commits(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def hub() -> tuple[int, float, list[tuple[int, Acks, int]]]:
        async with opened(path) as journal:
            with writer_processes(path, writers=1, count=1, wave=1, delay_s=0.3) as group:
                await asyncio.to_thread(group.start.wait, 60)
                started = time.monotonic()
                newest = await journal.wait_for(0, 30)
                waited = time.monotonic() - started
                results = await asyncio.to_thread(group.collect)
        return newest, waited, results

    newest, waited, results = asyncio.run(hub())
    assert results == [(0, [(0, 1)], 1)]
    assert newest == 1
    assert 0.2 < waited < 1.0  # it waited for the other process, and not for its timeout

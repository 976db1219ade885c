"""SqliteJournal when storage fails: no false acknowledgement, recovery, back-pressure.

Failures are real SQLite failures: another process holding the write lock, a full
database (``max_page_count``), a read-only or closed connection, rows that appeared
behind the journal's back. The last three reach the writer's connection through
``_writer.exclusive``, the only white-box step here.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.unit.adapters.journal.factories import message, number_of, opened, stored_seqs
from wellguard.adapters.journal import SqliteJournal
from wellguard.errors import StorageError


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another connection (as another process would) holds the journal's write lock."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


def on_writer_connection(journal: SqliteJournal, sql: str) -> None:
    journal._writer.exclusive(lambda conn: conn.execute(sql))


def test_a_failed_commit_fails_every_future_of_the_batch_and_later_batches_recover(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        async with opened(path, busy_timeout_s=0.2) as journal:
            assert await journal.submit(message(1)) == 1
            with write_lock_held(path):
                futures = [journal.submit(message(n)) for n in range(2, 12)]
                results = await asyncio.gather(*futures, return_exceptions=True)
            assert all(isinstance(r, StorageError) for r in results), results
            assert "locked" in str(results[0])
            assert journal.last_seq() == 1
            # The journal keeps going, and the failed messages left no gap.
            assert await journal.submit(message(12)) == 2
            stats = journal.stats
            assert stats.failures == 10
            assert stats.failed_batches >= 1
            assert stats.pending == 0

    asyncio.run(scenario())
    assert stored_seqs(path) == [1, 2]


def test_disk_full_fails_the_batch_and_the_journal_recovers(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        async with opened(path) as journal:
            await asyncio.gather(*(journal.submit(message(n)) for n in range(1, 11)))
            # No page beyond the current ones: the file is "full" for this connection.
            pages = journal._writer.exclusive(
                lambda conn: conn.execute("PRAGMA page_count").fetchone()[0]
            )
            on_writer_connection(journal, f"PRAGMA max_page_count = {pages}")
            big = [journal.submit(message(n)) for n in range(11, 2011)]
            results = await asyncio.gather(*big, return_exceptions=True)
            failed = [r for r in results if isinstance(r, StorageError)]
            acked = [r for r in results if isinstance(r, int)]
            assert len(failed) + len(acked) == len(results)
            assert failed  # at least the batch that hit the limit
            assert all("database or disk is full" in str(f) for f in failed)
            # Whatever was acknowledged is stored (a first message may fit in a free page).
            assert acked == list(range(11, 11 + len(acked)))
            # The failed batch dropped the connection; a fresh one has room again.
            last = await journal.submit(message(2011))
            assert last == 11 + len(acked)
            assert number_of(journal.read(last - 1, 1)[0].message) == 2011
            assert stored_seqs(path) == list(range(1, last + 1))

    asyncio.run(scenario())


def test_read_only_connection_fails_without_acknowledging(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            on_writer_connection(journal, "PRAGMA query_only = ON")
            with pytest.raises(StorageError, match="readonly"):
                await journal.submit(message(1))
            assert journal.last_seq() == 0
            assert await journal.submit(message(2)) == 1

    asyncio.run(scenario())


def test_closed_connection_fails_the_batch_then_reopens(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            assert await journal.submit(message(1)) == 1
            journal._writer.exclusive(lambda conn: conn.close())
            with pytest.raises(StorageError, match="closed database"):
                await journal.submit(message(2))
            assert await journal.submit(message(3)) == 2

    asyncio.run(scenario())


def test_rows_that_reached_the_disk_despite_an_error_are_not_overwritten(
    tmp_path: Path,
) -> None:
    """A commit can be reported failed yet be on disk (fsync error after the write), and
    another process may have committed meanwhile: either way the next batch is numbered
    after the newest stored row, without failing."""
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        async with opened(path) as journal:
            assert await journal.submit(message(1)) == 1
            with closing(sqlite3.connect(path, isolation_level=None)) as other:
                other.execute(
                    "INSERT INTO journal SELECT 2, device_id, module_id, enqueued_at, source,"
                    " system, app, body FROM journal WHERE seq = 1"
                )
            assert await journal.submit(message(3)) == 3
            assert await journal.submit(message(4)) == 4
            assert [number_of(e.message) for e in journal.read(0, 10)] == [1, 1, 3, 4]
            assert journal.stats.failures == 0

    asyncio.run(scenario())


def test_submit_refuses_at_once_when_too_much_is_pending(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        async with opened(path, max_pending=100, busy_timeout_s=10) as journal:
            with write_lock_held(path):
                futures = [journal.submit(message(n)) for n in range(100)]
                with pytest.raises(StorageError, match="journal overloaded"):
                    journal.submit(message(100))
                assert journal.stats.pending == 100
                await asyncio.sleep(0.05)
                assert not any(f.done() for f in futures)  # nothing acked while locked
            assert await asyncio.gather(*futures) == list(range(1, 101))
            assert await journal.submit(message(101)) == 101  # room again

    asyncio.run(scenario())


def test_close_while_commits_fail_still_settles_every_future(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        journal = SqliteJournal(path, busy_timeout_s=0.1)
        await journal.start()
        with write_lock_held(path):
            futures = [journal.submit(message(n)) for n in range(50)]
            await journal.close()
        assert all(f.done() for f in futures)
        assert all(isinstance(f.exception(), StorageError) for f in futures)

    asyncio.run(scenario())


def test_a_bug_in_the_writer_fails_the_batch_and_the_writer_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            real = journal._writer._write
            calls: list[int] = []

            def broken_once(batch: list[object]) -> object:
                calls.append(len(batch))
                if len(calls) == 1:
                    raise RuntimeError("bug")
                return real(batch)  # type: ignore[arg-type]

            monkeypatch.setattr(journal._writer, "_write", broken_once)
            with pytest.raises(StorageError, match="bug"):
                await journal.submit(message(1))
            assert await journal.submit(message(2)) == 1

    asyncio.run(scenario())


class _Death(BaseException):
    pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_writer_strands_no_future(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        journal = SqliteJournal(tmp_path / "journal.db")
        await journal.start()

        def die(batch: list[object]) -> object:
            raise _Death

        monkeypatch.setattr(journal._writer, "_write_guarded", die)
        futures = [journal.submit(message(n)) for n in range(10)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        # Nothing was committed, and no future waits forever.
        assert all(isinstance(r, StorageError) for r in results)
        await asyncio.sleep(0.01)
        with pytest.raises(StorageError):
            journal.submit(message(11))
        await journal.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))

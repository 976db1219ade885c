"""SqliteJournal: order, dense seqs, group commit, reading, waiting, restart."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.unit.adapters.journal.factories import (
    T0,
    message,
    number_of,
    opened,
    stored_seqs,
)
from wellguard.adapters.journal import SqliteJournal
from wellguard.errors import ConfigError, StorageError
from wellguard.model.message import DeviceMessage, MessageSource


def test_seqs_follow_submission_order_and_messages_read_back_intact(tmp_path: Path) -> None:
    sent = [message(n, module="edge" if n % 3 == 0 else None) for n in range(1, 301)]

    async def scenario() -> list[int]:
        async with opened(tmp_path / "journal.db") as journal:
            futures = [journal.submit(m) for m in sent]
            seqs = list(await asyncio.gather(*futures))
            assert journal.last_seq() == 300
            entries = journal.read(0, 1000)
            assert [e.seq for e in entries] == seqs
            assert [e.message for e in entries] == sent
            return seqs

    assert asyncio.run(scenario()) == list(range(1, 301))


def test_times_come_back_in_utc_to_the_microsecond(tmp_path: Path) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2026, 5, 6, 7, 8, 9, 999_999, tzinfo=plus_two)
    sent = DeviceMessage("d", None, local, MessageSource.LIFECYCLE, b"")

    async def scenario() -> DeviceMessage:
        async with opened(tmp_path / "journal.db") as journal:
            await journal.submit(sent)
            return journal.read(0, 1)[0].message

    got = asyncio.run(scenario())
    assert got.enqueued_at == local
    assert got.enqueued_at.tzinfo is UTC
    assert got.source is MessageSource.LIFECYCLE
    assert got.body == b""
    assert got.system_properties == {}


def test_many_coroutines_get_dense_unique_seqs_each_in_its_own_order(tmp_path: Path) -> None:
    writers, each = 50, 100

    async def writer(journal: SqliteJournal, w: int) -> list[tuple[int, int]]:
        acked = []
        for i in range(each):
            n = w * each + i
            acked.append((await journal.submit(message(n)), n))
        return acked

    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            results = await asyncio.gather(*(writer(journal, w) for w in range(writers)))
            all_acks = [ack for acks in results for ack in acks]
            assert sorted(seq for seq, _ in all_acks) == list(range(1, writers * each + 1))
            for acks in results:
                seqs = [seq for seq, _ in acks]
                assert seqs == sorted(seqs)
            by_seq = {e.seq: number_of(e.message) for e in journal.read(0, writers * each)}
            assert by_seq == dict(all_acks)

    asyncio.run(scenario())


def test_batches_grow_under_load_and_a_lone_message_is_a_batch_of_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db", max_batch=512) as journal:
            await journal.submit(message(0))
            assert journal.stats.last_batch_size == 1
            await asyncio.gather(*(journal.submit(message(n)) for n in range(1, 5001)))
            stats = journal.stats
            assert stats.messages == 5001
            assert stats.max_batch_size == 512
            assert stats.batches < 100  # thousands of messages, a few dozen commits
            assert stats.pending == 0
            assert stats.failures == 0
            assert stats.last_seq == 5001
            assert stats.commit_seconds_buckets[-1] == (float("inf"), stats.batches)
            counts = [count for _bound, count in stats.commit_seconds_buckets]
            assert counts == sorted(counts)
            assert 0 < stats.commit_seconds_max <= stats.commit_seconds_total

    asyncio.run(scenario())


def test_an_idle_journal_commits_at_once_even_with_a_long_delay(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db", max_delay_s=1.0) as journal:
            started = time.monotonic()
            for n in range(5):
                await journal.submit(message(n))
                await asyncio.sleep(0.01)  # the writer goes idle between messages
            assert time.monotonic() - started < 0.9

    asyncio.run(scenario())


def test_read_pages_by_seq_from_any_thread(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            await asyncio.gather(*(journal.submit(message(n)) for n in range(1, 26)))
            pages: list[list[int]] = []
            after = 0
            while page := await asyncio.to_thread(journal.read, after, 10):
                pages.append([e.seq for e in page])
                after = page[-1].seq
            assert pages == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
            assert journal.read(25, 10) == []
            assert journal.read(0, 0) == []

            found: list[int] = []
            threads = [
                threading.Thread(target=lambda: found.extend(e.seq for e in journal.read(0, 25)))
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(found) == sorted(list(range(1, 26)) * 4)

    asyncio.run(scenario())


def test_wait_for_wakes_on_commit_and_times_out_quietly(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            started = time.monotonic()
            assert await journal.wait_for(0, 0.05) == 0
            assert time.monotonic() - started >= 0.04

            waiter = asyncio.create_task(journal.wait_for(0, 5.0))
            await asyncio.sleep(0.01)
            assert not waiter.done()
            await journal.submit(message(1))
            assert await asyncio.wait_for(waiter, 1.0) == 1
            assert await journal.wait_for(0, 5.0) == 1  # already past: at once

    asyncio.run(scenario())


def test_wait_for_works_from_another_thread_and_event_loop(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            result: list[int] = []
            thread = threading.Thread(
                target=lambda: result.append(asyncio.run(journal.wait_for(0, 5.0)))
            )
            thread.start()
            await asyncio.sleep(0.05)
            await journal.submit(message(1))
            await asyncio.to_thread(thread.join, 2.0)
            assert result == [1]

    asyncio.run(scenario())


def test_close_commits_everything_submitted(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        journal = SqliteJournal(path)
        await journal.start()
        futures = [journal.submit(message(n)) for n in range(1, 1001)]
        await journal.close()
        assert all(f.done() for f in futures)
        assert [f.result() for f in futures] == list(range(1, 1001))
        with pytest.raises(StorageError, match="closed"):
            journal.submit(message(0))
        with pytest.raises(StorageError):
            journal.read(0, 1)
        await journal.close()  # idempotent

    asyncio.run(scenario())
    assert stored_seqs(path) == list(range(1, 1001))


def test_restart_continues_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal.db"  # the folder is created

    async def session(first: int, count: int) -> list[int]:
        async with opened(path) as journal:
            assert journal.last_seq() == first - 1
            return list(await asyncio.gather(*(journal.submit(message(n)) for n in range(count))))

    assert asyncio.run(session(1, 10)) == list(range(1, 11))
    assert asyncio.run(session(11, 5)) == list(range(11, 16))
    assert stored_seqs(path) == list(range(1, 16))


def test_a_message_that_cannot_be_stored_fails_alone(tmp_path: Path) -> None:
    naive = DeviceMessage("d", None, datetime(2026, 1, 1), MessageSource.TELEMETRY, b"x")
    bad_keys = DeviceMessage("d", None, T0, MessageSource.TELEMETRY, b"x", {1: "x"})  # type: ignore[dict-item]

    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            futures = [
                journal.submit(message(1)),
                journal.submit(naive),
                journal.submit(message(2)),
                journal.submit(bad_keys),
                journal.submit(message(3)),
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
            assert results[0::2] == [1, 2, 3]  # no gap where the bad ones were
            assert all(isinstance(r, StorageError) for r in results[1::2])
            assert journal.stats.failures == 2
            assert journal.stats.failed_batches == 0

    asyncio.run(scenario())


def test_cancelled_futures_do_not_withdraw_or_disturb(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "journal.db") as journal:
            first = journal.submit(message(1))
            first.cancel()
            assert await journal.submit(message(2)) == 2
            assert [number_of(e.message) for e in journal.read(0, 10)] == [1, 2]

    asyncio.run(scenario())


def test_lifecycle_errors(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = SqliteJournal(tmp_path / "journal.db")
        with pytest.raises(StorageError, match="not started"):
            journal.submit(message(1))
        with pytest.raises(StorageError, match="not started"):
            journal.read(0, 1)
        await journal.start()
        with pytest.raises(StorageError, match="starts once"):
            await journal.start()
        await journal.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "options",
    [
        {"max_batch": 0},
        {"max_delay_s": -1},
        {"synchronous": "OFF"},
        {"max_pending": 0},
        {"busy_timeout_s": 0},
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SqliteJournal(tmp_path / "journal.db", **options)  # type: ignore[arg-type]


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY, what TEXT)")
    conn.close()

    async def scenario() -> None:
        journal = SqliteJournal(path)
        with pytest.raises(StorageError, match="not a wellguard ingest journal"):
            await journal.start()

    asyncio.run(scenario())


def test_the_wal_is_copied_back_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        async with opened(path) as journal:
            for start in range(0, 20_000, 2000):
                await asyncio.gather(
                    *(journal.submit(message(n)) for n in range(start, start + 2000))
                )
            deadline = time.monotonic() + 5
            while path.stat().st_size < 2_000_000 and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a file size
                await asyncio.sleep(0.02)
            assert path.stat().st_size >= 2_000_000  # pages reached the database file
            assert journal._checkpointer.checkpoints > 0

    asyncio.run(scenario())

"""Checkpoints and compaction of the ingest journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.unit.adapters.journal.factories import message, opened, stored_seqs
from wellguard.adapters.journal import JournalRetention, SqliteJournal
from wellguard.adapters.journal.retention import compaction_point
from wellguard.errors import ConfigError, InvalidInputError


@pytest.mark.parametrize(
    ("keep_after", "checkpoints", "retention", "expected"),
    [
        (100, {}, JournalRetention(), 100),
        (100, {"routing": 40}, JournalRetention(), 40),
        (100, {"routing": 40, "export": 70}, JournalRetention(), 40),
        (30, {"routing": 40}, JournalRetention(), 30),
        (100, {"routing": 95}, JournalRetention(keep_last=10), 90),
        (100, {}, JournalRetention(consumers=("routing",)), 0),
        (100, {"routing": 60}, JournalRetention(consumers=("routing",)), 60),
        (100, {"routing": 60}, JournalRetention(consumers=("routing", "export")), 0),
        (-5, {}, JournalRetention(), 0),
    ],
)
def test_compaction_point(
    keep_after: int, checkpoints: dict[str, int], retention: JournalRetention, expected: int
) -> None:
    cut = compaction_point(keep_after, last_seq=100, checkpoints=checkpoints, retention=retention)
    assert cut == expected


def test_negative_keep_last_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        JournalRetention(keep_last=-1)


def test_checkpoints_are_kept_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def first() -> None:
        async with opened(path) as journal:
            await asyncio.gather(*(journal.submit(message(n)) for n in range(10)))
            assert journal.get_checkpoint("routing") == 0
            await asyncio.to_thread(journal.set_checkpoint, "routing", 7)
            await asyncio.to_thread(journal.set_checkpoint, "export", 3)
            await asyncio.to_thread(journal.set_checkpoint, "export", 2)  # may move back
            with pytest.raises(InvalidInputError):
                journal.set_checkpoint("routing", 11)  # beyond what exists
            with pytest.raises(InvalidInputError):
                journal.set_checkpoint("routing", -1)

    async def second() -> None:
        async with opened(path) as journal:
            assert journal.get_checkpoint("routing") == 7
            assert journal.checkpoints() == {"routing": 7, "export": 2}
            journal.drop_checkpoint("export")
            assert journal.checkpoints() == {"routing": 7}

    asyncio.run(first())
    asyncio.run(second())


def test_compact_deletes_only_what_every_consumer_passed(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def scenario() -> None:
        retention = JournalRetention(consumers=("routing",))
        async with opened(path, retention=retention) as journal:
            await asyncio.gather(*(journal.submit(message(n)) for n in range(1, 12_001)))
            assert journal.compact(12_000) == 0  # routing has not run yet
            journal.set_checkpoint("routing", 11_000)
            journal.set_checkpoint("export", 6_000)
            assert journal.compact(12_000) == 6_000  # several chunks
            assert journal.read(0, 1)[0].seq == 6_001
            assert journal.compact(12_000) == 0
            journal.drop_checkpoint("export")
            assert journal.compact(10_500) == 4_500
            assert journal.read(0, 1)[0].seq == 10_501
            # New messages keep their place after compaction.
            assert await journal.submit(message(0)) == 12_001

    asyncio.run(scenario())
    assert stored_seqs(path) == list(range(10_501, 12_002))


def test_seq_continues_after_everything_was_compacted_and_the_journal_reopened(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"

    async def fill_and_compact() -> None:
        async with opened(path) as journal:
            await asyncio.gather(*(journal.submit(message(n)) for n in range(1, 21)))
            journal.set_checkpoint("routing", 20)
            assert journal.compact(20) == 20
            assert journal.read(0, 10) == []

    async def reopen() -> int:
        journal = SqliteJournal(path)
        await journal.start()
        try:
            assert journal.last_seq() == 20
            return await journal.submit(message(21))
        finally:
            await journal.close()

    asyncio.run(fill_and_compact())
    assert asyncio.run(reopen()) == 21

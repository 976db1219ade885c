"""The ingest ports: values, the public names, and that the embedded journal fits them."""

from __future__ import annotations

import dataclasses
import inspect
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

import wellguard.core.ingest as ingest
from wellguard.adapters.journal import SqliteJournal
from wellguard.core.ingest import IngestJournal, JournalCheckpoints, JournalEntry, JournalStats
from wellguard.model.message import DeviceMessage, MessageSource


def test_all_is_exact() -> None:
    public = {
        name
        for name, value in vars(ingest).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(ingest.__all__) == sorted(public)


def test_journal_entry_is_a_frozen_value() -> None:
    message = DeviceMessage(
        "d", None, datetime(2026, 1, 1, tzinfo=UTC), MessageSource.TELEMETRY, b""
    )
    entry = JournalEntry(seq=1, message=message)
    assert entry == JournalEntry(1, message)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.seq = 2  # type: ignore[misc]
    assert not hasattr(entry, "__dict__")


def test_stats_defaults_keep_old_constructors_working() -> None:
    stats = JournalStats(
        batches=0,
        messages=0,
        last_batch_size=0,
        max_batch_size=0,
        commit_seconds_total=0.0,
        commit_seconds_max=0.0,
        pending=0,
        failures=0,
    )
    assert stats.commit_seconds_buckets == ()


@pytest.mark.parametrize("port", [IngestJournal, JournalCheckpoints])
def test_sqlite_journal_has_every_method_of_the_port(port: type, tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "journal.db")
    members = [name for name in vars(port) if not name.startswith("_")]
    assert members
    for name in members:
        wanted = inspect.signature(getattr(port, name))
        got = inspect.signature(getattr(journal, name))
        assert list(got.parameters) == list(wanted.parameters)[1:], name  # minus self
        assert inspect.iscoroutinefunction(getattr(port, name)) == (
            inspect.iscoroutinefunction(getattr(journal, name))
        ), name

"""The telemetry store, on SQLite and PostgreSQL alike (the ``engine`` fixture)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect

from wellguard.adapters.sql.engine import migrate
from wellguard.adapters.sql.schema_hub import telemetry
from wellguard.adapters.sql.telemetry_store import TelemetryStore
from wellguard.core.ingest import JournalEntry
from wellguard.errors import StorageError
from wellguard.model.message import DeviceMessage, MessageSource

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def entry(
    seq: int,
    *,
    device: str = "well-01",
    module: str | None = None,
    at: datetime | None = None,
    body: bytes | None = None,
    message_id: str | None = None,
) -> JournalEntry:
    return JournalEntry(
        seq=seq,
        message=DeviceMessage(
            device_id=device,
            module_id=module,
            enqueued_at=at if at is not None else T0 + timedelta(seconds=seq),
            source=MessageSource.TELEMETRY,
            body=body if body is not None else f"reading {seq}".encode(),
            system_properties={"messageId": message_id or f"m-{seq}", "contentType": "text/plain"},
            app_properties={"seq": str(seq), "ünïcode": "✓"},
        ),
    )


@pytest.fixture
def store(engine: Engine) -> TelemetryStore:
    migrate(engine)
    return TelemetryStore(engine)


def test_migration_creates_the_table_the_schema_describes(engine: Engine) -> None:
    migrate(engine)
    found = inspect(engine)
    columns = {c["name"]: c["nullable"] for c in found.get_columns("telemetry")}
    assert columns == {c.name: c.nullable for c in telemetry.columns}
    indexes = {i["name"]: i["column_names"] for i in found.get_indexes("telemetry")}
    assert indexes == {i.name: [c.name for c in i.columns] for i in telemetry.indexes}
    assert found.get_pk_constraint("telemetry")["constrained_columns"] == ["seq"]


def test_entries_round_trip(store: TelemetryStore) -> None:
    sent = [
        entry(1, body=b"\x00\xff binary \x80"),
        entry(2, module="edge-agent"),
        entry(3, at=datetime(2026, 4, 1, 10, 0, 0, 654321, tzinfo=UTC)),
    ]
    assert store.insert_many(sent) == 3
    assert store.query("well-01") == sent
    assert store.count("well-01") == 3


def test_inserting_a_seq_again_is_skipped(store: TelemetryStore) -> None:
    assert store.insert_many([entry(1), entry(2), entry(3)]) == 3
    # Redelivery after a crash: a batch that overlaps what is stored.
    changed = entry(2, body=b"must not replace the stored one")
    assert store.insert_many([entry(1), changed, entry(3), entry(4), entry(5)]) == 2
    assert store.insert_many([entry(5), entry(5)]) == 0
    assert store.insert_many([]) == 0
    got = store.query("well-01", limit=10)
    assert [e.seq for e in got] == [1, 2, 3, 4, 5]
    assert got[1].message.body == b"reading 2"


def test_concurrent_redelivery_stores_each_seq_once(store: TelemetryStore) -> None:
    batch = [entry(seq) for seq in range(1, 201)]
    counts: list[int] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            counts.append(store.insert_many(batch))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(counts) == 200
    assert store.count("well-01") == 200


def test_query_pages_by_seq_within_a_time_window(store: TelemetryStore) -> None:
    store.insert_many([entry(seq) for seq in range(1, 21)])
    store.insert_many([entry(seq, device="well-02") for seq in range(21, 26)])
    start, end = T0 + timedelta(seconds=5), T0 + timedelta(seconds=15)  # seqs 5-14
    pages: list[list[int]] = []
    after = None
    while page := store.query("well-01", start=start, end=end, after_seq=after, limit=4):
        pages.append([e.seq for e in page])
        after = page[-1].seq
    assert pages == [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14]]
    assert [e.seq for e in store.query("well-02", limit=100)] == [21, 22, 23, 24, 25]
    assert store.query("well-03") == []
    assert store.query("well-01", limit=0) == []
    assert store.count("well-02") == 5


def test_purge_before_deletes_what_is_older(store: TelemetryStore) -> None:
    store.insert_many([entry(seq) for seq in range(1, 11)])
    assert store.purge_before(T0 + timedelta(seconds=4)) == 3
    assert [e.seq for e in store.query("well-01", limit=100)] == list(range(4, 11))
    assert store.purge_before(T0) == 0


def test_long_message_ids_are_cut_in_the_column_but_kept_in_full(store: TelemetryStore) -> None:
    long_id = "x" * 300
    store.insert_many([entry(1, message_id=long_id)])
    (got,) = store.query("well-01")
    assert got.message.message_id == long_id


def test_failures_are_storage_errors(engine: Engine) -> None:
    store = TelemetryStore(engine)  # not migrated: no table
    with pytest.raises(StorageError):
        store.insert_many([entry(1)])
    with pytest.raises(StorageError):
        store.query("well-01")

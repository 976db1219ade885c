"""Batches of device changes (bulk registry operations) on SQLite and PostgreSQL alike:
one transaction, and a change that fails is undone alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import Engine, event

from tests.unit.adapters.sql.test_registry_store import (
    BOX,
    add_device,
    add_module,
    make_device,
    make_twin,
    record,
    rows_of_device,
)
from wellguard.adapters.sql.engine import migrate
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.core.registry.audit import find_chain_break
from wellguard.core.registry.ports import DeviceChange, InsertDevice, RemoveDevice, ReplaceDevice
from wellguard.errors import AlreadyExistsError, NotFoundError, PreconditionFailedError


@pytest.fixture
def store(engine: Engine) -> SqlRegistryStore:
    migrate(engine)
    return SqlRegistryStore(engine, BOX)


def insert(device_id: str) -> InsertDevice:
    return InsertDevice(
        make_device(device_id), make_twin(device_id), record("device.create", device_id)
    )


def audited(store: SqlRegistryStore) -> list[tuple[str, str]]:
    entries = list(store.iter_audit())
    assert find_chain_break(entries) is None
    return [(e.record.action, e.record.target) for e in entries]


def test_a_batch_that_applies_is_one_transaction_audited_change_by_change(
    store: SqlRegistryStore,
) -> None:
    add_device(store, "old")
    add_device(store, "retired")
    add_module(store, "retired", "agent")
    moved = replace(make_device("old", etag="etag-2"), status_reason="moved")
    changes: list[DeviceChange] = [
        *(insert(f"new-{n}") for n in range(3)),
        ReplaceDevice(moved, "etag-1", record("device.update", "old")),
        RemoveDevice("retired", "etag-1", record("device.delete", "retired")),
    ]
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: commits.append(1))

    assert store.apply_device_changes(changes) == [None] * 5

    assert len(commits) == 1
    assert set(store.get_devices(["new-0", "new-1", "new-2", "old", "retired"])) == {
        "new-0",
        "new-1",
        "new-2",
        "old",
    }
    assert store.get_twin("new-2", None) == make_twin("new-2")
    assert store.get_device("old") == moved
    for table in ("twins", "modules"):
        assert rows_of_device(store.engine, table, "retired") == 0
    assert audited(store)[3:] == [
        ("device.create", "new-0"),
        ("device.create", "new-1"),
        ("device.create", "new-2"),
        ("device.update", "old"),
        ("device.delete", "retired"),
    ]


def test_changes_that_fail_are_undone_alone_and_answered_in_their_place(
    store: SqlRegistryStore,
) -> None:
    add_device(store, "exists")
    moved = add_device(store, "moved", etag="etag-9")
    changes: list[DeviceChange] = [
        insert("a"),
        insert("exists"),
        ReplaceDevice(make_device("moved", etag="e2"), "etag-1", record("device.update", "moved")),
        ReplaceDevice(make_device("nobody"), None, record("device.update", "nobody")),
        RemoveDevice("gone", None, record("device.delete", "gone")),
        insert("b"),
    ]

    outcomes = store.apply_device_changes(changes)

    assert [type(o) for o in outcomes] == [
        type(None),
        AlreadyExistsError,
        PreconditionFailedError,
        NotFoundError,
        NotFoundError,
        type(None),
    ]
    assert str(outcomes[1]) == "device 'exists' already exists"
    assert set(store.get_devices(["a", "b", "exists", "moved"])) == {"a", "b", "exists", "moved"}
    assert store.get_device("moved") == moved
    assert rows_of_device(store.engine, "twins", "exists") == 1
    assert audited(store)[2:] == [("device.create", "a"), ("device.create", "b")]


def test_a_device_named_twice_is_changed_in_the_order_given(store: SqlRegistryStore) -> None:
    add_device(store, "swap")
    fresh = make_device("swap", etag="fresh")
    changes: list[DeviceChange] = [
        RemoveDevice("swap", "etag-1", record("device.delete", "swap")),
        replace(insert("swap"), device=fresh),
    ]

    assert store.apply_device_changes(changes) == [None, None]

    assert store.get_device("swap") == fresh
    assert audited(store)[1:] == [("device.delete", "swap"), ("device.create", "swap")]

"""The bulk registry operation: many device changes in one call, each applied on its own,
validated, audited and announced exactly as the single-device calls do it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event

from tests.unit.core.registry.fakes import ADMIN, START, FakeClock
from tests.unit.core.registry.test_service import KEY_A, KEY_B, SAS
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.core.registry import AuthSpec, Registry
from wellguard.core.registry.bulk import (
    MAX_IMPORT_ENTRIES,
    ImportEntry,
    ImportMode,
    ImportResult,
)
from wellguard.core.registry.events import ChangeKind, RegistryChange
from wellguard.core.registry.specs import DeviceSettings
from wellguard.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
)
from wellguard.model.device import AuthType, DeviceStatus, LifecycleState


def create(device_id: str, **fields: Any) -> ImportEntry:
    return ImportEntry(device_id, ImportMode.CREATE, **fields)


def settings(auth: AuthSpec = SAS, **fields: Any) -> DeviceSettings:
    return DeviceSettings(auth, **fields)


def actions(registry: Registry) -> list[tuple[str, str]]:
    return [(e.record.action, e.record.target) for e in registry.store.iter_audit()]


def failures(result: ImportResult) -> list[tuple[int, type[Exception], str]]:
    return [(f.index, type(f.error), f.entry.device_id) for f in result.failures]


@pytest.fixture
def notices(registry: Registry) -> list[RegistryChange]:
    seen: list[RegistryChange] = []
    registry.notifier.subscribe(seen.append)
    return seen


def commits(store: SqlRegistryStore) -> list[int]:
    """A list that grows by one for each committed transaction of ``store``."""
    counted: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: counted.append(1))
    return counted


def test_a_hundred_devices_are_created_in_one_transaction(
    registry: Registry, store: SqlRegistryStore, notices: list[RegistryChange]
) -> None:
    ids = [f"well-{n:03d}" for n in range(MAX_IMPORT_ENTRIES)]
    committed = commits(store)

    result = registry.bulk_import([create(i) for i in ids], actor=ADMIN)

    assert result == ImportResult(applied=100)
    assert result.succeeded
    assert len(committed) == 1
    assert [d.device_id for d in registry.list_devices(after=None, limit=1000)] == ids
    keys = {registry.get_device(i).authentication.primary_key for i in ids}
    assert len(keys) == 100  # hub-generated, one each
    assert registry.get_device(ids[0]).created == START
    assert registry.get_twin(ids[-1])[0].version == 1
    # Audited and announced one by one, as PUT /devices/{id} would have.
    assert actions(registry) == [("device.create", i) for i in ids]
    assert registry.verify_audit() == (100, None)
    assert [(n.kind, n.device_id) for n in notices] == [(ChangeKind.IDENTITY, i) for i in ids]


def test_created_devices_take_the_settings_keys_and_twin_they_are_given(
    registry: Registry,
) -> None:
    given = settings(
        AuthSpec(AuthType.SAS, primary_key=KEY_A, secondary_key=KEY_B),
        status=DeviceStatus.DISABLED,
        status_reason="not yet installed",
        iot_edge=True,
    )
    entries = [
        create("well-01", settings=given, tags={"site": "permian"}, desired={"rate": 5}),
        create("well-02", settings=settings(AuthSpec(AuthType.CERTIFICATE_AUTHORITY))),
    ]

    assert registry.bulk_import(entries, actor=ADMIN).succeeded

    device = registry.get_device("well-01")
    assert (device.authentication.primary_key, device.authentication.secondary_key) == (
        KEY_A,
        KEY_B,
    )
    assert (device.status, device.status_reason, device.iot_edge) == (
        DeviceStatus.DISABLED,
        "not yet installed",
        True,
    )
    twin = registry.get_twin("well-01")[0]
    assert (twin.tags, twin.desired) == ({"site": "permian"}, {"rate": 5})
    assert registry.get_device("well-02").authentication.type is AuthType.CERTIFICATE_AUTHORITY


def test_entries_that_cannot_apply_are_reported_and_the_others_applied(
    registry: Registry, notices: list[RegistryChange]
) -> None:
    registry.create_device("exists", SAS, actor=ADMIN)
    doomed = registry.create_device("doomed", SAS, actor=ADMIN)
    notices.clear()
    bad_key = settings(AuthSpec(AuthType.SAS, primary_key="c2hvcnQ="))
    entries = [
        create("new-1"),
        create("exists"),
        ImportEntry("missing", ImportMode.UPDATE),
        create("bad-key", settings=bad_key),
        ImportEntry("doomed", ImportMode.DELETE_IF_MATCH_ETAG, etag="stale"),
        ImportEntry("gone", ImportMode.DELETE),
        create("exists", module_id="agent"),
        create("bad-tags", tags={"$reserved": 1}),
        ImportEntry("no-twin", ImportMode.UPDATE_TWIN, tags={"site": "x"}),
        create("new-2"),
    ]

    result = registry.bulk_import(entries, actor=ADMIN)

    assert not result.succeeded
    assert result.applied == 2
    assert failures(result) == [
        (1, AlreadyExistsError, "exists"),
        (2, NotFoundError, "missing"),
        (3, InvalidInputError, "bad-key"),
        (4, PreconditionFailedError, "doomed"),
        (5, NotFoundError, "gone"),
        (6, InvalidInputError, "exists"),  # modules are refused, one by one
        (7, InvalidInputError, "bad-tags"),
        (8, NotFoundError, "no-twin"),
    ]
    assert "module identities are not supported" in str(result.failures[5].error)
    assert "'$reserved' is not allowed" in str(result.failures[6].error)
    assert {d.device_id for d in registry.list_devices(after=None, limit=10)} == {
        "exists",
        "doomed",
        "new-1",
        "new-2",
    }
    assert registry.get_device("doomed") == doomed
    assert actions(registry)[-2:] == [("device.create", "new-1"), ("device.create", "new-2")]
    assert [n.device_id for n in notices] == ["new-1", "new-2"]


def test_updates_follow_the_rules_of_put_with_if_match(
    registry: Registry, clock: FakeClock
) -> None:
    first = registry.create_device(
        "well-01",
        AuthSpec(AuthType.SAS, primary_key=KEY_A, secondary_key=KEY_B),
        actor=ADMIN,
    )
    registry.create_device("well-02", SAS, actor=ADMIN)
    clock.advance(60)
    entries = [
        ImportEntry(
            "well-01",
            ImportMode.UPDATE_IF_MATCH_ETAG,
            settings(status=DeviceStatus.DISABLED, status_reason="stolen"),
            etag=first.etag,
        ),
        ImportEntry("well-02", ImportMode.UPDATE_IF_MATCH_ETAG, etag="stale"),
    ]

    result = registry.bulk_import(entries, actor=ADMIN)

    assert failures(result) == [(1, PreconditionFailedError, "well-02")]
    updated = registry.get_device("well-01")
    assert (updated.status, updated.status_reason) == (DeviceStatus.DISABLED, "stolen")
    assert updated.status_updated == START + (clock.now - START)
    assert updated.etag != first.etag
    # Keys the entry did not restate are kept, as with a single update.
    assert updated.authentication == first.authentication
    record = list(registry.store.iter_audit())[-1].record
    assert (record.action, record.target, record.details) == (
        "device.update",
        "well-01",
        {"status": "disabled", "auth": "sas", "credentials_changed": False},
    )


def test_a_decommissioned_device_can_be_deleted_but_not_updated(registry: Registry) -> None:
    registry.create_device("well-01", SAS, actor=ADMIN)
    registry.create_device("well-02", SAS, actor=ADMIN)
    for device_id in ("well-01", "well-02"):
        registry.set_lifecycle(device_id, LifecycleState.DECOMMISSIONED, None, actor=ADMIN)

    result = registry.bulk_import(
        [ImportEntry("well-01", ImportMode.UPDATE), ImportEntry("well-02", ImportMode.DELETE)],
        actor=ADMIN,
    )

    assert failures(result) == [(0, InvalidInputError, "well-01")]
    assert "decommissioned" in str(result.failures[0].error)
    assert [d.device_id for d in registry.list_devices(after=None, limit=10)] == ["well-01"]


def test_deletes_take_modules_and_twins_along(registry: Registry) -> None:
    current = registry.create_device("well-01", SAS, actor=ADMIN)
    registry.create_module("well-01", "agent", SAS, actor=ADMIN)

    result = registry.bulk_import(
        [ImportEntry("well-01", ImportMode.DELETE_IF_MATCH_ETAG, etag=current.etag)], actor=ADMIN
    )

    assert result.succeeded
    assert registry.store.get_module("well-01", "agent") is None
    assert registry.store.get_twin("well-01", None) is None
    assert actions(registry)[-1] == ("device.delete", "well-01")


def test_twin_modes_merge_like_a_patch_and_check_the_twin_etag(
    registry: Registry, notices: list[RegistryChange]
) -> None:
    for device_id in ("well-01", "well-02"):
        registry.create_device(device_id, SAS, actor=ADMIN)
    registry.update_twin(
        "well-01",
        None,
        tags={"site": "permian", "rack": 3},
        desired=None,
        replace_all=False,
        expected_etag=None,
        actor=ADMIN,
    )
    notices.clear()
    entries = [
        ImportEntry("well-01", ImportMode.UPDATE_TWIN, tags={"rack": None}, desired={"rate": 5}),
        ImportEntry(
            "well-02", ImportMode.UPDATE_TWIN_IF_MATCH_ETAG, twin_etag="stale", tags={"a": 1}
        ),
    ]

    result = registry.bulk_import(entries, actor=ADMIN)

    assert failures(result) == [(1, PreconditionFailedError, "well-02")]
    twin = registry.get_twin("well-01")[0]
    assert (twin.tags, twin.desired, twin.desired_version) == ({"site": "permian"}, {"rate": 5}, 2)
    assert registry.get_twin("well-02")[0].tags == {}
    assert actions(registry)[-1] == ("twin.update", "well-01")
    assert [(n.kind, n.device_id, n.patch) for n in notices] == [
        (ChangeKind.DESIRED, "well-01", {"rate": 5, "$version": 2})
    ]


def test_a_change_the_store_refuses_at_write_time_is_rolled_back_alone(
    registry: Registry, store: SqlRegistryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer can create or change a device between the registry's read and its
    write; the store then refuses that change and keeps the others of the batch."""
    registry.create_device("raced", SAS, actor=ADMIN)
    monkeypatch.setattr(store, "get_devices", lambda _ids: {})  # the read saw nothing yet
    committed = commits(store)

    result = registry.bulk_import([create("a"), create("raced"), create("b")], actor=ADMIN)

    assert failures(result) == [(1, AlreadyExistsError, "raced")]
    assert len(committed) == 1
    assert [d.device_id for d in registry.list_devices(after=None, limit=10)] == [
        "a",
        "b",
        "raced",
    ]
    assert actions(registry)[-2:] == [("device.create", "a"), ("device.create", "b")]
    assert registry.verify_audit() == (3, None)


def test_too_many_entries_or_a_repeated_device_refuse_the_whole_call(registry: Registry) -> None:
    too_many = [create(f"well-{n:03d}") for n in range(MAX_IMPORT_ENTRIES + 1)]
    with pytest.raises(InvalidInputError, match="at most 100 entries, not 101"):
        registry.bulk_import(too_many, actor=ADMIN)

    repeated = [create("well-01"), create("well-02"), ImportEntry("well-01", ImportMode.DELETE)]
    with pytest.raises(InvalidInputError, match="repeated: well-01"):
        registry.bulk_import(repeated, actor=ADMIN)

    assert registry.list_devices(after=None, limit=10) == []
    assert actions(registry) == []


def test_an_empty_call_changes_nothing(registry: Registry) -> None:
    assert registry.bulk_import([], actor=ADMIN) == ImportResult(applied=0)


def test_expected_etag_is_the_one_the_mode_checks() -> None:
    entry = ImportEntry("d", ImportMode.UPDATE, etag="e", twin_etag="t")
    assert entry.expected_etag is None
    assert replace(entry, mode=ImportMode.UPDATE_IF_MATCH_ETAG).expected_etag == "e"
    assert replace(entry, mode=ImportMode.DELETE_IF_MATCH_ETAG).expected_etag == "e"
    assert replace(entry, mode=ImportMode.UPDATE_TWIN_IF_MATCH_ETAG).expected_etag == "t"
    assert replace(entry, mode=ImportMode.UPDATE_TWIN).expected_etag is None

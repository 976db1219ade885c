"""The SQL registry store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, inspect, select, text, update

from wellguard.adapters.sql import schema as t
from wellguard.adapters.sql.engine import has_schema, migrate
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.core.identity.keys import generate_symmetric_key
from wellguard.core.registry.audit import GENESIS, find_chain_break
from wellguard.core.secretbox import SecretBox
from wellguard.errors import (
    AlreadyExistsError,
    NotFoundError,
    PkiError,
    PreconditionFailedError,
)
from wellguard.model.audit import AuditEntry, AuditRecord
from wellguard.model.certificate import IssuedCertificate
from wellguard.model.configuration import Configuration
from wellguard.model.device import (
    Authentication,
    AuthType,
    ConnectionState,
    Device,
    DeviceStatus,
    LifecycleState,
    Module,
)
from wellguard.model.policy import AccessRights, SharedAccessPolicy
from wellguard.model.twin import Twin

BOX = SecretBox(bytes(range(32)))
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


# -- builders -------------------------------------------------------------------------


def record(action: str, target: str = "-", *, at: datetime = T0, **details: Any) -> AuditRecord:
    return AuditRecord(
        at=at,
        actor="admin@test",
        action=action,
        target=target,
        source="127.0.0.1:50000",
        details=details,
    )


def sas() -> Authentication:
    return Authentication(
        type=AuthType.SAS,
        primary_key=generate_symmetric_key(),
        secondary_key=generate_symmetric_key(),
    )


def make_device(
    device_id: str,
    *,
    etag: str = "etag-1",
    auth: Authentication | None = None,
    status: DeviceStatus = DeviceStatus.ENABLED,
    connection: ConnectionState = ConnectionState.DISCONNECTED,
) -> Device:
    return Device(
        device_id=device_id,
        generation_id="638000000000000001",
        etag=etag,
        status=status,
        status_reason=None,
        status_updated=T0,
        authentication=auth or sas(),
        connection_state=connection,
        connection_state_updated=None,
        last_activity=None,
        c2d_count=0,
        iot_edge=False,
        lifecycle=LifecycleState.PROVISIONED,
        created=T0,
        updated=T0,
    )


def make_module(device_id: str, module_id: str, *, etag: str = "etag-1") -> Module:
    return Module(
        device_id=device_id,
        module_id=module_id,
        generation_id="638000000000000002",
        etag=etag,
        authentication=sas(),
        managed_by=None,
        connection_state=ConnectionState.DISCONNECTED,
        connection_state_updated=None,
        last_activity=None,
        c2d_count=0,
        created=T0,
        updated=T0,
    )


def make_twin(device_id: str, module_id: str | None = None, **fields: Any) -> Twin:
    return Twin(device_id=device_id, module_id=module_id, etag="twin-1", version=1, **fields)


def add_device(store: SqlRegistryStore, device_id: str, **kwargs: Any) -> Device:
    device = make_device(device_id, **kwargs)
    store.insert_device(device, make_twin(device_id), record("device.create", device_id))
    return device


def add_module(store: SqlRegistryStore, device_id: str, module_id: str) -> Module:
    module = make_module(device_id, module_id)
    target = f"{device_id}/{module_id}"
    store.insert_module(module, make_twin(device_id, module_id), record("module.create", target))
    return module


def make_certificate(serial: int, device_id: str, not_after: datetime) -> IssuedCertificate:
    return IssuedCertificate(
        serial=serial,
        device_id=device_id,
        subject=f"CN={device_id}",
        not_before=T0,
        not_after=not_after,
        sha256_thumbprint=f"{serial:064X}"[-64:],
        pem=f"-----BEGIN CERTIFICATE-----\n{serial}\n-----END CERTIFICATE-----\n",
    )


def make_configuration(
    configuration_id: str, *, etag: str = "c-1", priority: int = 10
) -> Configuration:
    return Configuration(
        configuration_id=configuration_id,
        etag=etag,
        schema_version="1.0",
        labels={"site": "north"},
        content={"deviceContent": {"properties.desired.interval": 30}},
        target_condition="tags.site = 'north'",
        priority=priority,
        metrics={"queries": {}},
        created=T0,
        updated=T0,
    )


def audit_entries(store: SqlRegistryStore) -> list[AuditEntry]:
    return list(store.iter_audit())


def raw_row(engine: Engine, sql: str, **params: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text(sql), params).mappings().one())


def rows_of_device(engine: Engine, table: str, device_id: str) -> int:
    with engine.connect() as conn:
        count = conn.execute(
            text(f"SELECT count(*) FROM {table} WHERE device_id = :d"), {"d": device_id}
        ).scalar_one()
    return int(count)


@pytest.fixture
def store(engine: Engine) -> SqlRegistryStore:
    migrate(engine)
    return SqlRegistryStore(engine, BOX)


# -- schema ---------------------------------------------------------------------------


REGISTRY_TABLES = {
    "devices",
    "modules",
    "twins",
    "policies",
    "certificates",
    "configurations",
    "audit_log",
    "security_events",
}


def _schema_state(engine: Engine) -> tuple[list[str], list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        versions = [tuple(row) for row in conn.execute(text("SELECT * FROM alembic_version"))]
    return sorted(inspect(engine).get_table_names()), versions


def test_migrate_creates_the_schema_and_a_second_run_changes_nothing(engine: Engine) -> None:
    assert not has_schema(engine)
    migrate(engine)
    assert has_schema(engine)
    before = _schema_state(engine)
    assert set(before[0]) >= REGISTRY_TABLES
    assert len(before[1]) == 1
    store = SqlRegistryStore(engine, BOX)
    device = add_device(store, "well-01")

    migrate(engine)

    assert _schema_state(engine) == before
    assert store.get_device("well-01") == device
    assert len(audit_entries(store)) == 1


# -- devices --------------------------------------------------------------------------


def test_device_round_trips_with_aware_utc_times(store: SqlRegistryStore) -> None:
    cest = timezone(timedelta(hours=2))
    device = replace(
        make_device("well-01"),
        status=DeviceStatus.DISABLED,
        status_reason="pump replaced — wartung",
        status_updated=datetime(2026, 3, 1, 14, 0, 0, 1, tzinfo=cest),
        connection_state=ConnectionState.CONNECTED,
        connection_state_updated=T0 + timedelta(seconds=5),
        last_activity=T0 + timedelta(seconds=6),
        c2d_count=3,
        iot_edge=True,
        lifecycle=LifecycleState.MAINTENANCE,
    )
    store.insert_device(device, make_twin("well-01"), record("device.create", "well-01"))

    stored = store.get_device("well-01")

    assert stored == device
    assert stored is not None
    assert stored.status_updated.tzinfo is UTC
    assert stored.status_updated == datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert store.get_device("well-02") is None


def test_list_devices_pages_through_every_device_once_in_id_order(
    store: SqlRegistryStore,
) -> None:
    ids = ["well-07", "well-02", "pump-1", "well-10", "well-01", "tank-3", "well-03"]
    for device_id in ids:
        add_device(store, device_id)

    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = [d.device_id for d in store.list_devices(after=after, limit=3)]
        if not page:
            break
        pages.append(page)
        after = page[-1]

    assert pages == [
        ["pump-1", "tank-3", "well-01"],
        ["well-02", "well-03", "well-07"],
        ["well-10"],
    ]


def test_inserting_an_existing_device_is_refused_and_changes_nothing(
    store: SqlRegistryStore,
) -> None:
    original = add_device(store, "well-01")

    with pytest.raises(AlreadyExistsError) as caught:
        add_device(store, "well-01", etag="etag-2")

    assert caught.value.key == "well-01"
    assert store.get_device("well-01") == original
    assert [e.record.action for e in audit_entries(store)] == ["device.create"]


def test_update_device_with_the_current_etag_replaces_it(store: SqlRegistryStore) -> None:
    add_device(store, "well-01")
    changed = replace(make_device("well-01", etag="etag-2"), status=DeviceStatus.DISABLED)

    store.update_device(changed, "etag-1", record("device.update", "well-01"))

    assert store.get_device("well-01") == changed


def test_update_device_with_a_stale_etag_is_refused_and_changes_nothing(
    store: SqlRegistryStore,
) -> None:
    original = add_device(store, "well-01")
    store.update_device(
        make_device("well-01", etag="etag-2", auth=original.authentication),
        "etag-1",
        record("device.update", "well-01"),
    )
    current = store.get_device("well-01")

    with pytest.raises(PreconditionFailedError):
        store.update_device(
            make_device("well-01", etag="etag-3"), "etag-1", record("device.update", "well-01")
        )

    assert store.get_device("well-01") == current
    assert len(audit_entries(store)) == 2


def test_update_device_without_an_etag_overwrites_whatever_is_there(
    store: SqlRegistryStore,
) -> None:
    add_device(store, "well-01")
    changed = make_device("well-01", etag="etag-9")

    store.update_device(changed, None, record("device.update", "well-01"))

    assert store.get_device("well-01") == changed


def test_update_of_a_missing_device_is_not_found(store: SqlRegistryStore) -> None:
    with pytest.raises(NotFoundError):
        store.update_device(make_device("ghost"), "etag-1", record("device.update", "ghost"))
    with pytest.raises(NotFoundError):
        store.update_device(make_device("ghost"), None, record("device.update", "ghost"))
    assert audit_entries(store) == []


def test_delete_device_removes_its_modules_and_twins_only(store: SqlRegistryStore) -> None:
    for device_id in ("well-01", "well-02"):
        add_device(store, device_id)
        add_module(store, device_id, "agent")
        add_module(store, device_id, "pump")

    store.delete_device("well-01", "etag-1", record("device.delete", "well-01"))

    assert store.get_device("well-01") is None
    assert store.list_modules("well-01") == []
    assert store.get_twin("well-01", None) is None
    assert store.get_twin("well-01", "agent") is None
    assert rows_of_device(store.engine, "modules", "well-01") == 0
    assert rows_of_device(store.engine, "twins", "well-01") == 0
    assert [m.module_id for m in store.list_modules("well-02")] == ["agent", "pump"]
    assert rows_of_device(store.engine, "twins", "well-02") == 3


def test_delete_device_with_a_stale_etag_keeps_modules_and_twins(
    store: SqlRegistryStore,
) -> None:
    add_device(store, "well-01")
    add_module(store, "well-01", "agent")

    with pytest.raises(PreconditionFailedError):
        store.delete_device("well-01", "etag-0", record("device.delete", "well-01"))
    with pytest.raises(NotFoundError):
        store.delete_device("ghost", None, record("device.delete", "ghost"))

    assert store.get_device("well-01") is not None
    assert [m.module_id for m in store.list_modules("well-01")] == ["agent"]
    assert rows_of_device(store.engine, "twins", "well-01") == 2
    assert [e.record.action for e in audit_entries(store)] == ["device.create", "module.create"]


# -- modules --------------------------------------------------------------------------


def test_module_insert_get_update_delete(store: SqlRegistryStore) -> None:
    add_device(store, "well-01")
    module = add_module(store, "well-01", "agent")
    assert store.get_module("well-01", "agent") == module
    assert store.get_twin("well-01", "agent") == make_twin("well-01", "agent")

    with pytest.raises(AlreadyExistsError):
        add_module(store, "well-01", "agent")
    with pytest.raises(NotFoundError):
        add_module(store, "ghost", "agent")

    changed = replace(module, etag="etag-2", managed_by="IotEdge")
    with pytest.raises(PreconditionFailedError):
        store.update_module(changed, "etag-0", record("module.update"))
    store.update_module(changed, "etag-1", record("module.update"))
    assert store.get_module("well-01", "agent") == changed

    with pytest.raises(PreconditionFailedError):
        store.delete_module("well-01", "agent", "etag-1", record("module.delete"))
    store.delete_module("well-01", "agent", "etag-2", record("module.delete"))
    assert store.get_module("well-01", "agent") is None
    assert store.get_twin("well-01", "agent") is None
    assert store.get_twin("well-01", None) is not None
    with pytest.raises(NotFoundError):
        store.delete_module("well-01", "agent", None, record("module.delete"))


# -- secrets at rest ------------------------------------------------------------------


def test_symmetric_keys_are_not_stored_in_plain_text(store: SqlRegistryStore) -> None:
    device = add_device(store, "well-01")
    module = add_module(store, "well-01", "agent")
    policy = SharedAccessPolicy(
        "service", AccessRights.SERVICE_CONNECT, generate_symmetric_key(), generate_symmetric_key()
    )
    store.put_policy(policy, record("policy.create", "service"))

    stored = {
        "device": raw_row(store.engine, "SELECT * FROM devices WHERE device_id = 'well-01'"),
        "module": raw_row(store.engine, "SELECT * FROM modules WHERE module_id = 'agent'"),
        "policy": raw_row(store.engine, "SELECT * FROM policies WHERE name = 'service'"),
    }
    secrets = {
        "device": (device.authentication.primary_key, device.authentication.secondary_key),
        "module": (module.authentication.primary_key, module.authentication.secondary_key),
        "policy": (policy.primary_key, policy.secondary_key),
    }
    for kind, row in stored.items():
        everything = " ".join(str(value) for value in row.values())
        for key in secrets[kind]:
            assert key
            assert key not in everything, kind
            assert key[:16] not in everything, kind
        assert row["primary_key_sealed"].startswith("v1:")
        assert row["secondary_key_sealed"].startswith("v1:")
    assert store.get_device("well-01") == device
    assert store.list_policies() == [policy]


def set_column(engine: Engine, table: str, column: str, value: str, **where: str) -> None:
    condition = " AND ".join(f"{name} = :{name}" for name in where)
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE {table} SET {column} = :value WHERE {condition}"),
            {"value": value, **where},
        )


def test_a_sealed_key_copied_to_another_row_cannot_be_opened(store: SqlRegistryStore) -> None:
    engine = store.engine
    add_device(store, "well-01")
    victim = add_device(store, "well-02")
    add_module(store, "well-01", "agent")
    donor = raw_row(engine, "SELECT * FROM devices WHERE device_id = 'well-01'")
    own = raw_row(engine, "SELECT * FROM devices WHERE device_id = 'well-02'")

    set_column(
        engine, "devices", "primary_key_sealed", donor["primary_key_sealed"], device_id="well-02"
    )
    with pytest.raises(PkiError):
        store.get_device("well-02")

    # Bound to the slot as well: the device's own secondary key does not open as its primary.
    set_column(
        engine, "devices", "primary_key_sealed", own["secondary_key_sealed"], device_id="well-02"
    )
    with pytest.raises(PkiError):
        store.get_device("well-02")

    # ... and to the kind of owner: a device key does not open as a module key.
    set_column(
        engine, "modules", "primary_key_sealed", donor["primary_key_sealed"], module_id="agent"
    )
    with pytest.raises(PkiError):
        store.get_module("well-01", "agent")

    set_column(
        engine, "devices", "primary_key_sealed", own["primary_key_sealed"], device_id="well-02"
    )
    assert store.get_device("well-02") == victim


# -- twins ----------------------------------------------------------------------------


def test_twin_documents_round_trip_json_exactly(store: SqlRegistryStore) -> None:
    add_device(store, "well-01")
    twin = Twin(
        device_id="well-01",
        module_id=None,
        etag="twin-2",
        version=7,
        tags={"site": {"name": "Nordfeld", "region": "Bayern", "geo": {"lat": 48.1, "lon": 11.5}}},
        desired={
            "interval": 30,
            "limits": {"pressure": {"max": 8.5, "min": -0.25}, "enabled": True},
            "label": "Brunnen 7 — 温度 🌡",
            "名前": "ümlaut key",
            "empty": {},
            "big": 4503599627370495,
            "off": False,
            "note": 'quote " backslash \\ newline \n',
        },
        desired_version=4,
        reported={"firmware": {"version": "2.1.0", "history": ["1.0", "2.0"]}},
        reported_version=9,
    )

    store.update_twin(twin, "twin-1", record("twin.update", "well-01"))

    assert store.get_twin("well-01", None) == twin
    assert store.get_twin("well-01", "agent") is None


def test_update_twin_checks_the_etag(store: SqlRegistryStore) -> None:
    add_device(store, "well-01")
    first = replace(make_twin("well-01"), etag="twin-2", version=2, tags={"a": 1})
    store.update_twin(first, "twin-1", record("twin.update", "well-01"))

    with pytest.raises(PreconditionFailedError):
        store.update_twin(
            replace(first, etag="twin-3", tags={"a": 2}), "twin-1", record("twin.update")
        )
    with pytest.raises(NotFoundError):
        store.update_twin(make_twin("ghost"), None, record("twin.update"))

    assert store.get_twin("well-01", None) == first


def test_device_side_twin_updates_are_not_audited(store: SqlRegistryStore) -> None:
    add_device(store, "well-01")
    reported = replace(make_twin("well-01"), etag="twin-2", reported={"temp": 21.5})

    store.update_twin(reported, "twin-1", None)

    assert store.get_twin("well-01", None) == reported
    assert [e.record.action for e in audit_entries(store)] == ["device.create"]


def test_iter_twins_yields_each_twin_with_its_identity_in_key_order(
    store: SqlRegistryStore,
) -> None:
    devices = {d: add_device(store, d) for d in ("well-02", "well-01")}
    modules = {
        (d, m): add_module(store, d, m)
        for d, m in (("well-02", "agent"), ("well-01", "pump"), ("well-01", "agent"))
    }
    tagged = replace(make_twin("well-02"), etag="twin-2", tags={"site": "north"})
    store.update_twin(tagged, "twin-1", None)

    device_twins = list(store.iter_twins(modules=False))
    module_twins = list(store.iter_twins(modules=True))

    assert [(tw.device_id, tw.module_id) for tw, _ in device_twins] == [
        ("well-01", None),
        ("well-02", None),
    ]
    assert [identity for _, identity in device_twins] == [
        devices["well-01"],
        devices["well-02"],
    ]
    assert device_twins[1][0] == tagged
    assert [(tw.device_id, tw.module_id) for tw, _ in module_twins] == [
        ("well-01", "agent"),
        ("well-01", "pump"),
        ("well-02", "agent"),
    ]
    for tw, identity in module_twins:
        assert tw.module_id is not None
        assert identity == modules[(tw.device_id, tw.module_id)]


def test_count_devices(store: SqlRegistryStore) -> None:
    assert store.count_devices() == {"total": 0, "enabled": 0, "disabled": 0, "connected": 0}
    add_device(store, "well-01")
    add_device(store, "well-02", connection=ConnectionState.CONNECTED)
    add_device(store, "well-03", status=DeviceStatus.DISABLED)
    add_device(store, "well-04", connection=ConnectionState.CONNECTED)

    assert store.count_devices() == {"total": 4, "enabled": 3, "disabled": 1, "connected": 2}


# -- policies -------------------------------------------------------------------------


def test_put_policy_creates_and_replaces_by_name(store: SqlRegistryStore) -> None:
    owner = SharedAccessPolicy(
        "iothubowner",
        AccessRights.REGISTRY_READ | AccessRights.REGISTRY_WRITE | AccessRights.SERVICE_CONNECT,
        generate_symmetric_key(),
        generate_symmetric_key(),
    )
    device = SharedAccessPolicy(
        "device", AccessRights.DEVICE_CONNECT, generate_symmetric_key(), generate_symmetric_key()
    )
    store.put_policy(owner, record("policy.create", "iothubowner"))
    store.put_policy(device, record("policy.create", "device"))
    assert store.list_policies() == [device, owner]

    rotated = replace(
        owner, primary_key=generate_symmetric_key(), rights=AccessRights.REGISTRY_READ
    )
    store.put_policy(rotated, record("policy.update", "iothubowner"))

    assert store.list_policies() == [device, rotated]


# -- certificates ---------------------------------------------------------------------


def test_certificates_are_listed_soonest_expiry_first(store: SqlRegistryStore) -> None:
    big = (1 << 158) + 12345  # 159-bit serials do not fit a BIGINT
    certs = [
        make_certificate(big, "well-01", T0 + timedelta(days=300)),
        make_certificate(22, "well-02", T0 + timedelta(days=30)),
        make_certificate(33, "well-01", T0 + timedelta(days=90)),
        make_certificate(44, "well-01", T0 + timedelta(days=400)),
    ]
    for cert in certs:
        store.record_certificate(cert, record("certificate.issue", cert.device_id))

    assert store.get_certificate(big) == certs[0]
    assert store.get_certificate(55) is None
    everything = store.list_certificates(device_id=None, after=None, limit=10)
    assert [c.serial for c in everything] == [22, 33, big, 44]
    first = store.list_certificates(device_id="well-01", after=None, limit=2)
    assert [c.serial for c in first] == [33, big]
    rest = store.list_certificates(device_id="well-01", after=first[-1].serial, limit=2)
    assert [c.serial for c in rest] == [44]


def test_revoking_a_certificate_is_idempotent_and_keeps_the_first_time(
    store: SqlRegistryStore,
) -> None:
    cert = make_certificate(22, "well-01", T0 + timedelta(days=30))
    store.record_certificate(cert, record("certificate.issue", "well-01"))
    store.record_certificate(
        make_certificate(33, "well-01", T0 + timedelta(days=30)), record("certificate.issue")
    )
    first_time = T0 + timedelta(hours=1)

    revoked = store.revoke_certificate(
        22, first_time, "keyCompromise", record("certificate.revoke")
    )
    again = store.revoke_certificate(
        22, first_time + timedelta(hours=5), "superseded", record("certificate.revoke")
    )

    assert revoked == replace(cert, revoked_at=first_time, revocation_reason="keyCompromise")
    assert again == revoked
    assert store.get_certificate(22) == revoked
    assert store.revoked_certificates() == [revoked]
    assert [e.record.action for e in audit_entries(store)].count("certificate.revoke") == 1
    with pytest.raises(NotFoundError):
        store.revoke_certificate(99, first_time, "unspecified", record("certificate.revoke"))


# -- configurations -------------------------------------------------------------------


def test_configuration_put_update_and_delete_with_etags(store: SqlRegistryStore) -> None:
    conf = make_configuration("firmware-2")
    assert store.put_configuration(conf, None, record("configuration.put")) is True
    assert store.get_configuration("firmware-2") == conf

    later = T0 + timedelta(hours=2)
    changed = replace(conf, etag="c-2", priority=20, created=later, updated=later)
    with pytest.raises(PreconditionFailedError):
        store.put_configuration(changed, "c-0", record("configuration.put"))
    assert store.put_configuration(changed, "c-1", record("configuration.put")) is False
    # The creation time is the first one, whatever the caller sent.
    assert store.get_configuration("firmware-2") == replace(changed, created=T0)

    store.put_configuration(
        make_configuration("alpha", priority=1), None, record("configuration.put")
    )
    assert [c.configuration_id for c in store.list_configurations(10)] == ["alpha", "firmware-2"]
    assert [c.configuration_id for c in store.list_configurations(1)] == ["alpha"]

    with pytest.raises(PreconditionFailedError):
        store.delete_configuration("firmware-2", "c-1", record("configuration.delete"))
    store.delete_configuration("firmware-2", "c-2", record("configuration.delete"))
    assert store.get_configuration("firmware-2") is None
    with pytest.raises(NotFoundError):
        store.delete_configuration("firmware-2", None, record("configuration.delete"))


# -- audit ----------------------------------------------------------------------------


def test_every_mutating_call_appends_exactly_its_own_audit_entry(
    store: SqlRegistryStore,
) -> None:
    device = make_device("well-01")
    module = make_module("well-01", "agent")
    policy = SharedAccessPolicy(
        "service", AccessRights.SERVICE_CONNECT, generate_symmetric_key(), generate_symmetric_key()
    )
    cert = make_certificate(22, "well-01", T0 + timedelta(days=30))
    conf = make_configuration("firmware-2")
    calls: list[tuple[str, Callable[[AuditRecord], object]]] = [
        ("device.create", lambda r: store.insert_device(device, make_twin("well-01"), r)),
        ("device.update", lambda r: store.update_device(replace(device, etag="e2"), "etag-1", r)),
        ("module.create", lambda r: store.insert_module(module, make_twin("well-01", "agent"), r)),
        ("module.update", lambda r: store.update_module(replace(module, etag="e2"), "etag-1", r)),
        (
            "twin.update",
            lambda r: store.update_twin(replace(make_twin("well-01"), etag="t2"), "twin-1", r),
        ),
        ("policy.create", lambda r: store.put_policy(policy, r)),
        ("certificate.issue", lambda r: store.record_certificate(cert, r)),
        ("certificate.revoke", lambda r: store.revoke_certificate(22, T0, "superseded", r)),
        ("configuration.create", lambda r: store.put_configuration(conf, None, r)),
        (
            "configuration.update",
            lambda r: store.put_configuration(replace(conf, etag="c-2"), "c-1", r),
        ),
        ("configuration.delete", lambda r: store.delete_configuration("firmware-2", "c-2", r)),
        ("module.delete", lambda r: store.delete_module("well-01", "agent", "e2", r)),
        ("device.delete", lambda r: store.delete_device("well-01", "e2", r)),
        ("hub.backup", store.append_audit),
    ]

    for index, (action, call) in enumerate(calls):
        this = record(action, "well-01", at=T0 + timedelta(seconds=index), step=index)
        call(this)
        entries = audit_entries(store)
        assert len(entries) == index + 1, action
        assert entries[-1].record == this
        assert entries[-1].seq == index + 1

    entries = audit_entries(store)
    assert entries[0].prev_hash == GENESIS
    assert find_chain_break(entries) is None
    assert store.list_audit(after=10, limit=2) == entries[10:12]


def test_audit_entries_verify_whatever_zone_their_time_was_given_in(
    store: SqlRegistryStore,
) -> None:
    tokyo = timezone(timedelta(hours=9))
    store.append_audit(record("hub.start", at=datetime(2026, 3, 1, 21, 0, tzinfo=tokyo)))
    store.append_audit(record("hub.stop", at=T0))

    entries = audit_entries(store)

    assert entries[0].record.at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert find_chain_break(entries) is None


def _tampered(column: str, value: Any) -> Any:
    if column == "at":
        return value + timedelta(microseconds=1)
    if column == "details":
        return {**value, "step": value.get("step", 0) + 1}
    if column in {"prev_hash", "hash"}:
        return ("f" if value[0] != "f" else "e") + value[1:]
    if isinstance(value, str):
        return value + "x"
    raise AssertionError(f"no tampering defined for audit_log.{column}")


@pytest.fixture
def chained(store: SqlRegistryStore) -> SqlRegistryStore:
    """A store with five audit entries of varied content."""
    for index in range(5):
        store.append_audit(
            record(
                f"action.{index}",
                f"well-{index:02d}",
                at=T0 + timedelta(minutes=index),
                step=index,
                note="Prüfung ✓",
                nested={"a": [1, 2.5, None, True]},
            )
        )
    assert find_chain_break(audit_entries(store)) is None
    return store


def test_editing_any_column_of_any_audit_row_is_detected_at_that_row(
    chained: SqlRegistryStore,
) -> None:
    columns = [c.name for c in t.audit_log.c if c.name != "seq"]
    log = t.audit_log
    for seq in range(1, 6):
        for column in columns:
            with chained.engine.begin() as conn:
                original = conn.execute(select(log.c[column]).where(log.c.seq == seq)).scalar_one()
                conn.execute(
                    update(log)
                    .where(log.c.seq == seq)
                    .values({column: _tampered(column, original)})
                )

            found = find_chain_break(audit_entries(chained))

            assert found is not None, (seq, column)
            assert found.seq == seq, (seq, column, found)
            with chained.engine.begin() as conn:
                conn.execute(update(log).where(log.c.seq == seq).values({column: original}))
            assert find_chain_break(audit_entries(chained)) is None, (seq, column)


@pytest.mark.parametrize(
    ("removed", "expected_break"),
    [(1, 2), (3, 4), (4, 5)],
    ids=["first", "middle", "second-to-last"],
)
def test_deleting_an_audit_row_is_detected_at_the_next_row(
    chained: SqlRegistryStore, removed: int, expected_break: int
) -> None:
    with chained.engine.begin() as conn:
        conn.execute(delete(t.audit_log).where(t.audit_log.c.seq == removed))

    found = find_chain_break(audit_entries(chained))

    assert found is not None
    assert found.seq == expected_break
    assert "removed" in found.reason


@pytest.mark.parametrize(("moved", "expected_break"), [(3, 4), (5, 1000)])
def test_renumbering_an_audit_row_is_detected(
    chained: SqlRegistryStore, moved: int, expected_break: int
) -> None:
    with chained.engine.begin() as conn:
        conn.execute(update(t.audit_log).where(t.audit_log.c.seq == moved).values(seq=1000))

    found = find_chain_break(audit_entries(chained))

    assert found is not None
    assert found.seq == expected_break


# -- concurrency ----------------------------------------------------------------------


def _run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        barrier.wait()
        try:
            work(n)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def test_concurrent_writers_leave_one_contiguous_verifying_chain(
    store: SqlRegistryStore,
) -> None:
    # Device creation writes before it reads the chain head; a bare audit append reads
    # first. The mix catches both a missing table lock (PostgreSQL) and a deferred BEGIN
    # (SQLite), either of which lets two writers extend the chain from the same head.
    def create_and_record(n: int) -> None:
        for i in range(25):
            add_device(store, f"t{n}-{i:02d}")
            store.append_audit(record("device.note", f"t{n}-{i:02d}"))

    errors = _run_threads(4, create_and_record)

    assert errors == []
    entries = audit_entries(store)
    assert [e.seq for e in entries] == list(range(1, 201))
    assert find_chain_break(entries) is None
    expected = sorted(f"t{n}-{i:02d}" for n in range(4) for i in range(25))
    for action in ("device.create", "device.note"):
        assert sorted(e.record.target for e in entries if e.record.action == action) == expected
    assert store.count_devices()["total"] == 100


def test_concurrent_updates_from_the_same_etag_let_exactly_one_win(
    store: SqlRegistryStore,
) -> None:
    add_device(store, "well-01")
    winners: list[int] = []
    refused: list[int] = []

    def update_from_etag_1(n: int) -> None:
        try:
            store.update_device(
                make_device("well-01", etag=f"writer-{n}"), "etag-1", record("device.update")
            )
        except PreconditionFailedError:
            refused.append(n)
        else:
            winners.append(n)

    errors = _run_threads(6, update_from_etag_1)

    assert errors == []
    assert len(winners) == 1
    assert len(refused) == 5
    stored = store.get_device("well-01")
    assert stored is not None
    assert stored.etag == f"writer-{winners[0]}"
    assert [e.record.action for e in audit_entries(store)] == ["device.create", "device.update"]
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.audit_log)).scalar_one() == 2

"""Presence writes, on SQLite and PostgreSQL alike (the ``engine`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from wellguard.adapters.sql.engine import migrate
from wellguard.adapters.sql.hub_state import PresenceUpdate, SqlPresenceStore
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.adapters.sql.schema import devices, modules
from wellguard.core.registry import Registry
from wellguard.core.registry.service import Actor, AuthSpec
from wellguard.core.secretbox import SecretBox
from wellguard.model.device import AuthType

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def _states(engine: Engine) -> dict[str, tuple[str, datetime | None, datetime | None]]:
    with engine.connect() as conn:
        rows = [
            (r.device_id, r.connection_state, r.connection_state_updated, r.last_activity)
            for r in conn.execute(select(devices))
        ] + [
            (
                f"{r.device_id}/{r.module_id}",
                r.connection_state,
                r.connection_state_updated,
                r.last_activity,
            )
            for r in conn.execute(select(modules))
        ]
    return {key: (state, _utc(updated), _utc(activity)) for key, state, updated, activity in rows}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_a_batch_sets_state_and_activity_of_devices_and_modules(engine: Engine) -> None:
    migrate(engine)
    registry = Registry(SqlRegistryStore(engine, SecretBox(b"k" * 32)), lambda: T0)
    actor, sas = Actor("test", "unit"), AuthSpec(AuthType.SAS)
    for device_id in ("well-1", "well-2", "well-3"):
        registry.create_device(device_id, sas, actor=actor)
    registry.create_module("well-1", "pump", sas, actor=actor)
    registry.create_module("well-2", "pump", sas, actor=actor)
    store = SqlPresenceStore(engine)
    t1, t2 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    store.apply(
        [
            PresenceUpdate("well-1", None, True, t1),
            PresenceUpdate("well-2", None, True, t1),
            PresenceUpdate("well-1", "pump", True, t1),
            PresenceUpdate("well-2", "pump", True, t1),
        ]
    )
    store.apply(
        [
            PresenceUpdate("well-1", None, None, t2),  # activity only
            PresenceUpdate("well-2", None, False, t2),
            PresenceUpdate("well-2", "pump", None, t2),
            PresenceUpdate("no-such-device", None, True, t2),  # gone: nothing to update
        ]
    )
    states = _states(engine)
    assert states["well-1"] == ("Connected", t1, t2)
    assert states["well-2"] == ("Disconnected", t2, t2)
    assert states["well-1/pump"] == ("Connected", t1, t1)
    assert states["well-2/pump"] == ("Connected", t1, t2)
    assert states["well-3"][0] == "Disconnected"
    assert states["well-3"][2] is None
    store.reset_all(t2)
    assert {key: state for key, (state, _, _) in _states(engine).items()} == dict.fromkeys(
        states, "Disconnected"
    )

"""Small SQL stores of the hub's device-facing state: IP filter rules, per-device counters,
and batched presence (connection state, last activity)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, delete, insert, select, update

from wellguard.adapters.sql.schema import devices, modules
from wellguard.adapters.sql.schema_hub import device_counters, ip_filter_rules, mqtt_sessions
from wellguard.core.identity import IpFilterAction, IpFilterRule

__all__ = [
    "CounterSampleRow",
    "PresenceUpdate",
    "SqlCounterStore",
    "SqlIpFilterStore",
    "SqlPresenceStore",
    "SqlSessionStore",
]


class SqlIpFilterStore:
    """The ordered IP filter rule list."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def rules(self) -> list[IpFilterRule]:
        """Rules in evaluation order."""
        c = ip_filter_rules.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(ip_filter_rules).order_by(c.position)).all()
        return [
            IpFilterRule(name=r.name, cidr=r.cidr, action=IpFilterAction(r.action)) for r in rows
        ]

    def replace(self, rules: Sequence[IpFilterRule]) -> None:
        """Replace the whole list atomically."""
        with self._engine.begin() as conn:
            conn.execute(delete(ip_filter_rules))
            for position, rule in enumerate(rules):
                conn.execute(
                    insert(ip_filter_rules).values(
                        position=position, name=rule.name, cidr=rule.cidr, action=rule.action.value
                    )
                )


@dataclass(frozen=True)
class PresenceUpdate:
    """A connection-state change or activity of one identity."""

    device_id: str
    module_id: str | None
    connected: bool | None  # None: only activity
    at: datetime


class SqlPresenceStore:
    """Writes presence in batches without touching etags (as IoT Hub does)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def apply(self, updates: Sequence[PresenceUpdate]) -> None:
        """Apply a batch in one transaction: one executemany per kind of update (devices
        or modules; state changes or activity only), not one statement per identity."""
        if not updates:
            return
        groups: dict[tuple[bool, bool], list[dict[str, object]]] = {}
        for u in updates:
            params: dict[str, object] = {"d": u.device_id, "m": u.module_id or "", "at": u.at}
            if u.connected is not None:
                params["state"] = "Connected" if u.connected else "Disconnected"
            groups.setdefault((bool(u.module_id), u.connected is not None), []).append(params)
        with self._engine.begin() as conn:
            for (module, with_state), rows in groups.items():
                table = modules if module else devices
                where = [table.c.device_id == bindparam("d")]
                if module:
                    where.append(modules.c.module_id == bindparam("m"))
                values: dict[str, object] = {"last_activity": bindparam("at")}
                if with_state:
                    values["connection_state"] = bindparam("state")
                    values["connection_state_updated"] = bindparam("at")
                conn.execute(update(table).where(*where).values(**values), rows)

    def reset_all(self, at: datetime) -> None:
        """Mark everything disconnected (hub start: no connection survives a restart)."""
        with self._engine.begin() as conn:
            for table in (devices, modules):
                conn.execute(
                    update(table)
                    .where(table.c.connection_state == "Connected")
                    .values(connection_state="Disconnected", connection_state_updated=at)
                )


@dataclass(frozen=True)
class CounterSampleRow:
    """One closed counter bucket."""

    device_id: str
    bucket_start: datetime
    name: str
    value: int


class SqlCounterStore:
    """Per-device counters in time buckets (read by detections later)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, samples: Sequence[CounterSampleRow]) -> None:
        """Add samples; a bucket seen again is summed."""
        if not samples:
            return
        c = device_counters.c
        with self._engine.begin() as conn:
            for s in samples:
                key = (
                    c.device_id == s.device_id,
                    c.bucket_start == s.bucket_start,
                    c.name == s.name,
                )
                result = conn.execute(
                    update(device_counters).where(*key).values(value=c.value + s.value)
                )
                if result.rowcount == 0:
                    conn.execute(
                        insert(device_counters).values(
                            device_id=s.device_id,
                            bucket_start=s.bucket_start,
                            name=s.name,
                            value=s.value,
                        )
                    )

    def read(self, device_id: str, *, since: datetime) -> list[CounterSampleRow]:
        """A device's buckets since a time."""
        c = device_counters.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(device_counters)
                .where(c.device_id == device_id, c.bucket_start >= since)
                .order_by(c.bucket_start, c.name)
            ).all()
        return [CounterSampleRow(r.device_id, r.bucket_start, r.name, r.value) for r in rows]


class SqlSessionStore:
    """Subscriptions of persistent MQTT sessions, by identity key."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def load_all(self) -> dict[str, dict[str, int]]:
        """Every stored session."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(mqtt_sessions.c.identity, mqtt_sessions.c.subscriptions))
            return {row.identity: dict(row.subscriptions) for row in rows}

    def save(self, identity: str, subscriptions: dict[str, int] | None, at: datetime) -> None:
        """Store (or, with None, forget) one identity's session."""
        c = mqtt_sessions.c
        with self._engine.begin() as conn:
            conn.execute(delete(mqtt_sessions).where(c.identity == identity))
            if subscriptions:
                conn.execute(
                    insert(mqtt_sessions).values(
                        identity=identity, subscriptions=subscriptions, updated=at
                    )
                )

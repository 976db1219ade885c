"""The built-in telemetry endpoint's store (IoT Hub's ``events``) on SQLite or PostgreSQL.

Rows are keyed by the ingest journal's seq, so the routing worker's at-least-once
delivery cannot store a message twice: a batch that is delivered again after a crash
inserts only the seqs that are missing (``INSERT ... ON CONFLICT DO NOTHING`` on SQLite
and PostgreSQL; a look-up of the batch's seqs first on anything else). Reads are per
device, oldest first, paged by seq and optionally limited to an enqueue-time window.

The table (``schema_hub.telemetry``) has no ``source`` column: what it holds comes back
as ``MessageSource.TELEMETRY`` whatever route brought it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from wellguard.adapters.sql.schema_hub import telemetry
from wellguard.core.ingest.ports import JournalEntry
from wellguard.errors import StorageError
from wellguard.model.message import DeviceMessage, MessageSource

__all__ = ["TelemetryStore"]

_MESSAGE_ID_LENGTH = 128  # the column's width; the full id stays in ``system``

_ON_CONFLICT_INSERTS: dict[str, Callable[..., Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


class TelemetryStore:
    """Stores routed telemetry; inserting a seq twice stores it once."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert_new = (
            self._insert_on_conflict
            if engine.dialect.name in _ON_CONFLICT_INSERTS
            else self._insert_missing
        )

    def insert_many(self, entries: Sequence[JournalEntry]) -> int:
        """Store the entries not stored yet, in one transaction; returns how many were new."""
        rows = {entry.seq: _row(entry) for entry in entries}  # a seq twice in one batch, too
        if not rows:
            return 0
        with self._guard(), self._engine.begin() as conn:
            return self._insert_new(conn, list(rows.values()))

    def query(
        self,
        device_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[JournalEntry]:
        """A device's messages in seq order, enqueued in ``[start, end)``, after ``after_seq``."""
        if limit <= 0:
            return []
        c = telemetry.c
        query = select(telemetry).where(c.device_id == device_id).order_by(c.seq).limit(limit)
        if start is not None:
            query = query.where(c.enqueued_at >= start)
        if end is not None:
            query = query.where(c.enqueued_at < end)
        if after_seq is not None:
            query = query.where(c.seq > after_seq)
        with self._guard(), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            JournalEntry(
                seq=row.seq,
                message=DeviceMessage(
                    device_id=row.device_id,
                    module_id=row.module_id or None,
                    enqueued_at=row.enqueued_at,
                    source=MessageSource.TELEMETRY,
                    body=bytes(row.body),
                    system_properties=dict(row.system),
                    app_properties=dict(row.app),
                ),
            )
            for row in rows
        ]

    def count(self, device_id: str) -> int:
        """How many messages of a device are stored."""
        query = select(func.count()).select_from(telemetry)
        with self._guard(), self._engine.connect() as conn:
            return int(conn.execute(query.where(telemetry.c.device_id == device_id)).scalar_one())

    def purge_before(self, when: datetime) -> int:
        """Retention: delete messages enqueued before ``when``; returns how many."""
        with self._guard(), self._engine.begin() as conn:
            result = conn.execute(delete(telemetry).where(telemetry.c.enqueued_at < when))
            return int(result.rowcount)

    # -- mechanics ----------------------------------------------------------------------

    def _insert_on_conflict(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        statement = (
            _ON_CONFLICT_INSERTS[conn.dialect.name](telemetry)
            .on_conflict_do_nothing(index_elements=[telemetry.c.seq])
            .returning(telemetry.c.seq)
        )
        return len(conn.execute(statement, rows).all())

    def _insert_missing(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        c = telemetry.c
        seqs = [row["seq"] for row in rows]
        present = set(conn.execute(select(c.seq).where(c.seq.in_(seqs))).scalars())
        missing = [row for row in rows if row["seq"] not in present]
        if missing:
            conn.execute(insert(telemetry), missing)
        return len(missing)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StorageError(f"telemetry store failed: {exc}") from exc


def _row(entry: JournalEntry) -> dict[str, Any]:
    message = entry.message
    message_id = message.message_id
    return {
        "seq": entry.seq,
        "device_id": message.device_id,
        "module_id": message.module_id or "",
        "enqueued_at": message.enqueued_at,
        "message_id": message_id[:_MESSAGE_ID_LENGTH] if message_id is not None else None,
        "system": dict(message.system_properties),
        "app": dict(message.app_properties),
        "body": message.body,
    }

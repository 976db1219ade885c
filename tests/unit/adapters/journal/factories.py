"""Messages and open journals for the journal tests."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wellguard.adapters.journal import SqliteJournal
from wellguard.model.message import DeviceMessage, MessageSource

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def message(n: int, *, device: str = "well-01", module: str | None = None) -> DeviceMessage:
    """Message ``n``: its id is ``m-n``, its body is derived from ``n``."""
    return DeviceMessage(
        device_id=device,
        module_id=module,
        enqueued_at=T0 + timedelta(microseconds=n),
        source=MessageSource.TELEMETRY,
        body=body_of(n),
        system_properties={"messageId": f"m-{n}", "contentType": "application/json"},
        app_properties={"n": str(n)},
    )


def body_of(n: int) -> bytes:
    return f'{{"n": {n}}}'.encode() + bytes([n % 256, 0, 255])


def number_of(m: DeviceMessage) -> int:
    """The ``n`` a message of ``message(n)`` was made with."""
    return int(m.system_properties["messageId"][2:])


@asynccontextmanager
async def opened(path: Path, **options: Any) -> AsyncIterator[SqliteJournal]:
    """A started journal on ``path``, closed afterwards."""
    journal = SqliteJournal(path, **options)
    await journal.start()
    try:
        yield journal
    finally:
        await journal.close()


def stored_seqs(path: Path) -> list[int]:
    """Every seq in the file, read with a plain connection."""
    with closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute("SELECT seq FROM journal ORDER BY seq")]

"""The journal file's layout: tables, the SQL that writes and reads entries, row codec.

Writing a batch is ONE ``INSERT ... SELECT FROM (VALUES ...)`` statement in autocommit
mode, not ``executemany``: the ``sqlite3`` module releases the GIL around every
``sqlite3_step``, and each time it takes the GIL back it may wait a whole switch interval
(5 ms) behind a busy event loop. One statement per batch is one release instead of one
per row (measured with a CPU-bound thread beside the writer: 2048-row batches went from
~5k to ~128k rows/s). Batches are padded with zero rows up to a power of two, which the
``WHERE`` drops, so a dozen cached statements serve every batch size.

Several processes may write to one file, so a batch's seqs are only known for certain
inside the transaction that writes it. Two statements do that in one step each:

- ``insert_sql``: seqs bound by the writer, after the newest seq it knows of, guarded by
  ``compacted_through``. It is right exactly when nobody else committed since: a commit
  of another process took the next seqs (the first row fails on the primary key, and
  the statement inserts nothing), or it was compacted away since (then the guard inserts
  nothing). Costs what the old unguarded statement cost.
- ``insert_after_newest_sql``: rows bound with their position (1, 2, 3 ...), seq =
  newest stored seq + position, computed by the statement itself. Always right, but
  since the statement reads the table it writes, SQLite first copies the rows into a
  temporary table (~0.6 µs a row, outside the GIL): for when other processes write too.

The writer reads the seqs SQLite stored from ``lastrowid`` (seq is the rowid).

Reading aggregates the rows into one JSON document inside SQLite for the same reason
(one step per read instead of one per row; ~840 → ~96k rows/s under the same load).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from wellguard.core.ingest.ports import JournalEntry
from wellguard.errors import StorageError
from wellguard.model.message import DeviceMessage, MessageSource

__all__ = [
    "COLUMNS",
    "COMPACTED_THROUGH",
    "NEWEST_SEQ_SQL",
    "READ_SQL",
    "SCHEMA",
    "SCHEMA_VERSION",
    "decode_entries",
    "encode_into",
    "insert_after_newest_sql",
    "insert_sql",
    "padding",
]

SCHEMA_VERSION = 1

COLUMNS = ("seq", "device_id", "module_id", "enqueued_at", "source", "system", "app", "body")

# module_id: '' for none. enqueued_at: microseconds since the Unix epoch (UTC).
# system/app: JSON objects as text.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    module_id TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    system TEXT NOT NULL,
    app TEXT NOT NULL,
    body BLOB NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS journal_checkpoints (
    consumer TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS journal_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
)""",
)

# journal_meta key: entries up to this seq were deleted by compaction.
COMPACTED_THROUGH = "compacted_through"
# The newest seq ever committed, even when compaction deleted every entry.
NEWEST_SEQ_SQL = (
    "max(coalesce((SELECT max(seq) FROM journal), 0),"  # noqa: S608 - constant names only
    f" coalesce((SELECT value FROM journal_meta WHERE key = '{COMPACTED_THROUGH}'), 0))"
)

READ_SQL = (
    "SELECT json_group_array(json_array(seq, device_id, module_id, enqueued_at, source,"
    " json(system), json(app), hex(body))) FROM"
    " (SELECT * FROM journal WHERE seq > ? ORDER BY seq LIMIT ?)"
)

_WIDTH = len(COLUMNS)
_ROW_PLACEHOLDERS = "(" + ",".join("?" * _WIDTH) + ")"
# Parameter types matter: Python's sqlite3 binds int, float, str and bytearray directly but
# sends None and bytes through its adapter lookup, 4-5 times slower. So padding rows are
# zeros (seq 0 never exists), "no module" is '' and bodies are bound as bytearray.
_PADDING_ROW = (0,) * _WIDTH
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EMPTY_OBJECT = "{}"
# Exact str values: a StrEnum member would take sqlite3's slow adapter path, see above.
_SOURCE_TEXT = {source: source.value for source in MessageSource}


def insert_sql(rows: int) -> str:
    """The statement that inserts ``rows`` rows (a power of two; padding rows are skipped)
    numbered by the caller, after the seq bound last; see the module docstring. It inserts
    nothing when that seq is older than the newest compaction."""
    values = ",".join([_ROW_PLACEHOLDERS] * rows)
    columns = ", ".join(COLUMNS)
    # Constant names and placeholders only: nothing from outside reaches the SQL text.
    return (
        f"INSERT INTO journal ({columns}) SELECT * FROM (VALUES {values})"  # noqa: S608
        " WHERE column1 > 0 AND coalesce((SELECT value FROM journal_meta"
        f" WHERE key = '{COMPACTED_THROUGH}'), 0) <= ?"
    )


def insert_after_newest_sql(rows: int) -> str:
    """The statement that inserts ``rows`` rows (a power of two; padding rows are skipped)
    bound with their position 1, 2, 3 ... in place of the seq, at the newest stored seq
    plus their position."""
    values = ",".join([_ROW_PLACEHOLDERS] * rows)
    columns = ", ".join(COLUMNS)
    others = ", ".join(f"column{i}" for i in range(2, _WIDTH + 1))
    return (
        f"INSERT INTO journal ({columns}) SELECT ({NEWEST_SEQ_SQL}) + column1, {others}"  # noqa: S608
        f" FROM (VALUES {values}) WHERE column1 > 0"
    )


def padding(rows: int, slots: int) -> tuple[int, ...]:
    """Parameters of the padding rows that fill ``rows`` up to ``slots``."""
    return _PADDING_ROW * (slots - rows)


def encode_into(params: list[Any], seq: int, message: DeviceMessage) -> None:
    """Append the column values of ``message`` at ``seq`` (or at its position, for
    ``insert_after_newest_sql``) to ``params``.

    Raises ``TypeError``/``ValueError`` for a message that could not be read back (naive
    time, non-text ids or property names, unknown source): it must fail alone, before it
    can poison every later read."""
    device_id = message.device_id
    module_id = message.module_id
    if type(device_id) is not str or (module_id is not None and type(module_id) is not str):
        raise TypeError("device and module ids must be text")
    source = _SOURCE_TEXT.get(message.source)
    if source is None:
        raise ValueError(f"unknown message source {message.source!r}")
    body = bytearray(message.body)
    system = message.system_properties
    app = message.app_properties
    params += (
        seq,
        device_id,
        module_id or "",
        (message.enqueued_at - _EPOCH) // _MICROSECOND,  # TypeError when naive
        source,
        orjson.dumps(system).decode() if system else _EMPTY_OBJECT,
        orjson.dumps(app).decode() if app else _EMPTY_OBJECT,
        body,
    )


def decode_entries(document: str | None) -> list[JournalEntry]:
    """The entries of a ``READ_SQL`` result, in seq order."""
    if not document:
        return []
    try:
        rows = orjson.loads(document)
        entries = [
            JournalEntry(
                seq=seq,
                message=DeviceMessage(
                    device_id=device_id,
                    module_id=module_id or None,
                    enqueued_at=_EPOCH + timedelta(microseconds=enqueued_at),
                    source=MessageSource(source),
                    body=bytes.fromhex(body),
                    system_properties=system,
                    app_properties=app,
                ),
            )
            for seq, device_id, module_id, enqueued_at, source, system, app, body in rows
        ]
    except (ValueError, TypeError) as exc:
        raise StorageError(f"the ingest journal holds an unreadable entry: {exc}") from exc
    # json_group_array keeps the subquery's order in practice, but SQLite does not promise
    # it; sorting an already sorted list is linear.
    entries.sort(key=_seq_of)
    return entries


def _seq_of(entry: JournalEntry) -> int:
    return entry.seq

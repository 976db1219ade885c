"""Opening the journal file: connection settings, schema creation and version check.

Several processes may open one file at once (gateway workers); opening and creating are
safe against each other: see ``_switch_to_wal`` and ``initialise``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from wellguard.adapters.journal._rows import (
    COLUMNS,
    COMPACTED_THROUGH,
    NEWEST_SEQ_SQL,
    SCHEMA,
    SCHEMA_VERSION,
)
from wellguard.errors import StorageError

__all__ = ["connect", "initialise", "record_compaction", "stored_last_seq"]

# The WAL file is cut back to this size after a checkpoint empties it.
_WAL_SIZE_LIMIT = 64 * 1024 * 1024
# Checkpoints run in the background (``_checkpointer``); a commit checkpoints by itself
# only past this many WAL pages (64 MiB), should the background fall behind.
_AUTOCHECKPOINT_PAGES = 16384
_WAL_SWITCH_RETRY_S = 0.005


def connect(
    path: Path, *, synchronous: str, busy_timeout_s: float, read_only: bool = False
) -> sqlite3.Connection:
    """A connection in WAL mode and autocommit (transactions are explicit)."""
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=busy_timeout_s,
        cached_statements=64,
    )
    try:
        mode = _switch_to_wal(conn, busy_timeout_s)
        if mode.lower() != "wal":
            raise StorageError(f"the ingest journal {path} cannot use WAL mode (got {mode!r})")
        if read_only:
            conn.execute("PRAGMA query_only=ON")
        else:
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
            conn.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
    except BaseException:
        conn.close()
        raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> str:
    # Switching a new file to WAL needs an exclusive lock, and SQLite does not wait for it
    # in the busy handler: of several processes opening a new journal at once, all but one
    # would fail with "database is locked". Once the file is in WAL this is a no-op.
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_SWITCH_RETRY_S)
        else:
            return str(mode)


def initialise(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables of a new file; refuse files of another layout or a newer version.

    In one write transaction, so that processes opening a new file together neither see
    it half made nor both make it."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"the ingest journal {path} has layout {version}; this wellguard reads up to "
                f"{SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION:
            columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(journal)"))
            if columns and columns != COLUMNS:
                raise StorageError(f"{path} is not a wellguard ingest journal (columns {columns})")
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def stored_last_seq(conn: sqlite3.Connection) -> int:
    """The newest seq ever committed, even when compaction deleted every entry."""
    (newest,) = conn.execute(f"SELECT {NEWEST_SEQ_SQL}").fetchone()
    return int(newest)


def record_compaction(conn: sqlite3.Connection, through: int) -> None:
    """Remember that entries up to ``through`` were deleted (seq must continue past it)."""
    conn.execute(
        "INSERT INTO journal_meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        (COMPACTED_THROUGH, through),
    )

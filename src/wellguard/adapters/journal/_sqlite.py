"""Opening the journal file: connection settings, schema creation and version check."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from wellguard.adapters.journal._rows import COLUMNS, SCHEMA, SCHEMA_VERSION
from wellguard.errors import StorageError

__all__ = ["connect", "initialise", "record_compaction", "stored_last_seq"]

# The WAL file is cut back to this size after a checkpoint empties it.
_WAL_SIZE_LIMIT = 64 * 1024 * 1024
# Checkpoints run in the background (``_checkpointer``); a commit checkpoints by itself
# only past this many WAL pages (64 MiB), should the background fall behind.
_AUTOCHECKPOINT_PAGES = 16384
_COMPACTED_THROUGH = "compacted_through"


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
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal":
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


def initialise(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables of a new file; refuse files of another layout or a newer version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"the ingest journal {path} has layout {version}; this wellguard reads up to "
            f"{SCHEMA_VERSION}"
        )
    if version == SCHEMA_VERSION:
        return
    columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(journal)"))
    if columns and columns != COLUMNS:
        raise StorageError(f"{path} is not a wellguard ingest journal (columns {columns})")
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def stored_last_seq(conn: sqlite3.Connection) -> int:
    """The newest seq ever committed, even when compaction deleted every entry."""
    (newest,) = conn.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM journal), 0),"
        " coalesce((SELECT value FROM journal_meta WHERE key = ?), 0))",
        (_COMPACTED_THROUGH,),
    ).fetchone()
    return int(newest)


def record_compaction(conn: sqlite3.Connection, through: int) -> None:
    """Remember that entries up to ``through`` were deleted (seq must continue past it)."""
    conn.execute(
        "INSERT INTO journal_meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        (_COMPACTED_THROUGH, through),
    )

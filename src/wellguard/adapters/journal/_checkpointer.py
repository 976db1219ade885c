"""Background WAL checkpoints, so that commits never pay for copying the WAL back.

SQLite normally checkpoints inside the commit that makes the WAL pass 1000 pages: that
commit then copies megabytes into the database file and fsyncs it (even with
``synchronous=NORMAL``), and every PUBACK waiting on it waits too. Here a thread of its
own, with a connection of its own, runs ``PRAGMA wal_checkpoint(PASSIVE)`` once 2048
rows were committed since the last one (at most every 50 ms), or a second after a
trickle of commits. PASSIVE never blocks the writer nor waits for it. The writer keeps
SQLite's automatic checkpoint, with a high threshold, as a backstop should this thread
fall behind.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

from wellguard.adapters.journal._sqlite import connect
from wellguard.errors import StorageError

__all__ = ["WalCheckpointer"]

_log = logging.getLogger("wellguard.journal")


class WalCheckpointer:
    """A thread that checkpoints the journal's WAL after enough commits, or a second
    after the last one, whichever comes first."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str,
        busy_timeout_s: float,
        rows: int = 2048,
        min_interval_s: float = 0.05,
        max_interval_s: float = 1.0,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._rows = rows
        self._min_interval_s = min_interval_s
        self._max_interval_s = max_interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._committed = 0  # written by the writer thread only
        self._checkpointed = 0  # written by this thread only
        self.checkpoints = 0

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(
            target=self._run, name="wellguard-journal-checkpointer", daemon=True
        )
        self._thread.start()

    def committed(self, rows: int) -> None:
        """``rows`` more rows were committed (the writer thread calls this; cheap)."""
        self._committed += rows
        if self._committed - self._checkpointed >= self._rows and not self._wake.is_set():
            self._wake.set()

    def stop(self) -> None:
        """End the thread (after the checkpoint it may be running)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait(self._max_interval_s)
                self._wake.clear()
                if self._stop.is_set():
                    return
                committed = self._committed
                if committed == self._checkpointed:
                    continue
                try:
                    if conn is None:
                        conn = connect(
                            self._path,
                            synchronous=self._synchronous,
                            busy_timeout_s=self._busy_timeout_s,
                        )
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except (sqlite3.Error, StorageError) as exc:  # the writer's backstop takes over
                    _log.warning("journal checkpoint failed: %s", exc)
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                        conn = None
                self._checkpointed = committed
                if self._stop.wait(self._min_interval_s):
                    return
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

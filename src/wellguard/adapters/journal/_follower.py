"""Noticing commits that other processes make to the journal file, while someone waits.

Gateway worker processes append to the same file as the hub process, and nothing tells
this process when they commit: SQLite has no cross-process notification. So while at
least one ``wait_for`` waits, a thread of its own, with a read-only connection of its
own, reads the newest stored seq every ``interval_s`` and reports it (the journal wakes
its waiters when that is news). With nobody waiting the thread sleeps on an event, so a
journal nobody follows pays nothing. A read is one statement outside the event loop:
about 6 µs when nothing changed, 15 µs after a commit, so 0.3 % of a core at 5 ms.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from wellguard.adapters.journal._sqlite import connect, stored_last_seq
from wellguard.errors import StorageError

__all__ = ["CommitFollower"]

_log = logging.getLogger("wellguard.journal")


class CommitFollower:
    """A thread that reads the file's newest seq every ``interval_s`` seconds while
    ``wanted()`` and passes it to ``seen`` (in this thread)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float,
        wanted: Callable[[], bool],
        seen: Callable[[int], None],
        interval_s: float = 0.005,
    ) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._wanted = wanted
        self._seen = seen
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reads = 0

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(
            target=self._run, name="wellguard-journal-follower", daemon=True
        )
        self._thread.start()

    def want(self) -> None:
        """Someone started waiting: read now if the thread sleeps (cheap; any thread)."""
        if not self._wake.is_set():
            self._wake.set()

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        failing = False
        try:
            while not self._stop.is_set():
                if not self._wanted():
                    # A waiter registers itself before it calls want(): no wake-up is lost.
                    self._wake.wait()
                    self._wake.clear()
                    continue
                try:
                    if conn is None:
                        conn = connect(
                            self._path,
                            synchronous="NORMAL",
                            busy_timeout_s=self._busy_timeout_s,
                            read_only=True,
                        )
                    newest = stored_last_seq(conn)
                except (sqlite3.Error, StorageError) as exc:  # waiters then time out
                    if not failing:
                        _log.warning("cannot follow the ingest journal: %s", exc)
                    failing = True
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                        conn = None
                else:
                    failing = False
                    self.reads += 1
                    self._seen(newest)
                self._stop.wait(self._interval_s)
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

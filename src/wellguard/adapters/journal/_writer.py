"""The journal's writer thread: group commit of queued messages, one statement per batch.

Theory of operation: ``SqliteJournal.submit`` appends ``(message, future)`` to ``queue``
(a deque: appends and pops are atomic under the GIL) and sets ``wake`` if it is clear.
The writer sleeps on ``wake`` while the queue is empty. Awake, it takes up to
``max_batch`` queued messages, encodes them and commits them in one statement, then
hands the batch's outcome to the event loop with ONE ``call_soon_threadsafe``. Messages
that arrive while a commit runs form the next batch, so batches grow with load by
themselves (group commit), and a message that finds the writer idle is committed at
once. While busy, commits start at most every ``max_delay_s`` unless a batch is full, so
a fast disk does not turn moderate load into thousands of tiny commits.

Seqs: other processes may write to the same file, so a batch is numbered inside the
statement that commits it (see ``_rows``), and its futures get the seqs SQLite stored.
While this writer is alone, it numbers a batch after its own newest seq, and the
statement inserts nothing if another process committed in between; the batch is then
numbered by SQLite after the newest stored seq, and so are the following batches until
``_SOLO_AFTER`` in a row found nobody else's commit before them.

A failed commit fails that batch's futures and drops the connection; the next batch
opens a new one and is numbered by SQLite (a commit reported as failed may still have
reached the disk), so seqs stay dense and unique.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from wellguard.adapters.journal._rows import (
    COLUMNS,
    encode_into,
    insert_after_newest_sql,
    insert_sql,
    padding,
)
from wellguard.adapters.journal._sqlite import connect, initialise, stored_last_seq
from wellguard.adapters.journal._stats import StatsRecorder
from wellguard.errors import StorageError
from wellguard.model.message import DeviceMessage

__all__ = ["BatchOutcome", "JournalWriter", "Pending"]

_log = logging.getLogger("wellguard.journal")

Pending = tuple[DeviceMessage, "asyncio.Future[int]"]
T = TypeVar("T")
_WIDTH = len(COLUMNS)
# Batches in a row that found no commit of another process before them, after which the
# writer numbers batches itself again (a wrong guess costs binding the batch twice).
_SOLO_AFTER = 16


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of one batch; ``resolve`` passes it on to the futures (on the loop)."""

    committed: list[asyncio.Future[int]]
    """Futures of the messages in the commit, in seq order from ``first_seq``."""
    first_seq: int
    error: str | None
    """Why the commit failed (every future in ``committed`` fails), or None."""
    rejected: list[tuple[asyncio.Future[int], str]]
    """Messages that could not be stored at all, with the reason."""

    def resolve(self) -> None:
        """Set every future's result or exception; cancelled futures are left alone."""
        if self.error is None:
            seq = self.first_seq
            for future in self.committed:
                if not future.done():
                    future.set_result(seq)
                seq += 1
        else:
            for future in self.committed:
                if not future.done():
                    future.set_exception(StorageError(self.error))
        for future, reason in self.rejected:
            if not future.done():
                future.set_exception(StorageError(reason))


class CommitLock:
    """Writers of one journal file, in every process, take turns here for each commit.

    SQLite lets one connection at a time write and makes the others retry from its busy
    handler, which sleeps 1, 2, 5, 10 ... ms between attempts: with several gateway
    processes a commit could wait far longer than the lock was held. An ``flock`` on a
    file beside the journal queues them in the kernel instead, and a waiter wakes as soon
    as the holder lets go. It is advisory and covers only the commit statement; SQLite's
    own locking still guards the data (a file that cannot be locked is done without).
    """

    def __init__(self, journal: Path) -> None:
        self.path = journal.with_name(journal.name + "-commit.lock")
        self._fd: int | None = None
        self._broken = False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block (blocking this thread, not the GIL)."""
        fd = self._open()
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (the lock is free; the file stays for the other writers)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _open(self) -> int | None:
        if self._fd is None and not self._broken:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._broken = True
                _log.warning("journal commit lock %s unusable, SQLite alone: %s", self.path, exc)
        return self._fd


class JournalWriter:
    """The writer thread and the one read-write connection of a journal file."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str,
        busy_timeout_s: float,
        max_batch: int,
        max_delay_s: float,
    ) -> None:
        self.queue: deque[Pending] = deque()
        self.wake = threading.Event()
        self.full = threading.Event()
        self.stats = StatsRecorder()
        self.last_seq = 0
        """Newest seq this writer committed (or stored when it opened); written by the
        writer only. Other processes may have committed newer ones."""
        self.settled = 0
        """Messages taken off the queue and committed or failed; written by the writer only."""
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._max_batch = max_batch
        self._max_delay_s = max_delay_s
        self._lock = threading.Lock()  # guards the connection: batches vs. checkpoints etc.
        self._commit_lock = CommitLock(path)
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._solo_streak = 0
        self._stopping = False
        self._statements: dict[tuple[int, bool], str] = {}
        self._rows_per_statement = 1
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Open (creating) the file and recover ``last_seq``; call before ``start``."""
        with self._lock:
            self.last_seq = stored_last_seq(self._connection())
            self._solo_streak = _SOLO_AFTER

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[BatchOutcome], None],
        committed: Callable[[int], None],
        stopped: Callable[[], None],
    ) -> None:
        """Start the thread. ``deliver`` and ``stopped`` run on ``loop``; ``committed``
        (with the number of rows) runs in the writer thread after each successful commit."""
        self._thread = threading.Thread(
            target=self._run,
            args=(loop, deliver, committed, stopped),
            name="wellguard-journal-writer",
            daemon=True,  # close() is the way out; a forgotten journal must not hang exit
        )
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to commit what is queued and end."""
        self._stopping = True
        self.wake.set()
        self.full.set()

    def join(self) -> None:
        """Wait for the thread to end."""
        if self._thread is not None:
            self._thread.join()

    def exclusive(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation`` on the read-write connection between batches (any thread)."""
        with self._lock:
            try:
                return operation(self._connection())
            except sqlite3.Error as exc:
                self._discard()
                raise StorageError(f"ingest journal {self._path}: {exc}") from exc

    # -- the thread ------------------------------------------------------------------------

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[BatchOutcome], None],
        committed: Callable[[int], None],
        stopped: Callable[[], None],
    ) -> None:
        queue = self.queue
        idle = True
        last_start = 0.0
        batch: list[Pending] = []
        try:
            while True:
                if not queue:
                    if self._stopping:
                        return
                    self.wake.wait()
                    self.wake.clear()
                    idle = True
                    continue
                if not idle:
                    self._linger(last_start)
                last_start = time.monotonic()
                size = min(len(queue), self._max_batch)
                batch = [queue.popleft() for _ in range(size)]
                outcome = self._write_guarded(batch)
                self.settled += size
                try:
                    loop.call_soon_threadsafe(deliver, outcome)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    _log.warning("event loop closed; %d journal results not delivered", size)
                batch = []
                if outcome.error is None and outcome.committed:
                    committed(len(outcome.committed))
                idle = False
        finally:
            with self._lock:
                self._closed = True
                self._discard()
                self._commit_lock.close()
            # Empty unless the thread died of something unforeseen: fail, never strand.
            stranded = [future for _message, future in [*batch, *_drain(queue)]]
            with contextlib.suppress(RuntimeError):
                if stranded:
                    outcome = BatchOutcome(stranded, 0, "the journal writer stopped", [])
                    loop.call_soon_threadsafe(deliver, outcome)
                loop.call_soon_threadsafe(stopped)

    def _linger(self, last_start: float) -> None:
        # Busy: let companions arrive until max_delay_s after the previous commit started.
        remaining = last_start + self._max_delay_s - time.monotonic()
        if remaining <= 0 or self._stopping:
            return
        self.full.clear()
        if len(self.queue) < self._max_batch:
            self.full.wait(remaining)

    def _write_guarded(self, batch: list[Pending]) -> BatchOutcome:
        try:
            return self._write(batch)
        except Exception as exc:  # a bug must not kill the thread every publisher waits on
            _log.exception("ingest journal writer failed on a batch")
            with self._lock:
                self._discard()
                self._solo_streak = 0
            self.stats.failed(len(batch), batch=True)
            return BatchOutcome([f for _, f in batch], 0, f"journal writer failed: {exc}", [])

    def _write(self, batch: list[Pending]) -> BatchOutcome:
        committed: list[asyncio.Future[int]] = []
        rejected: list[tuple[asyncio.Future[int], str]] = []
        params: list[Any] = []
        with self._lock:
            try:
                conn = self._connection()
            except (sqlite3.Error, StorageError) as exc:
                self._discard()
                self.stats.failed(len(batch), batch=True)
                reason = f"ingest journal unavailable: {exc}"
                return BatchOutcome([f for _, f in batch], 0, reason, [])
            # Alone: seqs after our newest. Otherwise positions, turned into seqs by SQLite.
            after = self.last_seq if self._solo_streak >= _SOLO_AFTER else None
            seq = 1 if after is None else after + 1
            for message, future in batch:
                mark = len(params)
                try:
                    encode_into(params, seq, message)
                except Exception as exc:  # this message alone cannot be stored
                    del params[mark:]
                    rejected.append((future, f"message cannot be journaled: {exc}"))
                    continue
                committed.append(future)
                seq += 1
            if rejected:
                self.stats.failed(len(rejected), batch=False)
            if not committed:
                return BatchOutcome(committed, 0, None, rejected)
            started = time.perf_counter()
            try:
                with self._commit_lock.held():
                    first = self._insert(conn, params, len(committed), after)
            except sqlite3.Error as exc:
                self._discard()
                self._solo_streak = 0
                self.stats.failed(len(committed), batch=True)
                return BatchOutcome(committed, 0, f"journal commit failed: {exc}", rejected)
            self.stats.committed(len(committed), time.perf_counter() - started)
            alone = first == self.last_seq + 1  # nobody else committed since our last batch
            self._solo_streak = self._solo_streak + 1 if alone else 0
            self.last_seq = first + len(committed) - 1
        return BatchOutcome(committed, first, None, rejected)

    def _insert(
        self, conn: sqlite3.Connection, params: list[Any], rows: int, after: int | None
    ) -> int:
        """Commit the ``rows`` encoded rows in ``params``, numbered after seq ``after`` or,
        when None, by position; returns the seq the first row got."""
        if rows > self._rows_per_statement:
            return self._insert_chunks(conn, params, rows)
        # One statement in autocommit mode is one transaction: one step, one fsync.
        slots = _slots(rows)
        params += padding(rows, slots)
        if after is not None:
            params.append(after)
            try:
                inserted = conn.execute(self._statement(slots, numbered=True), params).rowcount
            except sqlite3.IntegrityError:  # another process committed seq after + 1
                inserted = 0
            if inserted == rows:
                return after + 1
            if inserted:  # the statement inserts all or nothing
                raise sqlite3.DatabaseError(f"journal insert stored {inserted} of {rows} rows")
            # Someone else committed since our last batch: let SQLite number the rows.
            del params[-1]
            params[0 : rows * _WIDTH : _WIDTH] = range(1, rows + 1)
        cursor = conn.execute(self._statement(slots, numbered=False), params)
        last = cursor.lastrowid  # seq is the rowid
        if last is None or cursor.rowcount != rows:
            raise sqlite3.DatabaseError(f"journal insert stored {cursor.rowcount} of {rows} rows")
        return last - rows + 1

    def _insert_chunks(self, conn: sqlite3.Connection, params: list[Any], rows: int) -> int:
        # More rows than one statement can bind: one transaction, numbered in it.
        per = self._rows_per_statement
        conn.execute("BEGIN IMMEDIATE")
        try:
            newest = stored_last_seq(conn)
            params[0 : rows * _WIDTH : _WIDTH] = range(newest + 1, newest + rows + 1)
            for start in range(0, rows, per):
                count = min(per, rows - start)
                slots = _slots(count)
                chunk = params[start * _WIDTH : (start + count) * _WIDTH]
                chunk += padding(count, slots)
                chunk.append(newest)
                inserted = conn.execute(self._statement(slots, numbered=True), chunk).rowcount
                if inserted != count:  # cannot happen: the seqs were read in this transaction
                    raise sqlite3.DatabaseError(f"journal insert stored {inserted} of {count} rows")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return newest + 1

    def _statement(self, slots: int, *, numbered: bool) -> str:
        sql = self._statements.get((slots, numbered))
        if sql is None:
            build = insert_sql if numbered else insert_after_newest_sql
            sql = self._statements[slots, numbered] = build(slots)
        return sql

    # -- the connection (under _lock) -----------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("the ingest journal is closed")
        if self._conn is None:
            try:
                conn = connect(
                    self._path,
                    synchronous=self._synchronous,
                    busy_timeout_s=self._busy_timeout_s,
                )
                try:
                    initialise(conn, self._path)
                    variables = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
                except BaseException:
                    conn.close()
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open the ingest journal {self._path}: {exc}") from exc
            # Each statement binds its rows and one more parameter (see ``insert_sql``).
            rows = (variables - 1) // _WIDTH
            self._rows_per_statement = 1 << max(0, rows.bit_length() - 1)
            self._conn = conn
        return self._conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _drain(queue: deque[Pending]) -> list[Pending]:
    items = []
    while queue:
        items.append(queue.popleft())
    return items


def _slots(rows: int) -> int:
    """``rows`` rounded up to a power of two (statements are cached per size)."""
    return 1 << (rows - 1).bit_length()

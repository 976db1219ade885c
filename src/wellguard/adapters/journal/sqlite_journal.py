"""The embedded ingest journal: an SQLite file in WAL mode with group commit.

Theory of operation: ``submit`` runs on the event loop and only appends the message and
a fresh future to the writer's queue (no thread hop per message). The writer thread
(``_writer``) commits whatever is queued as one batch and resolves the batch's futures
with one ``call_soon_threadsafe``; the gateway sends PUBACK from those futures, so an
acknowledged message is always on disk. Seqs are assigned at commit, 1, 2, 3 ... without
gaps, and continue after a restart. Consumers ``read`` from any thread through a small
pool of read-only connections (WAL lets them read while the writer commits) and sleep in
``wait_for`` until something new is committed.

Durability: with ``synchronous="FULL"`` (the default) every commit fsyncs the WAL, so an
acknowledged message survives power loss and an OS crash (on storage that honours
flushes). With ``"NORMAL"`` commits
reach the OS but are fsynced only at checkpoints: a killed hub process loses nothing,
a power cut may lose the last acknowledged messages. NORMAL is for disposable or
battery-backed hosts.

Overload: ``submit`` raises ``StorageError("journal overloaded")`` at once when
``max_pending`` messages are queued and not yet committed, so memory stays bounded; the
gateway then does not acknowledge and the device resends later.

Several processes: gateway workers may each open their own ``SqliteJournal`` on the
same file as the hub process. Every batch is numbered inside the statement that commits
it (see ``_writer``), so seqs stay dense and unique across processes, and a writer waits
up to ``busy_timeout_s`` for another process's commit to finish. ``last_seq`` reads the
file; ``wait_for`` notices other processes' commits through ``_follower``, which reads
the file every few milliseconds while someone waits. ``stats`` count this process's
commits only.

Retention: see ``retention``. ``compact``, ``set_checkpoint`` and ``drop_checkpoint``
write to the file and may wait for a commit: call them from a worker thread
(``asyncio.to_thread``), not on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from wellguard.adapters.journal._checkpointer import WalCheckpointer
from wellguard.adapters.journal._follower import CommitFollower
from wellguard.adapters.journal._rows import READ_SQL, decode_entries
from wellguard.adapters.journal._sqlite import connect, record_compaction, stored_last_seq
from wellguard.adapters.journal._writer import BatchOutcome, JournalWriter
from wellguard.adapters.journal.retention import JournalRetention, compaction_point
from wellguard.core.ingest.ports import JournalEntry, JournalStats
from wellguard.errors import ConfigError, InvalidInputError, StorageError
from wellguard.model.message import DeviceMessage

__all__ = ["SqliteJournal"]

T = TypeVar("T")

_COMPACT_CHUNK = 5000  # entries deleted per transaction; the writer waits at most one chunk


class _State(enum.Enum):
    NEW = "not started"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class SqliteJournal:
    """``IngestJournal`` and ``JournalCheckpoints`` on an SQLite file (e.g. DATA/journal.db).

    ``max_batch``: most messages per commit. ``max_delay_s``: while busy, the shortest time
    between the starts of two commits, in seconds (an idle journal commits at once).
    ``retention``: what ``compact`` keeps. ``max_pending``: queued, uncommitted messages
    before ``submit`` refuses. ``busy_timeout_s``: how long a commit waits for the write lock
    while another process (or compaction) holds it, before its batch fails."""

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = 2048,
        max_delay_s: float = 0.002,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        retention: JournalRetention = JournalRetention(),
        max_pending: int = 100_000,
        busy_timeout_s: float = 5.0,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ConfigError("journal synchronous must be FULL or NORMAL")
        if not 1 <= max_batch <= 100_000:
            raise ConfigError("journal max_batch must be 1-100000")
        if not 0 <= max_delay_s <= 1:
            raise ConfigError("journal max_delay_s must be 0-1")
        if max_pending < 1 or busy_timeout_s <= 0:
            raise ConfigError("journal max_pending and busy_timeout_s must be positive")
        self._path = path
        self._retention = retention
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._busy_timeout_s = busy_timeout_s
        self._writer = JournalWriter(
            path,
            synchronous=synchronous,
            busy_timeout_s=busy_timeout_s,
            max_batch=max_batch,
            max_delay_s=max_delay_s,
        )
        self._checkpointer = WalCheckpointer(
            path, synchronous=synchronous, busy_timeout_s=busy_timeout_s
        )
        self._follower = CommitFollower(
            path, busy_timeout_s=busy_timeout_s, wanted=self._has_waiters, seen=self._observe
        )
        # Aliases for the hot path.
        self._queue = self._writer.queue
        self._wake = self._writer.wake
        self._full = self._writer.full
        self._state = _State.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._submitted = 0
        self._local_waiters: list[asyncio.Future[None]] = []
        self._foreign_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiter_lock = threading.Lock()
        self._seen = 0  # newest seq read from the file; see _known_seq
        self._seen_lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The journal file."""
        return self._path

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open (creating if needed), recover the newest seq, start the writer thread."""
        if self._state is not _State.NEW:
            raise StorageError(f"the ingest journal is {self._state.value}; it starts once")
        loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the folder of {self._path}: {exc}") from exc
        await asyncio.to_thread(self._writer.open)
        self._loop = loop
        self._stopped = loop.create_future()
        self._writer.start(loop, self._deliver, self._on_commit, self._on_stopped)
        self._checkpointer.start()
        self._state = _State.RUNNING
        self._follower.start()

    async def close(self) -> None:
        """Commit (or fail) everything submitted so far, then stop; idempotent."""
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            return
        if self._state is _State.RUNNING:
            self._state = _State.CLOSING
            self._writer.stop()
        if self._stopped is not None:
            await asyncio.shield(self._stopped)
        await asyncio.to_thread(self._writer.join)
        await asyncio.to_thread(self._checkpointer.stop)
        await asyncio.to_thread(self._follower.stop)
        self._state = _State.CLOSED
        with self._reader_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._release_local_waiters()
        self._wake_foreign_waiters()

    # -- writing ----------------------------------------------------------------------------

    def submit(self, message: DeviceMessage) -> asyncio.Future[int]:
        """Queue ``message`` (on the event loop); the future resolves to its seq once it is
        durable, or fails with ``StorageError``. The message is encoded later, in the
        writer thread: do not change its property dicts after submitting. Cancelling the
        future does not withdraw the message."""
        if self._state is not _State.RUNNING:
            raise StorageError(f"the ingest journal is {self._state.value}")
        if self._submitted - self._writer.settled >= self._max_pending:
            raise StorageError("journal overloaded")
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[int] = loop.create_future()
        queue = self._queue
        queue.append((message, future))
        self._submitted += 1
        if len(queue) == self._max_batch:
            self._full.set()
        if not self._wake.is_set():
            self._wake.set()
        return future

    def _deliver(self, outcome: BatchOutcome) -> None:
        outcome.resolve()
        if outcome.error is None and outcome.committed:
            self._release_local_waiters()

    def _on_commit(self, rows: int) -> None:  # in the writer thread
        self._checkpointer.committed(rows)
        self._wake_foreign_waiters()

    def _on_stopped(self) -> None:
        if self._state is _State.RUNNING:  # the writer died: refuse rather than strand
            self._state = _State.CLOSING
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    # -- reading ----------------------------------------------------------------------------

    def last_seq(self) -> int:
        """The newest seq committed to the file by any process (0 for an empty journal); any
        thread. Reads the file (a few µs); once closed, or should the read fail, it is the
        newest seq this process knows of, which is committed but may not be the newest."""
        if self._state is _State.RUNNING or self._state is _State.CLOSING:
            with contextlib.suppress(StorageError):  # closed meanwhile, or unreadable
                self._observe(self._reading(stored_last_seq))
        return self._known_seq()

    def read(self, after: int, limit: int) -> list[JournalEntry]:
        """Up to ``limit`` committed entries with seq > ``after``, oldest first; any thread."""
        if limit <= 0:
            return []
        (document,) = self._reading(lambda conn: conn.execute(READ_SQL, (after, limit)).fetchone())
        entries = decode_entries(document)
        if entries:
            self._observe(entries[-1].seq)
        return entries

    async def wait_for(self, after: int, timeout: float) -> int:  # noqa: ASYNC109 - the contract
        """Wait until a seq > ``after`` is committed, by this process or another, or
        ``timeout`` seconds pass; return the newest seq known then (without reading the
        file, unlike ``last_seq``). Works from any event loop; returns at once when the
        journal is not running. Other processes' commits are noticed within ~5 ms."""
        if self._known_seq() > after or self._state is not _State.RUNNING:
            return self._known_seq()
        loop = asyncio.get_running_loop()
        local = loop is self._loop
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    waiter: asyncio.Future[None] = loop.create_future()
                    if local:
                        self._local_waiters.append(waiter)
                    else:
                        with self._waiter_lock:
                            self._foreign_waiters.append((loop, waiter))
                    try:
                        self._follower.want()
                        # Registered first, checked second: news in between wakes the waiter.
                        if self._known_seq() > after or self._state is not _State.RUNNING:
                            break
                        await waiter  # released by any news, which may not be enough yet
                    finally:
                        if local:
                            with contextlib.suppress(ValueError):
                                self._local_waiters.remove(waiter)
                        else:
                            with self._waiter_lock, contextlib.suppress(ValueError):
                                self._foreign_waiters.remove((loop, waiter))
        return self._known_seq()

    def _known_seq(self) -> int:
        # This writer's newest commit, or a newer seq read from the file: both committed.
        return max(self._writer.last_seq, self._seen)

    def _observe(self, newest: int) -> None:
        """``newest`` was read from the file (any thread): wake the waiters if it is news."""
        if newest <= self._seen:
            return
        with self._seen_lock:
            if newest <= self._seen:
                return
            self._seen = newest
        if newest > self._writer.last_seq:  # our own commits wake the waiters themselves
            self._wake_foreign_waiters()
            loop = self._loop
            if self._local_waiters and loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    loop.call_soon_threadsafe(self._release_local_waiters)

    def _has_waiters(self) -> bool:
        return bool(self._local_waiters or self._foreign_waiters)

    def _release_local_waiters(self) -> None:
        waiters, self._local_waiters = self._local_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _wake_foreign_waiters(self) -> None:
        if not self._foreign_waiters:  # racy peek: a waiter re-checks after joining
            return
        with self._waiter_lock:
            waiters, self._foreign_waiters = self._foreign_waiters, []
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_release, waiter)

    def _reading(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """``operation`` on a pooled read-only connection (dropped should it fail)."""
        conn = self._take_reader()
        try:
            result = operation(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot read the ingest journal: {exc}") from exc
        self._return_reader(conn)
        return result

    def _take_reader(self) -> sqlite3.Connection:
        with self._reader_lock:
            if self._state is _State.NEW or self._state is _State.CLOSED:
                raise StorageError(f"the ingest journal is {self._state.value}")
            if self._readers:
                return self._readers.pop()
        try:
            return connect(
                self._path,
                synchronous="NORMAL",
                busy_timeout_s=self._busy_timeout_s,
                read_only=True,
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the ingest journal: {exc}") from exc

    def _return_reader(self, conn: sqlite3.Connection) -> None:
        with self._reader_lock:
            if self._state is not _State.CLOSED:
                self._readers.append(conn)
                return
        conn.close()

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self._reading(lambda conn: conn.execute(sql, params).fetchall())

    # -- checkpoints and retention (worker threads, not the event loop) -------------------

    def get_checkpoint(self, name: str) -> int:
        """How far consumer ``name`` got (0 when it never recorded a position)."""
        rows = self._query("SELECT seq FROM journal_checkpoints WHERE consumer = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def set_checkpoint(self, name: str, seq: int) -> None:
        """Record that consumer ``name`` has everything up to and including ``seq``."""
        newest = self.last_seq()
        if not 0 <= seq <= newest:
            raise InvalidInputError(
                f"checkpoint {seq} of {name!r} is outside 0-{newest}", field="seq"
            )
        self._writer.exclusive(
            lambda conn: conn.execute(
                "INSERT INTO journal_checkpoints (consumer, seq) VALUES (?, ?)"
                " ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq",
                (name, seq),
            )
        )

    def drop_checkpoint(self, name: str) -> None:
        """Forget consumer ``name`` so that it no longer holds entries back."""
        self._writer.exclusive(
            lambda conn: conn.execute("DELETE FROM journal_checkpoints WHERE consumer = ?", (name,))
        )

    def checkpoints(self) -> dict[str, int]:
        """Every consumer's checkpoint."""
        rows = self._query("SELECT consumer, seq FROM journal_checkpoints")
        return {str(consumer): int(seq) for consumer, seq in rows}

    def compact(self, keep_after: int) -> int:
        """Delete entries up to ``keep_after`` that every consumer has passed (see
        ``retention``); returns how many were deleted. Runs in chunks so that ingest
        waits for one chunk at most."""
        cut = compaction_point(
            keep_after,
            last_seq=self.last_seq(),
            checkpoints=self.checkpoints(),
            retention=self._retention,
        )
        deleted = 0
        while cut > 0:
            count = self._writer.exclusive(lambda conn: _delete_chunk(conn, cut))
            deleted += count
            if count < _COMPACT_CHUNK:
                break
        return deleted

    # -- metrics ----------------------------------------------------------------------------

    @property
    def stats(self) -> JournalStats:
        """Counters of this process's commits for the metrics endpoint; any thread.
        ``last_seq`` is the newest seq this process knows of (``last_seq()`` reads the
        file; this does not)."""
        return self._writer.stats.snapshot(
            pending=max(0, self._submitted - self._writer.settled), last_seq=self._known_seq()
        )


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _delete_chunk(conn: sqlite3.Connection, through: int) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        deleted = conn.execute(
            "DELETE FROM journal WHERE seq IN"
            " (SELECT seq FROM journal WHERE seq <= ? ORDER BY seq LIMIT ?)",
            (through, _COMPACT_CHUNK),
        ).rowcount
        record_compaction(conn, through)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return int(deleted)

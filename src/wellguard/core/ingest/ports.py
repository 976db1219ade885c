"""Ports of durable ingest: the journal every accepted message is written to first.

Theory of operation: the gateway hands each accepted message to ``IngestJournal.submit``
and sends a QoS 1 PUBACK only when the returned future resolves, which happens once the
message is in durable storage (the embedded hub's SQLite write-ahead journal; a
JetStream publish-ack when scaled out). The journal numbers messages 1, 2, 3 ... in
commit order with no gaps, so consumers (routing) read by sequence number, record how
far they got with a checkpoint (``JournalCheckpoints``) and deliver downstream
at-least-once: nothing acknowledged is lost, and a seq delivered twice is recognisably
the same message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from wellguard.model.message import DeviceMessage

__all__ = ["IngestJournal", "JournalCheckpoints", "JournalEntry", "JournalStats"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A message with its place in the journal (1, 2, 3 ... dense, in commit order)."""

    seq: int
    message: DeviceMessage


@dataclass(frozen=True, slots=True)
class JournalStats:
    """Counters of a journal for the metrics endpoint (monotonic except where noted).

    ``commit_seconds_buckets`` is a cumulative histogram of commit durations, Prometheus
    style: ``(upper bound in seconds, commits that took at most that long)``, the last
    bound being infinity."""

    batches: int
    """Committed batches (one transaction each)."""
    messages: int
    """Messages committed."""
    last_batch_size: int
    """Messages in the latest committed batch (a gauge)."""
    max_batch_size: int
    """Largest committed batch so far."""
    commit_seconds_total: float
    """Sum of commit durations, in seconds."""
    commit_seconds_max: float
    """Longest commit, in seconds."""
    pending: int
    """Messages submitted but not committed or failed yet (a gauge)."""
    failures: int
    """Messages whose future failed (commit failed or message not storable)."""
    failed_batches: int = 0
    """Batches whose commit failed."""
    last_seq: int = 0
    """Newest committed seq (a gauge)."""
    commit_seconds_buckets: tuple[tuple[float, int], ...] = ()
    """Cumulative histogram of commit durations."""


class IngestJournal(Protocol):
    """The durable journal in front of everything that consumes device messages."""

    async def start(self) -> None:
        """Open, recover (seq continues after the newest stored entry), start the writer."""
        ...

    def submit(self, message: DeviceMessage) -> asyncio.Future[int]:
        """Queue ``message`` (on the event loop); the future resolves to its seq once the
        message is durable, or fails with ``StorageError``. QoS 0 callers may ignore the
        future; order is kept either way."""
        ...

    async def close(self) -> None:
        """Make everything submitted so far durable (or fail it), then stop."""
        ...

    def read(self, after: int, limit: int) -> list[JournalEntry]:
        """Up to ``limit`` committed entries with seq > ``after``, oldest first (any thread)."""
        ...

    def last_seq(self) -> int:
        """The newest committed seq (0 when nothing was ever committed)."""
        ...

    async def wait_for(self, after: int, timeout: float) -> int:  # noqa: ASYNC109 - the contract
        """Wait until ``last_seq() > after`` or ``timeout`` seconds pass; return ``last_seq()``."""
        ...


class JournalCheckpoints(Protocol):
    """Named consumer positions kept with the journal; retention never deletes past them."""

    def get_checkpoint(self, name: str) -> int:
        """How far consumer ``name`` got (0 when it never recorded a position)."""
        ...

    def set_checkpoint(self, name: str, seq: int) -> None:
        """Record that consumer ``name`` has everything up to and including ``seq``."""
        ...

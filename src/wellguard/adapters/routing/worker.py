"""The routing worker: reads the ingest journal and delivers each batch to its endpoints.

Theory of operation: one asyncio task loops over the journal from its checkpoint.
Each batch is split by ``RoutingTable.select_endpoints`` into one sub-batch per endpoint;
the endpoints get theirs concurrently. An endpoint either takes its sub-batch, or it is
dead-lettered: at once when the endpoint refuses it (``DeliveryFailedError``, raised by a
webhook after its own retries or on a 4xx), or after the worker's bounded retries when
delivery fails locally (a full disk, a locked database). So an endpoint that is down
delays the others by at most its retry budget, never forever.

Only when every endpoint has taken or dead-lettered its part does the checkpoint move
past the batch: delivery is at-least-once. A crash or restart between delivery and
checkpoint delivers the batch again; the telemetry store and the security inbox
deduplicate by journal seq, webhook and JSON Lines consumers can by ``seq``. If the
dead letters themselves cannot be written (the database is down), the worker keeps the
batch and tries the unfinished endpoints again, with backoff, until it can; nothing is
skipped.

The routing table is reloaded when the store's ``version`` changes, and every
``reload_interval`` seconds for changes made by other processes. A table that cannot be
loaded leaves the previous one in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from wellguard.adapters.routing.endpoints import DeliveryFailedError, EndpointSet
from wellguard.adapters.routing.retry import RetryPolicy
from wellguard.core.ingest.ports import JournalEntry
from wellguard.core.ingest.routing import RoutingTable

__all__ = [
    "CheckpointedJournal",
    "DeadLetterSink",
    "RoutingStats",
    "RoutingTableSource",
    "RoutingWorker",
    "WorkerConfig",
]

_log = logging.getLogger("wellguard.routing")


class CheckpointedJournal(Protocol):
    """The ingest journal (``IngestJournal``) plus named checkpoints (``SqliteJournal``)."""

    def read(self, after: int, limit: int) -> list[JournalEntry]: ...
    def last_seq(self) -> int: ...
    async def wait_for(self, after: int, timeout: float) -> int: ...  # noqa: ASYNC109 - the contract
    def get_checkpoint(self, name: str) -> int: ...
    def set_checkpoint(self, name: str, seq: int) -> None: ...


class RoutingTableSource(Protocol):
    """Where the routing table comes from (``RoutingStore``)."""

    @property
    def version(self) -> int: ...
    def load_table(self) -> RoutingTable: ...


class DeadLetterSink(Protocol):
    """Keeps what endpoints did not take (``RoutingStore``)."""

    def add_dead_letters(
        self, endpoint: str, entries: Sequence[JournalEntry], reason: str
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Batch size (entries), idle wait and reload interval (seconds), local-failure retries."""

    batch_size: int = 500
    idle_wait: float = 5.0
    reload_interval: float = 30.0
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(max_attempts=5, max_elapsed=30.0)
    )


@dataclass(frozen=True, slots=True)
class RoutingStats:
    """A snapshot of the worker's counters (plain dicts, JSON-ready; copies)."""

    checkpoint: int
    last_seq: int
    delivered: dict[str, int]
    dead_lettered: dict[str, int]
    dropped: int

    @property
    def lag(self) -> int:
        """Journal entries not yet routed."""
        return max(0, self.last_seq - self.checkpoint)


class RoutingWorker:
    """Routes the ingest journal to endpoints; run it as one asyncio task."""

    def __init__(
        self,
        journal: CheckpointedJournal,
        table_provider: RoutingTableSource,
        endpoints: EndpointSet,
        checkpoint_name: str = "routing",
        *,
        dead_letters: DeadLetterSink,
        config: WorkerConfig | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self._tables = table_provider
        self._endpoints = endpoints
        self._name = checkpoint_name
        self._dead_letters = dead_letters
        self._config = config or WorkerConfig()
        self._sleep = sleep
        self._clock = clock
        self._table: RoutingTable | None = None
        self._table_version = -1
        self._loaded_at = 0.0
        self._checkpoint: int | None = None
        self._last_seq = 0
        self._delivered: Counter[str] = Counter()
        self._dead: Counter[str] = Counter()
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def stats(self) -> RoutingStats:
        """Delivered and dead-lettered messages per endpoint, dropped messages, lag."""
        checkpoint = self._checkpoint or 0
        # Ask the journal: ``_last_seq`` is only refreshed while the worker idles, so through
        # a backlog (catching up after a restart, sustained load) it equals the checkpoint
        # and the lag would read 0.
        last_seq = max(self._last_seq, checkpoint, self._journal.last_seq())
        return RoutingStats(
            checkpoint=checkpoint,
            last_seq=last_seq,
            delivered=dict(self._delivered),
            dead_lettered=dict(self._dead),
            dropped=self._dropped,
        )

    def start(self) -> asyncio.Task[None]:
        """Start ``run`` as a task of the running loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"routing-worker:{self._name}")
        return self._task

    async def stop(self) -> None:
        """Stop the task; safe at any point, as the checkpoint only moves after delivery."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Route until cancelled; a failing journal is retried, never fatal."""
        failures = 0
        while True:
            try:
                if await self.run_once() == 0:
                    checkpoint = self._checkpoint or 0
                    wait = self._config.idle_wait
                    self._last_seq = await self._journal.wait_for(checkpoint, wait)
                failures = 0
            except Exception:
                # The batch was not checkpointed, so it is read again after the pause.
                failures += 1
                _log.exception("routing batch failed (%d in a row)", failures)
                await self._sleep(
                    min(60.0, self._config.retry.base_delay * 2.0 ** min(failures, 7))
                )

    async def run_once(self) -> int:
        """Route one batch from the checkpoint; returns how many entries it covered."""
        if self._checkpoint is None:
            self._checkpoint = await asyncio.to_thread(self._journal.get_checkpoint, self._name)
        table = await self._current_table()
        if table is None:
            await self._sleep(self._config.idle_wait)
            return 0
        entries = await asyncio.to_thread(
            self._journal.read, self._checkpoint, self._config.batch_size
        )
        if not entries:
            self._last_seq = await asyncio.to_thread(self._journal.last_seq)
            return 0
        groups: dict[str, list[JournalEntry]] = {}
        for entry in entries:
            names = table.select_endpoints(entry.message)
            if not names:
                self._dropped += 1
            for name in names:
                groups.setdefault(name, []).append(entry)
        await self._deliver_all(table, groups)
        last = entries[-1].seq
        await asyncio.to_thread(self._journal.set_checkpoint, self._name, last)
        self._checkpoint = last
        self._last_seq = max(self._last_seq, last)
        return len(entries)

    async def _deliver_all(
        self, table: RoutingTable, groups: dict[str, list[JournalEntry]]
    ) -> None:
        pending = dict(groups)
        attempt = 0
        while pending:
            names = list(pending)
            results = await asyncio.gather(
                *(self._deliver(table, name, pending[name]) for name in names),
                return_exceptions=True,
            )
            for name, result in zip(names, results, strict=True):
                if result is None:
                    del pending[name]
                elif isinstance(result, asyncio.CancelledError):
                    raise result
                else:
                    _log.error("routing to %s is stuck: %s", name, result)
            if pending:
                # Not even the dead-letter store took it: keep the batch and try again.
                attempt += 1
                await self._sleep(min(60.0, self._config.retry.base_delay * 2.0 ** min(attempt, 7)))

    async def _deliver(self, table: RoutingTable, name: str, entries: list[JournalEntry]) -> None:
        policy = self._config.retry
        started = self._clock()
        attempt = 0
        while True:
            try:
                await self._endpoints.get(name, table).deliver(entries)
            except DeliveryFailedError as exc:
                reason = exc.reason
                break
            except Exception as exc:
                attempt += 1
                reason = f"{type(exc).__name__}: {exc}"
                delay = policy.next_delay(attempt, self._clock() - started)
                if delay is None:
                    break
                _log.warning("delivery to %s failed (attempt %d): %s", name, attempt, reason)
                await self._sleep(delay)
            else:
                self._delivered[name] += len(entries)
                return
        _log.warning("dead-lettering %d message(s) for %s: %s", len(entries), name, reason)
        await asyncio.to_thread(self._dead_letters.add_dead_letters, name, entries, reason)
        self._dead[name] += len(entries)

    async def _current_table(self) -> RoutingTable | None:
        version = self._tables.version
        stale = self._clock() - self._loaded_at >= self._config.reload_interval
        if self._table is None or version != self._table_version or stale:
            try:
                self._table = await asyncio.to_thread(self._tables.load_table)
            except Exception:
                _log.exception("cannot load the routing table; keeping the previous one")
            else:
                self._table_version = version
            self._loaded_at = self._clock()
        return self._table

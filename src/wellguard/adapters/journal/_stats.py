"""Counters the journal writer keeps per batch, read as ``JournalStats`` snapshots."""

from __future__ import annotations

import bisect
import threading

from wellguard.core.ingest.ports import JournalStats

__all__ = ["COMMIT_BUCKETS", "StatsRecorder"]

# Upper bounds (seconds) of the commit-duration histogram; +inf is implied.
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class StatsRecorder:
    """Written by the writer thread once per batch; read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches = 0
        self._messages = 0
        self._last_batch = 0
        self._max_batch = 0
        self._seconds_total = 0.0
        self._seconds_max = 0.0
        self._failures = 0
        self._failed_batches = 0
        self._buckets = [0] * (len(COMMIT_BUCKETS) + 1)

    def committed(self, size: int, seconds: float) -> None:
        """A batch of ``size`` messages committed in ``seconds``."""
        with self._lock:
            self._batches += 1
            self._messages += size
            self._last_batch = size
            self._max_batch = max(self._max_batch, size)
            self._seconds_total += seconds
            self._seconds_max = max(self._seconds_max, seconds)
            self._buckets[bisect.bisect_left(COMMIT_BUCKETS, seconds)] += 1

    def failed(self, messages: int, *, batch: bool) -> None:
        """``messages`` futures failed; ``batch`` when it was a commit that failed."""
        with self._lock:
            self._failures += messages
            self._failed_batches += 1 if batch else 0

    def snapshot(self, *, pending: int, last_seq: int) -> JournalStats:
        """The counters now."""
        with self._lock:
            cumulative: list[tuple[float, int]] = []
            running = 0
            for bound, count in zip((*COMMIT_BUCKETS, float("inf")), self._buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            return JournalStats(
                batches=self._batches,
                messages=self._messages,
                last_batch_size=self._last_batch,
                max_batch_size=self._max_batch,
                commit_seconds_total=self._seconds_total,
                commit_seconds_max=self._seconds_max,
                pending=pending,
                failures=self._failures,
                failed_batches=self._failed_batches,
                last_seq=last_seq,
                commit_seconds_buckets=tuple(cumulative),
            )

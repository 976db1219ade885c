"""Per-device activity counters in fixed time buckets, for the security detections.

Theory of operation
-------------------
The gateway counts what each device does (messages each way, twin updates, method calls,
connection attempts, disconnects, authentication failures, bytes) with ``add``. Counts
land in the bucket ``[k * bucket_seconds, (k + 1) * bucket_seconds)`` that holds the
wall-clock time passed in, so samples from several gateways line up. A periodic task
calls ``drain(before=now)``, which removes and returns every bucket that ended at or
before ``before`` (closed buckets, whose values will not change), and ``drain_all`` at
shutdown. Nothing is kept once drained, so memory is bounded by how often one drains.

Between drains, the number of (device, counter) series is capped by ``max_series``:
authentication failures are counted under the id a client *claims*, so an attacker
could otherwise invent ids without limit. Adds that would open a series past the cap are
counted in ``dropped`` instead. Samples come out sorted by bucket, device and counter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from wellguard.errors import InvalidInputError

__all__ = ["CounterName", "CounterSample", "DeviceCounters"]


class CounterName(StrEnum):
    """What is being counted for a device."""

    D2C = "d2c"
    C2D = "c2d"
    C2D_REJECTED = "c2d_rejected"
    TWIN_UPDATES = "twin_updates"
    METHOD_INVOKES = "method_invokes"
    CONNECTION_ATTEMPTS = "connection_attempts"
    DISCONNECTS = "disconnects"
    AUTH_FAILURES = "auth_failures"
    BYTES_IN = "bytes_in"
    BYTES_OUT = "bytes_out"


@dataclass(frozen=True, slots=True)
class CounterSample:
    """The total of one counter for one device over the bucket starting at ``bucket_start``."""

    device_id: str
    bucket_start: float
    name: CounterName
    value: int


class DeviceCounters:
    """Time-bucketed counters per device, drained by a periodic exporter."""

    def __init__(self, bucket_seconds: float = 60, *, max_series: int = 100_000) -> None:
        if not bucket_seconds > 0:
            raise InvalidInputError("bucket_seconds must be positive", field="bucket_seconds")
        if max_series < 1:
            raise InvalidInputError("max_series must be at least 1", field="max_series")
        self.bucket_seconds = bucket_seconds
        self.max_series = max_series
        self._buckets: dict[float, dict[tuple[str, CounterName], int]] = {}
        self._series = 0
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Adds refused because ``max_series`` was reached (since construction)."""
        return self._dropped

    def bucket_start(self, now_wall: float) -> float:
        """The start of the bucket that holds wall-clock time ``now_wall``."""
        return float(math.floor(now_wall / self.bucket_seconds) * self.bucket_seconds)

    def add(self, device_id: str, name: CounterName, n: int, now_wall: float) -> None:
        """Add ``n`` (at least 0) to ``name`` for ``device_id`` at wall-clock ``now_wall``."""
        if n < 0:
            raise InvalidInputError("counter increments must not be negative", field="n")
        start = self.bucket_start(now_wall)
        bucket = self._buckets.get(start)
        key = (device_id, CounterName(name))
        if bucket is None or key not in bucket:
            if self._series >= self.max_series:
                self._dropped += 1
                return
            if bucket is None:
                bucket = self._buckets[start] = {}
            bucket[key] = 0
            self._series += 1
        bucket[key] += n

    def drain(self, before: float) -> list[CounterSample]:
        """Remove and return every bucket that ended at or before wall-clock ``before``."""
        closed = [s for s in self._buckets if s + self.bucket_seconds <= before]
        return self._take(closed)

    def drain_all(self) -> list[CounterSample]:
        """Remove and return every bucket, open or closed."""
        return self._take(list(self._buckets))

    def _take(self, starts: list[float]) -> list[CounterSample]:
        samples: list[CounterSample] = []
        for start in sorted(starts):
            bucket = self._buckets.pop(start)
            self._series -= len(bucket)
            samples.extend(
                CounterSample(device_id, start, name, value)
                for (device_id, name), value in sorted(bucket.items())
            )
        return samples

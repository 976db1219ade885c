"""Batched writes of connection state, last activity and per-device counters."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from wellguard.adapters.sql.hub_state import (
    CounterSampleRow,
    PresenceUpdate,
    SqlCounterStore,
    SqlPresenceStore,
)
from wellguard.core.gateway import CounterSample

__all__ = ["PresenceWriter"]


class PresenceWriter:
    """Collects presence changes on the loop; ``flush`` writes them (from a worker thread)."""

    def __init__(self, presence: SqlPresenceStore, counters: SqlCounterStore) -> None:
        self._presence = presence
        self._counters = counters
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str | None], PresenceUpdate] = {}

    def record(self, update: PresenceUpdate) -> None:
        """Remember the newest state of an identity (later ones win)."""
        with self._lock:
            key = (update.device_id, update.module_id)
            previous = self._pending.get(key)
            if previous is not None and update.connected is None:
                update = PresenceUpdate(
                    update.device_id, update.module_id, previous.connected, update.at
                )
            self._pending[key] = update

    def flush(self) -> None:
        """Write what has been recorded since the last flush."""
        with self._lock:
            batch, self._pending = list(self._pending.values()), {}
        self._presence.apply(batch)

    def reset(self, at: datetime) -> None:
        """Nobody is connected when the gateway starts."""
        self._presence.reset_all(at)

    def write_counters(self, samples: Sequence[CounterSample]) -> None:
        """Persist closed counter buckets."""
        self._counters.add(
            [
                CounterSampleRow(
                    device_id=s.device_id,
                    bucket_start=datetime.fromtimestamp(s.bucket_start, UTC),
                    name=str(s.name),
                    value=int(s.value),
                )
                for s in samples
            ]
        )

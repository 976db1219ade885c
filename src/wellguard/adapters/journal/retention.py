"""How much of the ingest journal ``compact`` may delete.

Consumers (the routing worker, ...) record how far they got with
``set_checkpoint(name, seq)``. ``compact(keep_after)`` deletes entries with
``seq <= keep_after`` that every consumer has passed: the cut is the smallest of
``keep_after``, every recorded checkpoint, ``last_seq - keep_last`` and 0 for each
consumer named in ``consumers`` that has not recorded a checkpoint yet (so nothing is
deleted before the routing worker's first run). A consumer that goes away for good must
``drop_checkpoint``, or it holds the journal forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wellguard.errors import ConfigError

__all__ = ["JournalRetention", "compaction_point"]


@dataclass(frozen=True, slots=True)
class JournalRetention:
    """What ``SqliteJournal.compact`` keeps besides what consumers have not passed."""

    keep_last: int = 0
    """Newest entries kept even when every consumer has passed them (a replay window)."""
    consumers: tuple[str, ...] = ()
    """Consumers that hold everything until they have recorded a checkpoint."""

    def __post_init__(self) -> None:
        if self.keep_last < 0:
            raise ConfigError("journal retention keep_last must be 0 or more")


def compaction_point(
    keep_after: int, *, last_seq: int, checkpoints: Mapping[str, int], retention: JournalRetention
) -> int:
    """The highest seq that may be deleted (0: nothing)."""
    cut = min(keep_after, last_seq - retention.keep_last)
    for consumer in retention.consumers:
        cut = min(cut, checkpoints.get(consumer, 0))
    if checkpoints:
        cut = min(cut, *checkpoints.values())
    return max(cut, 0)

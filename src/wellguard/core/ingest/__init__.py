"""Durable ingest: the journal port every accepted message goes through, and routing."""

from wellguard.core.ingest.ports import (
    IngestJournal,
    JournalCheckpoints,
    JournalEntry,
    JournalStats,
)

__all__ = ["IngestJournal", "JournalCheckpoints", "JournalEntry", "JournalStats"]

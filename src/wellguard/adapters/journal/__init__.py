"""The embedded durable ingest journal (SQLite in WAL mode, group commit)."""

from wellguard.adapters.journal.retention import JournalRetention
from wellguard.adapters.journal.sqlite_journal import SqliteJournal

__all__ = ["JournalRetention", "SqliteJournal"]

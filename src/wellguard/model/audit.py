"""Audit log entries: who did what, when, from where; hash-chained."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["AuditEntry", "AuditRecord"]


@dataclass(frozen=True)
class AuditRecord:
    """What is being recorded, before it gets its place in the chain."""

    at: datetime
    actor: str
    action: str
    target: str
    source: str
    details: dict[str, Any]


@dataclass(frozen=True)
class AuditEntry:
    """A stored audit record with its sequence number and chain hashes."""

    seq: int
    record: AuditRecord
    prev_hash: str
    hash: str

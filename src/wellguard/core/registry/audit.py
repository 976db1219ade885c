"""Hash chain of the audit log.

Theory of operation: every entry's hash is SHA-256 over a canonical JSON rendering of its
sequence number, content and the previous entry's hash. The first entry chains to
``GENESIS``. Editing, deleting or reordering any stored row changes a hash that a later
row (or the row itself) commits to, so ``find_chain_break`` names the first bad entry.
A verifier who also keeps the newest hash somewhere else (printed by ``audit verify``)
detects truncation of the tail too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC

from wellguard.model.audit import AuditEntry, AuditRecord

__all__ = ["GENESIS", "ChainBreak", "chain_hash", "find_chain_break"]

GENESIS = "0" * 64


def chain_hash(seq: int, record: AuditRecord, prev_hash: str) -> str:
    """The hash that entry ``seq`` with ``record`` after ``prev_hash`` must carry."""
    # Stores keep the instant, not the zone it was given in: hash the UTC rendering so
    # an entry read back verifies whatever zone the clock used.
    at = record.at.astimezone(UTC) if record.at.tzinfo is not None else record.at
    canonical = json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor": record.actor,
            "action": record.action,
            "target": record.target,
            "source": record.source,
            "details": record.details,
            "prev": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


class ChainBreak:
    """Where and why the chain does not verify."""

    __slots__ = ("reason", "seq")

    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason

    def __repr__(self) -> str:
        return f"ChainBreak(seq={self.seq}, reason={self.reason!r})"


def find_chain_break(entries: Iterable[AuditEntry]) -> ChainBreak | None:
    """Walk entries in sequence order; return the first that does not verify, else None."""
    prev = GENESIS
    for entry in entries:
        if entry.prev_hash != prev:
            return ChainBreak(entry.seq, "previous-hash link does not match (row removed or moved)")
        if chain_hash(entry.seq, entry.record, entry.prev_hash) != entry.hash:
            return ChainBreak(entry.seq, "content does not match its hash (row edited)")
        prev = entry.hash
    return None

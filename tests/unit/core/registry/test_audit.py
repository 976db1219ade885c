"""The audit hash chain."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellguard.core.registry.audit import GENESIS, chain_hash, find_chain_break
from wellguard.model.audit import AuditEntry, AuditRecord

RECORD = AuditRecord(
    at=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
    actor="admin@test",
    action="device.create",
    target="well-01",
    source="127.0.0.1:50000",
    details={"auth": "sas", "reason": "Prüfung ✓", "n": 1},
)


def build_chain(records: list[AuditRecord], first_seq: int = 1) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS
    for seq, record in enumerate(records, start=first_seq):
        digest = chain_hash(seq, record, prev)
        entries.append(AuditEntry(seq=seq, record=record, prev_hash=prev, hash=digest))
        prev = digest
    return entries


def test_the_hash_of_an_entry_is_stable_across_versions() -> None:
    # Stored chains must keep verifying after an upgrade: the canonical form is frozen.
    assert chain_hash(1, RECORD, GENESIS) == (
        "c2da9d6b83eb9fe1656a6bd036c1d4561482470f10f2855582eab9d7f193c1a7"
    )


def test_the_same_instant_hashes_the_same_in_any_zone() -> None:
    tokyo = RECORD.at.astimezone(timezone(timedelta(hours=9)))

    assert chain_hash(1, replace(RECORD, at=tokyo), GENESIS) == chain_hash(1, RECORD, GENESIS)


def test_the_first_entry_links_to_genesis() -> None:
    entry = build_chain([RECORD])[0]

    assert find_chain_break([entry]) is None
    broken = find_chain_break([replace(entry, prev_hash="1" * 64)])
    assert broken is not None
    assert broken.seq == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
records = st.builds(
    AuditRecord,
    at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    actor=st.text(max_size=10),
    action=st.text(max_size=10),
    target=st.text(max_size=10),
    source=st.text(max_size=10),
    details=st.dictionaries(st.text(max_size=5), json_values, max_size=4),
)
FIELDS = ["at", "actor", "action", "target", "source", "details", "prev_hash", "hash", "seq"]


@given(st.lists(records, min_size=1, max_size=8))
def test_a_chain_of_any_records_verifies(chain_records: list[AuditRecord]) -> None:
    assert find_chain_break(build_chain(chain_records)) is None


def _changed(entry: AuditEntry, field: str) -> AuditEntry:
    record = entry.record
    if field == "at":
        return replace(entry, record=replace(record, at=record.at + timedelta(microseconds=1)))
    if field == "details":
        details: dict[str, Any] = {**record.details, "tampered": not record.details.get("tampered")}
        return replace(entry, record=replace(record, details=details))
    if field in {"actor", "action", "target", "source"}:
        return replace(entry, record=replace(record, **{field: getattr(record, field) + "x"}))
    if field in {"prev_hash", "hash"}:
        value = getattr(entry, field)
        return replace(entry, **{field: ("f" if value[0] != "f" else "e") + value[1:]})
    assert field == "seq"
    return replace(entry, seq=entry.seq + 1000)


@given(st.lists(records, min_size=1, max_size=6), st.data())
def test_any_single_field_change_breaks_the_chain_at_that_entry(
    chain_records: list[AuditRecord], data: st.DataObject
) -> None:
    entries = build_chain(chain_records)
    index = data.draw(st.integers(0, len(entries) - 1), label="index")
    field = data.draw(st.sampled_from(FIELDS), label="field")
    tampered = _changed(entries[index], field)
    entries[index] = tampered

    broken = find_chain_break(entries)

    assert broken is not None
    assert broken.seq == tampered.seq


@given(st.lists(records, min_size=2, max_size=6), st.data())
def test_removing_or_swapping_entries_breaks_the_chain(
    chain_records: list[AuditRecord], data: st.DataObject
) -> None:
    entries = build_chain(chain_records)
    index = data.draw(st.integers(0, len(entries) - 2), label="index")

    removed = find_chain_break(entries[:index] + entries[index + 1 :])
    swapped = find_chain_break(
        [*entries[:index], entries[index + 1], entries[index], *entries[index + 2 :]]
    )

    assert removed is not None
    assert removed.seq == entries[index + 1].seq
    assert "removed" in removed.reason
    assert swapped is not None
    assert swapped.seq == entries[index + 1].seq


@pytest.mark.parametrize("field", FIELDS)
def test_each_field_is_covered_by_the_hash(field: str) -> None:
    entries = build_chain([RECORD, replace(RECORD, action="device.update")])
    entries[1] = _changed(entries[1], field)

    broken = find_chain_break(entries)

    assert broken is not None
    assert broken.seq == entries[1].seq

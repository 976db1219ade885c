"""Bulk registry operations: up to 100 device changes in one call, each on its own.

Theory of operation: IoT Hub's ``POST /devices`` takes a list of entries, each naming a
device and what to do with it (``ImportMode``): create it, replace its settings, delete
it, or patch its twin, unconditionally or only if the etag the caller holds still
matches. A device may be named once per call, at most ``MAX_IMPORT_ENTRIES`` entries.

``Registry.bulk_import`` plans every entry with the same code as the single-device calls
(one validation of a device, one audit record per change) and answers per entry: the
entries that cannot apply are reported as ``ImportFailure`` with the error the single
call would have raised, while the others go ahead. The device changes are written as one
batch (one transaction in which a change that fails is undone alone, see the store
port), so creating many devices costs one commit per call instead of one per device;
each committed change is then announced as the single call announces it. Twin patches
go through ``Registry.update_twin`` one by one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from wellguard.core.registry.changes import Actor, DeviceChanges, new_etag
from wellguard.core.registry.ports import DeviceChange
from wellguard.core.registry.specs import AuthSpec, DeviceSettings
from wellguard.core.registry.twins import apply_twin_patch
from wellguard.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    RegistryError,
)
from wellguard.model.device import AuthType, Device

__all__ = [
    "MAX_IMPORT_ENTRIES",
    "ImportEntry",
    "ImportFailure",
    "ImportMode",
    "ImportResult",
    "check_entry_count",
    "check_import_request",
    "plan_import",
    "repeated_identities",
]

MAX_IMPORT_ENTRIES = 100  # IoT Hub's limit per bulk registry call
_SAS = DeviceSettings(AuthSpec(AuthType.SAS))


class ImportMode(StrEnum):
    """What an entry asks for (IoT Hub's ``importMode`` names)."""

    CREATE = "create"
    UPDATE = "update"
    UPDATE_IF_MATCH_ETAG = "updateIfMatchETag"
    DELETE = "delete"
    DELETE_IF_MATCH_ETAG = "deleteIfMatchETag"
    UPDATE_TWIN = "updateTwin"
    UPDATE_TWIN_IF_MATCH_ETAG = "updateTwinIfMatchETag"

    @property
    def matches_etag(self) -> bool:
        """Whether the change applies only while the caller's etag is current."""
        return self.value.endswith("IfMatchETag")

    @property
    def changes_twin(self) -> bool:
        """The twin modes: the entry carries tags and desired properties to merge."""
        return self in (ImportMode.UPDATE_TWIN, ImportMode.UPDATE_TWIN_IF_MATCH_ETAG)

    @property
    def deletes(self) -> bool:
        """The delete modes."""
        return self in (ImportMode.DELETE, ImportMode.DELETE_IF_MATCH_ETAG)


@dataclass(frozen=True)
class ImportEntry:
    """One requested change of a bulk registry operation.

    ``settings`` are those of a created or replaced device. ``etag`` is checked by the
    ``...IfMatchETag`` device modes, ``twin_etag`` by ``updateTwinIfMatchETag``. ``tags``
    and ``desired`` seed the twin of a created device, or are merged into the twin by the
    twin modes. Each mode ignores the fields it does not use.
    """

    device_id: str
    mode: ImportMode
    settings: DeviceSettings = _SAS
    module_id: str | None = None
    etag: str | None = None
    twin_etag: str | None = None
    tags: dict[str, Any] | None = None
    desired: dict[str, Any] | None = None

    @property
    def expected_etag(self) -> str | None:
        """The etag the change is conditional on, or None for an unconditional change."""
        if not self.mode.matches_etag:
            return None
        return self.twin_etag if self.mode.changes_twin else self.etag

    @property
    def key(self) -> str:
        """The identity the entry names, as ``device`` or ``device/module``."""
        return self.device_id if self.module_id is None else f"{self.device_id}/{self.module_id}"


@dataclass(frozen=True)
class ImportFailure:
    """An entry that was not applied, with the error the single call would have raised."""

    index: int
    entry: ImportEntry
    error: InvalidInputError | RegistryError


@dataclass(frozen=True)
class ImportResult:
    """What a bulk registry operation did: how many entries applied, which did not."""

    applied: int
    failures: tuple[ImportFailure, ...] = ()

    @property
    def succeeded(self) -> bool:
        """True when every entry applied."""
        return not self.failures


def repeated_identities(entries: Sequence[ImportEntry]) -> list[str]:
    """The identities named by more than one entry, in order of first appearance."""
    counts = Counter(entry.key for entry in entries)
    return [key for key, count in counts.items() if count > 1]


def check_entry_count(count: int) -> None:
    """InvalidInputError when a bulk registry operation has more entries than allowed."""
    if count > MAX_IMPORT_ENTRIES:
        raise InvalidInputError(
            f"a bulk registry operation takes at most {MAX_IMPORT_ENTRIES} entries, not {count}"
        )


def check_import_request(entries: Sequence[ImportEntry]) -> None:
    """Refuse a request IoT Hub refuses as a whole: too many entries, a repeated identity."""
    check_entry_count(len(entries))
    repeated = repeated_identities(entries)
    if repeated:
        raise InvalidInputError(
            "each identity may appear once per bulk registry operation; repeated: "
            + ", ".join(repeated),
            field="id",
        )


def plan_import(
    entry: ImportEntry, current: Device | None, changes: DeviceChanges, actor: Actor
) -> DeviceChange | None:
    """The device change ``entry`` asks for, given the device as it is now (``current``),
    or None for a twin patch; raises what the single call would for an entry that cannot
    apply. The store checks the etag again when it writes: ``current`` may be stale."""
    if entry.module_id is not None:
        raise InvalidInputError(
            "bulk registry operations on module identities are not supported;"
            " create, replace or delete a module on its own",
            field="moduleId",
        )
    if entry.mode is ImportMode.CREATE:
        if current is not None:
            raise AlreadyExistsError("device", entry.device_id)
        created = changes.to_create(entry.device_id, entry.settings, actor)
        if entry.tags is None and entry.desired is None:
            return created
        twin = apply_twin_patch(
            created.twin, tags=entry.tags, desired=entry.desired, new_etag=new_etag()
        )
        return replace(created, twin=twin)
    if entry.mode.changes_twin:
        return None
    expected = entry.expected_etag
    if current is None:
        raise NotFoundError("device", entry.device_id)
    if expected is not None and expected != current.etag:
        raise PreconditionFailedError("device", entry.device_id)
    if entry.mode.deletes:
        return changes.to_remove(entry.device_id, actor, expected)
    return changes.to_replace(current, entry.settings, actor, expected)

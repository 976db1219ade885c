"""Ports of the registry: what it needs from a store, as small protocols.

Every mutating method takes the ``AuditRecord`` of the administrative action, so the
change and its audit entry commit in one transaction or not at all. ``expected_etag``
None means "whatever is there" (IoT Hub's ``If-Match: *``). The SQL adapter
(``wellguard.adapters.sql``) implements all of them for SQLite and PostgreSQL.

``DeviceBatchStore`` writes many device changes (``DeviceChange``, each carrying its own
audit record) in one transaction, each as if in a savepoint of its own: a change that
fails (the device exists, is gone, or its etag moved) is undone alone and reported in
its place, and the others commit together.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from wellguard.errors import RegistryError
from wellguard.model.audit import AuditEntry, AuditRecord
from wellguard.model.certificate import IssuedCertificate
from wellguard.model.configuration import Configuration
from wellguard.model.device import Device, Module
from wellguard.model.policy import SharedAccessPolicy
from wellguard.model.twin import Twin

__all__ = [
    "AuditStore",
    "CertificateStore",
    "ConfigurationStore",
    "DeviceBatchStore",
    "DeviceChange",
    "DeviceStore",
    "InsertDevice",
    "ModuleStore",
    "PolicyStore",
    "RegistryStore",
    "RemoveDevice",
    "ReplaceDevice",
    "TwinStore",
]


class DeviceStore(Protocol):
    """Device identities."""

    def insert_device(self, device: Device, twin: Twin, audit: AuditRecord) -> None: ...
    def get_device(self, device_id: str) -> Device | None: ...
    def get_devices(self, device_ids: Collection[str]) -> dict[str, Device]: ...
    def list_devices(self, *, after: str | None, limit: int) -> list[Device]: ...
    def update_device(
        self, device: Device, expected_etag: str | None, audit: AuditRecord
    ) -> None: ...
    def delete_device(
        self, device_id: str, expected_etag: str | None, audit: AuditRecord
    ) -> None: ...


@dataclass(frozen=True)
class InsertDevice:
    """Store a new device with its twin (fails with AlreadyExistsError)."""

    device: Device
    twin: Twin
    audit: AuditRecord


@dataclass(frozen=True)
class ReplaceDevice:
    """Replace a device if its etag still matches (NotFoundError, PreconditionFailedError)."""

    device: Device
    expected_etag: str | None
    audit: AuditRecord


@dataclass(frozen=True)
class RemoveDevice:
    """Delete a device with its modules and twins if its etag still matches."""

    device_id: str
    expected_etag: str | None
    audit: AuditRecord


DeviceChange = InsertDevice | ReplaceDevice | RemoveDevice


class DeviceBatchStore(Protocol):
    """Many device changes at once (bulk registry operations)."""

    def apply_device_changes(
        self, changes: Sequence[DeviceChange]
    ) -> list[RegistryError | None]: ...


class ModuleStore(Protocol):
    """Module identities within devices."""

    def insert_module(self, module: Module, twin: Twin, audit: AuditRecord) -> None: ...
    def get_module(self, device_id: str, module_id: str) -> Module | None: ...
    def list_modules(self, device_id: str) -> list[Module]: ...
    def update_module(
        self, module: Module, expected_etag: str | None, audit: AuditRecord
    ) -> None: ...
    def delete_module(
        self, device_id: str, module_id: str, expected_etag: str | None, audit: AuditRecord
    ) -> None: ...


class TwinStore(Protocol):
    """Twins of devices and modules."""

    def get_twin(self, device_id: str, module_id: str | None) -> Twin | None: ...
    def update_twin(
        self, twin: Twin, expected_etag: str | None, audit: AuditRecord | None
    ) -> None: ...
    def iter_twins(self, *, modules: bool) -> Iterator[tuple[Twin, Device | Module]]: ...
    def count_devices(self) -> dict[str, int]: ...


class PolicyStore(Protocol):
    """Shared access policies."""

    def list_policies(self) -> list[SharedAccessPolicy]: ...
    def put_policy(self, policy: SharedAccessPolicy, audit: AuditRecord) -> None: ...


class CertificateStore(Protocol):
    """Certificates issued by the hub CA and their revocation."""

    def record_certificate(self, cert: IssuedCertificate, audit: AuditRecord) -> None: ...
    def get_certificate(self, serial: int) -> IssuedCertificate | None: ...
    def list_certificates(
        self, *, device_id: str | None, after: int | None, limit: int
    ) -> list[IssuedCertificate]: ...
    def revoke_certificate(
        self, serial: int, at: datetime, reason: str, audit: AuditRecord
    ) -> IssuedCertificate: ...
    def revoked_certificates(self) -> list[IssuedCertificate]: ...


class ConfigurationStore(Protocol):
    """Automatic device configurations."""

    def put_configuration(
        self, conf: Configuration, expected_etag: str | None, audit: AuditRecord
    ) -> bool: ...
    def get_configuration(self, configuration_id: str) -> Configuration | None: ...
    def list_configurations(self, limit: int) -> list[Configuration]: ...
    def delete_configuration(
        self, configuration_id: str, expected_etag: str | None, audit: AuditRecord
    ) -> None: ...


class AuditStore(Protocol):
    """The append-only, hash-chained audit log."""

    def append_audit(self, record: AuditRecord) -> AuditEntry: ...
    def list_audit(self, *, after: int | None, limit: int) -> list[AuditEntry]: ...
    def iter_audit(self) -> Iterator[AuditEntry]: ...


class RegistryStore(
    DeviceStore,
    DeviceBatchStore,
    ModuleStore,
    TwinStore,
    PolicyStore,
    CertificateStore,
    ConfigurationStore,
    AuditStore,
    Protocol,
):
    """Everything the registry service needs, as one store."""

"""Mapping between registry model objects and SQL rows (secrets sealed on the way in)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from wellguard.core.secretbox import SecretBox
from wellguard.model.audit import AuditEntry, AuditRecord
from wellguard.model.certificate import IssuedCertificate
from wellguard.model.configuration import Configuration
from wellguard.model.device import (
    Authentication,
    AuthType,
    ConnectionState,
    Device,
    DeviceStatus,
    LifecycleState,
    Module,
)
from wellguard.model.policy import AccessRights, SharedAccessPolicy
from wellguard.model.twin import Twin

__all__ = ["RowMapper"]


class RowMapper:
    """Converts rows to model objects and back; seals and opens symmetric keys."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    def _seal(self, value: str | None, context: str) -> str | None:
        return None if value is None else self._box.seal(value.encode(), context=context.encode())

    def _open(self, value: str | None, context: str) -> str | None:
        return None if value is None else self._box.open(value, context=context.encode()).decode()

    def auth_columns(self, owner: str, auth: Authentication) -> dict[str, Any]:
        """Columns that hold ``auth``; keys are sealed and bound to ``owner``."""
        return {
            "auth_type": auth.type.value,
            "primary_key_sealed": self._seal(auth.primary_key, f"{owner}:primary"),
            "secondary_key_sealed": self._seal(auth.secondary_key, f"{owner}:secondary"),
            "primary_thumbprint": auth.primary_thumbprint,
            "secondary_thumbprint": auth.secondary_thumbprint,
        }

    def auth_from_row(self, owner: str, row: Row[Any]) -> Authentication:
        """The ``Authentication`` stored in ``row``."""
        return Authentication(
            type=AuthType(row.auth_type),
            primary_key=self._open(row.primary_key_sealed, f"{owner}:primary"),
            secondary_key=self._open(row.secondary_key_sealed, f"{owner}:secondary"),
            primary_thumbprint=row.primary_thumbprint,
            secondary_thumbprint=row.secondary_thumbprint,
        )

    def device_values(self, device: Device) -> dict[str, Any]:
        """Row values of a device."""
        return {
            "device_id": device.device_id,
            "generation_id": device.generation_id,
            "etag": device.etag,
            "status": device.status.value,
            "status_reason": device.status_reason,
            "status_updated": device.status_updated,
            **self.auth_columns(f"device:{device.device_id}", device.authentication),
            "connection_state": device.connection_state.value,
            "connection_state_updated": device.connection_state_updated,
            "last_activity": device.last_activity,
            "c2d_count": device.c2d_count,
            "iot_edge": device.iot_edge,
            "lifecycle": device.lifecycle.value,
            "created": device.created,
            "updated": device.updated,
        }

    def device_from_row(self, row: Row[Any]) -> Device:
        """The device stored in ``row``."""
        return Device(
            device_id=row.device_id,
            generation_id=row.generation_id,
            etag=row.etag,
            status=DeviceStatus(row.status),
            status_reason=row.status_reason,
            status_updated=row.status_updated,
            authentication=self.auth_from_row(f"device:{row.device_id}", row),
            connection_state=ConnectionState(row.connection_state),
            connection_state_updated=row.connection_state_updated,
            last_activity=row.last_activity,
            c2d_count=row.c2d_count,
            iot_edge=bool(row.iot_edge),
            lifecycle=LifecycleState(row.lifecycle),
            created=row.created,
            updated=row.updated,
        )

    def module_values(self, module: Module) -> dict[str, Any]:
        """Row values of a module."""
        owner = f"module:{module.device_id}/{module.module_id}"
        return {
            "device_id": module.device_id,
            "module_id": module.module_id,
            "generation_id": module.generation_id,
            "etag": module.etag,
            **self.auth_columns(owner, module.authentication),
            "managed_by": module.managed_by,
            "connection_state": module.connection_state.value,
            "connection_state_updated": module.connection_state_updated,
            "last_activity": module.last_activity,
            "c2d_count": module.c2d_count,
            "created": module.created,
            "updated": module.updated,
        }

    def module_from_row(self, row: Row[Any]) -> Module:
        """The module stored in ``row``."""
        owner = f"module:{row.device_id}/{row.module_id}"
        return Module(
            device_id=row.device_id,
            module_id=row.module_id,
            generation_id=row.generation_id,
            etag=row.etag,
            authentication=self.auth_from_row(owner, row),
            managed_by=row.managed_by,
            connection_state=ConnectionState(row.connection_state),
            connection_state_updated=row.connection_state_updated,
            last_activity=row.last_activity,
            c2d_count=row.c2d_count,
            created=row.created,
            updated=row.updated,
        )

    @staticmethod
    def twin_values(twin: Twin) -> dict[str, Any]:
        """Row values of a twin (module_id '' for a device twin)."""
        return {
            "device_id": twin.device_id,
            "module_id": twin.module_id or "",
            "etag": twin.etag,
            "version": twin.version,
            "tags": twin.tags,
            "desired": twin.desired,
            "desired_version": twin.desired_version,
            "reported": twin.reported,
            "reported_version": twin.reported_version,
        }

    @staticmethod
    def twin_from_row(row: Row[Any]) -> Twin:
        """The twin stored in ``row``."""
        return Twin(
            device_id=row.device_id,
            module_id=row.module_id or None,
            etag=row.etag,
            version=row.version,
            tags=row.tags,
            desired=row.desired,
            desired_version=row.desired_version,
            reported=row.reported,
            reported_version=row.reported_version,
        )

    def policy_values(self, policy: SharedAccessPolicy) -> dict[str, Any]:
        """Row values of a policy."""
        return {
            "name": policy.name,
            "rights": policy.rights.render(),
            "primary_key_sealed": self._seal(policy.primary_key, f"policy:{policy.name}:primary"),
            "secondary_key_sealed": self._seal(
                policy.secondary_key, f"policy:{policy.name}:secondary"
            ),
        }

    def policy_from_row(self, row: Row[Any]) -> SharedAccessPolicy:
        """The policy stored in ``row``."""
        return SharedAccessPolicy(
            name=row.name,
            rights=AccessRights.parse(row.rights),
            primary_key=self._open(row.primary_key_sealed, f"policy:{row.name}:primary") or "",
            secondary_key=self._open(row.secondary_key_sealed, f"policy:{row.name}:secondary")
            or "",
        )

    @staticmethod
    def certificate_from_row(row: Row[Any]) -> IssuedCertificate:
        """The issued certificate stored in ``row``."""
        return IssuedCertificate(
            serial=int(row.serial),
            device_id=row.device_id,
            subject=row.subject,
            not_before=row.not_before,
            not_after=row.not_after,
            sha256_thumbprint=row.sha256_thumbprint,
            pem=row.pem,
            revoked_at=row.revoked_at,
            revocation_reason=row.revocation_reason,
        )

    @staticmethod
    def configuration_values(conf: Configuration) -> dict[str, Any]:
        """Row values of a configuration."""
        return {
            "configuration_id": conf.configuration_id,
            "etag": conf.etag,
            "schema_version": conf.schema_version,
            "labels": conf.labels,
            "content": conf.content,
            "target_condition": conf.target_condition,
            "priority": conf.priority,
            "metrics": conf.metrics,
            "created": conf.created,
            "updated": conf.updated,
        }

    @staticmethod
    def configuration_from_row(row: Row[Any]) -> Configuration:
        """The configuration stored in ``row``."""
        return Configuration(
            configuration_id=row.configuration_id,
            etag=row.etag,
            schema_version=row.schema_version,
            labels=row.labels,
            content=row.content,
            target_condition=row.target_condition,
            priority=row.priority,
            metrics=row.metrics,
            created=row.created,
            updated=row.updated,
        )

    @staticmethod
    def audit_from_row(row: Row[Any]) -> AuditEntry:
        """The audit entry stored in ``row``."""
        return AuditEntry(
            seq=row.seq,
            record=AuditRecord(
                at=row.at,
                actor=row.actor,
                action=row.action,
                target=row.target,
                source=row.source,
                details=row.details,
            ),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )

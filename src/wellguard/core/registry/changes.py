"""Device changes before they are stored: the device as it will be, and its audit record.

Theory of operation: creating, replacing or deleting a device is first built here as a
value (``InsertDevice``, ``ReplaceDevice``, ``RemoveDevice`` of the store port) stamped
with the injected clock: ids validated, keys generated or checked, a fresh etag and the
audit record of who asked and from where. Nothing is read or written here; the registry
reads the current device, has the change built and hands it to the store, which writes
the change and its audit record in one transaction. The single-device calls and the bulk
registry operation build their changes with the same ``DeviceChanges``, so a device is
validated, stamped and audited one way whichever call made it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from wellguard.core.registry.ports import InsertDevice, RemoveDevice, ReplaceDevice
from wellguard.core.registry.specs import DeviceSettings, keep_unstated_keys
from wellguard.errors import InvalidInputError
from wellguard.model.audit import AuditRecord
from wellguard.model.device import ConnectionState, Device, LifecycleState
from wellguard.model.ids import validate_device_id
from wellguard.model.twin import Twin

__all__ = [
    "Actor",
    "DeviceChanges",
    "new_etag",
    "new_generation_id",
    "refuse_if_decommissioned",
]


def new_etag() -> str:
    """A fresh opaque etag."""
    return base64.b64encode(secrets.token_bytes(9)).decode("ascii")


def new_generation_id() -> str:
    """A fresh generation id (IoT Hub's 18 digits)."""
    return str(secrets.randbelow(10**18)).rjust(18, "6")


@dataclass(frozen=True)
class Actor:
    """Who asks for an administrative action, and from where (for the audit log)."""

    name: str
    source: str


class DeviceChanges:
    """Builds device changes and audit records with the registry's clock."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    def audit(self, actor: Actor, action: str, target: str, **details: Any) -> AuditRecord:
        """The audit record of ``actor`` doing ``action`` to ``target`` now."""
        return AuditRecord(
            at=self._clock(),
            actor=actor.name,
            action=action,
            target=target,
            source=actor.source,
            details=details,
        )

    def to_create(self, device_id: str, settings: DeviceSettings, actor: Actor) -> InsertDevice:
        """A new device with an empty twin (InvalidInputError for a bad id or keys)."""
        validate_device_id(device_id)
        now = self._clock()
        device = Device(
            device_id=device_id,
            generation_id=new_generation_id(),
            etag=new_etag(),
            status=settings.status,
            status_reason=settings.status_reason,
            status_updated=now,
            authentication=settings.auth.resolve(),
            connection_state=ConnectionState.DISCONNECTED,
            connection_state_updated=None,
            last_activity=None,
            c2d_count=0,
            iot_edge=settings.iot_edge,
            lifecycle=LifecycleState.PROVISIONED,
            created=now,
            updated=now,
        )
        twin = Twin(device_id=device_id, module_id=None, etag=new_etag(), version=1)
        record = self.audit(actor, "device.create", device_id, auth=settings.auth.type.value)
        return InsertDevice(device, twin, record)

    def to_replace(
        self, current: Device, settings: DeviceSettings, actor: Actor, expected_etag: str | None
    ) -> ReplaceDevice:
        """``current`` with new settings; keys the settings leave out are kept."""
        refuse_if_decommissioned(current)
        now = self._clock()
        status = settings.status
        authentication = keep_unstated_keys(settings.auth, current.authentication).resolve()
        updated = replace(
            current,
            etag=new_etag(),
            status=status,
            status_reason=settings.status_reason,
            status_updated=now if status != current.status else current.status_updated,
            authentication=authentication,
            iot_edge=settings.iot_edge,
            updated=now,
        )
        record = self.audit(
            actor,
            "device.update",
            current.device_id,
            status=status.value,
            auth=authentication.type.value,
            credentials_changed=authentication != current.authentication,
        )
        return ReplaceDevice(updated, expected_etag, record)

    def to_remove(self, device_id: str, actor: Actor, expected_etag: str | None) -> RemoveDevice:
        """The deletion of a device with its modules and twins."""
        return RemoveDevice(device_id, expected_etag, self.audit(actor, "device.delete", device_id))


def refuse_if_decommissioned(device: Device) -> None:
    """InvalidInputError when ``device`` is decommissioned (it can only be deleted)."""
    # Decommissioning is final: re-enabling would let modules (whose keys survive) connect
    # again, and a PUT would hand the device fresh keys. Deleting it is still allowed.
    if device.lifecycle is LifecycleState.DECOMMISSIONED:
        raise InvalidInputError(
            f"device {device.device_id!r} is decommissioned; it can only be deleted",
            field="lifecycle",
        )

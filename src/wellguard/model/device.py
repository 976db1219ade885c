"""Devices and module identities as the registry holds them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from wellguard.errors import InvalidInputError

__all__ = [
    "AuthType",
    "Authentication",
    "ConnectionState",
    "Device",
    "DeviceStatus",
    "LifecycleState",
    "Module",
    "can_transition",
]


class AuthType(StrEnum):
    """How a device proves who it is (IoT Hub's names)."""

    SAS = "sas"
    SELF_SIGNED = "selfSigned"
    CERTIFICATE_AUTHORITY = "certificateAuthority"
    NONE = "none"


class DeviceStatus(StrEnum):
    """Whether a device may connect."""

    ENABLED = "enabled"
    DISABLED = "disabled"


class ConnectionState(StrEnum):
    """Whether the device has a live connection to the gateway."""

    CONNECTED = "Connected"
    DISCONNECTED = "Disconnected"


class LifecycleState(StrEnum):
    """Where a device is in its life in the field."""

    PROVISIONED = "provisioned"
    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    RETIRED = "retired"
    DECOMMISSIONED = "decommissioned"


_TRANSITIONS: dict[LifecycleState, frozenset[LifecycleState]] = {
    LifecycleState.PROVISIONED: frozenset(
        {LifecycleState.ACTIVE, LifecycleState.RETIRED, LifecycleState.DECOMMISSIONED}
    ),
    LifecycleState.ACTIVE: frozenset(
        {LifecycleState.MAINTENANCE, LifecycleState.RETIRED, LifecycleState.DECOMMISSIONED}
    ),
    LifecycleState.MAINTENANCE: frozenset(
        {LifecycleState.ACTIVE, LifecycleState.RETIRED, LifecycleState.DECOMMISSIONED}
    ),
    LifecycleState.RETIRED: frozenset({LifecycleState.ACTIVE, LifecycleState.DECOMMISSIONED}),
    LifecycleState.DECOMMISSIONED: frozenset(),
}


def can_transition(current: LifecycleState, target: LifecycleState) -> bool:
    """True when a device may move from ``current`` to ``target``; decommission is final."""
    return target in _TRANSITIONS[current]


@dataclass(frozen=True)
class Authentication:
    """Credentials of a device or module. Keys are plain here; the store encrypts them."""

    type: AuthType
    primary_key: str | None = None
    secondary_key: str | None = None
    primary_thumbprint: str | None = None
    secondary_thumbprint: str | None = None

    def __post_init__(self) -> None:
        if self.type is AuthType.SAS and not (self.primary_key and self.secondary_key):
            raise InvalidInputError(
                "sas authentication needs a primary and a secondary key", field="authentication"
            )
        if self.type is AuthType.SELF_SIGNED and not self.primary_thumbprint:
            raise InvalidInputError(
                "selfSigned authentication needs a primary thumbprint", field="authentication"
            )


@dataclass(frozen=True)
class Device:
    """A device identity."""

    device_id: str
    generation_id: str
    etag: str
    status: DeviceStatus
    status_reason: str | None
    status_updated: datetime
    authentication: Authentication
    connection_state: ConnectionState
    connection_state_updated: datetime | None
    last_activity: datetime | None
    c2d_count: int
    iot_edge: bool
    lifecycle: LifecycleState
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class Module:
    """A module identity within a device (the security agent runs as one)."""

    device_id: str
    module_id: str
    generation_id: str
    etag: str
    authentication: Authentication
    managed_by: str | None
    connection_state: ConnectionState
    connection_state_updated: datetime | None
    last_activity: datetime | None
    c2d_count: int
    created: datetime
    updated: datetime

"""Plain typed data: value objects and records, no IO."""

from wellguard.model.device import (
    Authentication,
    AuthType,
    ConnectionState,
    Device,
    DeviceStatus,
    LifecycleState,
    Module,
    can_transition,
)
from wellguard.model.ids import validate_configuration_id, validate_device_id, validate_module_id
from wellguard.model.policy import DEFAULT_POLICY_RIGHTS, AccessRights, SharedAccessPolicy

__all__ = [
    "DEFAULT_POLICY_RIGHTS",
    "AccessRights",
    "AuthType",
    "Authentication",
    "ConnectionState",
    "Device",
    "DeviceStatus",
    "LifecycleState",
    "Module",
    "SharedAccessPolicy",
    "can_transition",
    "validate_configuration_id",
    "validate_device_id",
    "validate_module_id",
]

"""Messages that enter the hub: device telemetry and the hub's own event streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "SECURITY_INTERFACE_ID",
    "DeviceMessage",
    "MessageSource",
    "SystemProperty",
]

SECURITY_INTERFACE_ID = "urn:azureiot:Security:SecurityAgent:1"


class MessageSource(StrEnum):
    """Where a message comes from (IoT Hub's routing sources)."""

    TELEMETRY = "DeviceMessages"
    TWIN_CHANGE = "TwinChangeEvents"
    LIFECYCLE = "DeviceLifecycleEvents"
    CONNECTION_STATE = "DeviceConnectionStateEvents"


class SystemProperty(StrEnum):
    """System properties a message may carry, by their routing-query names (no ``$``).

    On MQTT they arrive in the topic's property bag under the ``$.`` short names
    (``$.mid`` → messageId, ``$.ct`` → contentType, ...)."""

    MESSAGE_ID = "messageId"
    CORRELATION_ID = "correlationId"
    USER_ID = "userId"
    TO = "to"
    CONTENT_TYPE = "contentType"
    CONTENT_ENCODING = "contentEncoding"
    EXPIRY_TIME = "expiryTimeUtc"
    CREATION_TIME = "iothub-creation-time-utc"
    INTERFACE_ID = "interfaceId"
    DATA_SCHEMA = "dt-dataschema"
    COMPONENT_NAME = "dt-subject"


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """One message as the hub stores and routes it; ``body`` is opaque bytes."""

    device_id: str
    module_id: str | None
    enqueued_at: datetime
    source: MessageSource
    body: bytes
    system_properties: dict[str, str] = field(default_factory=dict)
    app_properties: dict[str, str] = field(default_factory=dict)

    @property
    def is_security_message(self) -> bool:
        """True for ASC security messages (``$.ifid`` of the security agent)."""
        return self.system_properties.get(SystemProperty.INTERFACE_ID) == SECURITY_INTERFACE_ID

    @property
    def message_id(self) -> str | None:
        """The device-assigned message id, if any."""
        return self.system_properties.get(SystemProperty.MESSAGE_ID)

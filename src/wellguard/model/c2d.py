"""Cloud-to-device messages and their feedback records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = ["C2dAck", "C2dFeedback", "C2dMessage", "C2dOutcome"]


class C2dAck(StrEnum):
    """Which outcomes the sender wants feedback for (IoT Hub's ``iothub-ack``)."""

    NONE = "none"
    POSITIVE = "positive"
    NEGATIVE = "negative"
    FULL = "full"

    def wants(self, outcome: C2dOutcome) -> bool:
        """True when ``outcome`` should produce a feedback record."""
        if self is C2dAck.FULL:
            return True
        if self is C2dAck.POSITIVE:
            return outcome is C2dOutcome.SUCCESS
        if self is C2dAck.NEGATIVE:
            return outcome is not C2dOutcome.SUCCESS
        return False


class C2dOutcome(StrEnum):
    """How a C2D message ended."""

    SUCCESS = "success"
    EXPIRED = "expired"
    REJECTED = "rejected"
    PURGED = "purged"


@dataclass(frozen=True)
class C2dMessage:
    """A message queued for a device."""

    id: int
    device_id: str
    message_id: str
    body: bytes
    enqueued_at: datetime
    expires_at: datetime
    ack: C2dAck
    system_properties: dict[str, str] = field(default_factory=dict)
    app_properties: dict[str, str] = field(default_factory=dict)
    delivery_count: int = 0


@dataclass(frozen=True)
class C2dFeedback:
    """One feedback record for the service that sent a C2D message."""

    id: int
    at: datetime
    device_id: str
    message_id: str
    outcome: C2dOutcome
    description: str

"""Hub security events: what the hub refused, why, and who tried."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["HubSecurityEvent"]


@dataclass(frozen=True)
class HubSecurityEvent:
    """One refused connection, failed authentication or denied operation."""

    at: datetime
    kind: str  # e.g. "api.auth", "mqtt.connect", "mqtt.publish"
    reason: str  # AuthFailureReason value or a protocol/authorization reason
    identity: str | None  # the identity claimed (device id, policy name), if any
    source: str  # "ip:port" of the peer
    detail: str = ""
    id: int | None = None

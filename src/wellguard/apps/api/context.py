"""Everything the REST API needs from the rest of the hub, wired by the hub process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from wellguard.config import HubConfig
from wellguard.core.registry import Registry
from wellguard.core.registry.certificates import DeviceCertificates
from wellguard.errors import WellguardError
from wellguard.model.security_event import HubSecurityEvent

__all__ = ["ApiContext", "DeviceMethods", "MethodResult", "MethodTimeoutError", "SecurityEventLog"]


class SecurityEventLog(Protocol):
    """Where hub security events go (SQL store + log in the embedded hub)."""

    def record(self, event: HubSecurityEvent) -> None: ...
    def recent(self, *, after: int | None, limit: int) -> list[HubSecurityEvent]: ...


class MethodTimeoutError(WellguardError):
    """The device did not answer a direct method in time."""


@dataclass(frozen=True)
class MethodResult:
    """A device's answer to a direct method."""

    status: int
    payload: object


class DeviceMethods(Protocol):
    """Reaches connected devices (the MQTT gateway implements it)."""

    def is_connected(self, device_id: str, module_id: str | None) -> bool: ...
    async def invoke(
        self,
        device_id: str,
        module_id: str | None,
        name: str,
        payload: object,
        *,
        response_timeout: float,
        connect_timeout: float,
    ) -> MethodResult | None: ...


@dataclass(frozen=True)
class ApiContext:
    """The hub's services as the API sees them."""

    config: HubConfig
    registry: Registry
    certificates: DeviceCertificates
    security_log: SecurityEventLog
    methods: DeviceMethods
    hub_hosts: tuple[str, ...]
    root_ca_pem: bytes
    clock: Callable[[], datetime]

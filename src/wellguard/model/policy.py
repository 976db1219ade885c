"""Shared access policies and their rights, with IoT Hub's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Flag, auto

from wellguard.errors import InvalidInputError

__all__ = ["DEFAULT_POLICY_RIGHTS", "AccessRights", "SharedAccessPolicy"]


class AccessRights(Flag):
    """Permissions a shared access policy grants."""

    NONE = 0
    REGISTRY_READ = auto()
    REGISTRY_WRITE = auto()
    SERVICE_CONNECT = auto()
    DEVICE_CONNECT = auto()

    @classmethod
    def parse(cls, text: str) -> AccessRights:
        """Parse IoT Hub's comma separated form, e.g. ``"RegistryRead, ServiceConnect"``."""
        names = {
            "registryread": cls.REGISTRY_READ,
            "registrywrite": cls.REGISTRY_WRITE,
            "serviceconnect": cls.SERVICE_CONNECT,
            "deviceconnect": cls.DEVICE_CONNECT,
        }
        rights = cls.NONE
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            try:
                rights |= names[part.lower()]
            except KeyError:
                raise InvalidInputError(f"unknown right {part!r}", field="rights") from None
        return rights

    def render(self) -> str:
        """IoT Hub's comma separated form."""
        order = [
            (AccessRights.REGISTRY_READ, "RegistryRead"),
            (AccessRights.REGISTRY_WRITE, "RegistryWrite"),
            (AccessRights.SERVICE_CONNECT, "ServiceConnect"),
            (AccessRights.DEVICE_CONNECT, "DeviceConnect"),
        ]
        return ", ".join(name for flag, name in order if flag in self)


DEFAULT_POLICY_RIGHTS: dict[str, AccessRights] = {
    "iothubowner": AccessRights.REGISTRY_READ
    | AccessRights.REGISTRY_WRITE
    | AccessRights.SERVICE_CONNECT
    | AccessRights.DEVICE_CONNECT,
    "service": AccessRights.SERVICE_CONNECT,
    "device": AccessRights.DEVICE_CONNECT,
    "registryRead": AccessRights.REGISTRY_READ,
    "registryReadWrite": AccessRights.REGISTRY_READ | AccessRights.REGISTRY_WRITE,
}


@dataclass(frozen=True)
class SharedAccessPolicy:
    """A named key pair with rights; services sign SAS tokens with it."""

    name: str
    rights: AccessRights
    primary_key: str
    secondary_key: str

"""What a caller asks of a device identity, before the registry completes and stores it.

Theory of operation: a request names an authentication type and perhaps keys or
thumbprints (``AuthSpec``), and a device's status and capabilities (``DeviceSettings``).
The registry resolves a spec into an ``Authentication``: it generates the SAS keys nobody
gave, validates the ones given and normalises thumbprints. On an update, keys the request
leaves out are kept (``keep_unstated_keys``), as IoT Hub does. The single-device calls and
the bulk registry operation both go through these, so a device is validated one way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from wellguard.core.identity.keys import generate_symmetric_key, validate_symmetric_key
from wellguard.core.identity.x509 import normalize_thumbprint
from wellguard.errors import InvalidInputError
from wellguard.model.device import Authentication, AuthType, DeviceStatus

__all__ = ["AuthSpec", "DeviceSettings", "keep_unstated_keys"]


@dataclass(frozen=True)
class AuthSpec:
    """Requested authentication of a device or module, before keys are filled in."""

    type: AuthType
    primary_key: str | None = None
    secondary_key: str | None = None
    primary_thumbprint: str | None = None
    secondary_thumbprint: str | None = None

    def resolve(self) -> Authentication:
        """Fill in hub-generated keys and validate what was given."""
        if self.type is AuthType.SAS:
            primary = self.primary_key or generate_symmetric_key()
            secondary = self.secondary_key or generate_symmetric_key()
            return Authentication(
                type=AuthType.SAS,
                primary_key=validate_symmetric_key(primary, field="primaryKey"),
                secondary_key=validate_symmetric_key(secondary, field="secondaryKey"),
            )
        if self.type is AuthType.SELF_SIGNED:
            if not self.primary_thumbprint:
                raise InvalidInputError(
                    "selfSigned authentication needs x509Thumbprint.primaryThumbprint",
                    field="authentication",
                )
            return Authentication(
                type=AuthType.SELF_SIGNED,
                primary_thumbprint=normalize_thumbprint(self.primary_thumbprint),
                secondary_thumbprint=(
                    normalize_thumbprint(self.secondary_thumbprint)
                    if self.secondary_thumbprint
                    else None
                ),
            )
        return Authentication(type=self.type)


@dataclass(frozen=True)
class DeviceSettings:
    """What a create or a replace asks a device to be: credentials, status, capabilities."""

    auth: AuthSpec
    status: DeviceStatus = DeviceStatus.ENABLED
    status_reason: str | None = None
    iot_edge: bool = False


def keep_unstated_keys(spec: AuthSpec, current: Authentication) -> AuthSpec:
    """An update that names the same auth type but omits keys keeps the current ones."""
    if spec.type is not current.type:
        return spec
    if spec.type is AuthType.SELF_SIGNED and spec.primary_thumbprint:
        # Restated thumbprints replace the pair: an omitted secondary is removed, or a
        # retired or compromised certificate could never be taken off the device.
        return spec
    return replace(
        spec,
        primary_key=spec.primary_key or current.primary_key,
        secondary_key=spec.secondary_key or current.secondary_key,
        primary_thumbprint=spec.primary_thumbprint or current.primary_thumbprint,
        secondary_thumbprint=spec.secondary_thumbprint or current.secondary_thumbprint,
    )

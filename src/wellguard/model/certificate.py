"""Certificates the hub CA has issued, as the registry tracks them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["IssuedCertificate"]


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate issued to a device, with its revocation state."""

    serial: int
    device_id: str
    subject: str
    not_before: datetime
    not_after: datetime
    sha256_thumbprint: str
    pem: str
    revoked_at: datetime | None = None
    revocation_reason: str | None = None

    @property
    def revoked(self) -> bool:
        """True once the certificate has been revoked."""
        return self.revoked_at is not None

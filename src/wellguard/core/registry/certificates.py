"""Device certificates: issue from CSR, renew, revoke, and publish the CRL.

Theory of operation: the hub CA signs a device's CSR (the private key never leaves the
device) after checking that the device exists, uses ``certificateAuthority``
authentication and is not decommissioned; every certificate issued is recorded, so
revocation and the CRL cover all of them. Renewal is a new certificate for a new CSR;
the old one stays valid until it expires or is revoked (``--revoke-old``), so devices
can roll over without downtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from wellguard.core.pki import (
    CertificateAuthority,
    RevocationReason,
    RevokedEntry,
    build_crl,
    certificate_to_pem,
    issue_device_certificate,
)
from wellguard.core.registry.events import ChangeKind, RegistryChange
from wellguard.core.registry.service import Actor, Registry
from wellguard.errors import InvalidInputError, NotFoundError
from wellguard.model.audit import AuditRecord
from wellguard.model.certificate import IssuedCertificate
from wellguard.model.device import AuthType, LifecycleState

__all__ = ["DeviceCertificates", "IssuedBundle"]


@dataclass(frozen=True)
class IssuedBundle:
    """A newly issued certificate with the chain a device presents after it."""

    record: IssuedCertificate
    chain_pem: str


class DeviceCertificates:
    """Issues and revokes device certificates with the hub's issuing CA."""

    def __init__(
        self,
        registry: Registry,
        authority: CertificateAuthority,
        clock: Callable[[], datetime],
        *,
        validity_days: int,
    ) -> None:
        self._registry = registry
        self._store = registry.store
        self._authority = authority
        self._clock = clock
        self._days = validity_days

    @property
    def authority(self) -> CertificateAuthority:
        """The issuing CA."""
        return self._authority

    def issue(self, device_id: str, csr_pem: bytes, *, actor: Actor) -> IssuedBundle:
        """Sign a device's CSR; CN must be the device id."""
        device = self._registry.get_device(device_id)
        if device.authentication.type is not AuthType.CERTIFICATE_AUTHORITY:
            raise InvalidInputError(
                f"device {device_id!r} does not use certificateAuthority authentication",
                field="deviceId",
            )
        if device.lifecycle is LifecycleState.DECOMMISSIONED:
            raise InvalidInputError(f"device {device_id!r} is decommissioned", field="deviceId")
        now = self._clock()
        cert = issue_device_certificate(
            csr_pem, self._authority, device_id=device_id, now=now, days=self._days
        )
        record = IssuedCertificate(
            serial=cert.serial_number,
            device_id=device_id,
            subject=cert.subject.rfc4514_string(),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha256_thumbprint=cert.fingerprint(hashes.SHA256()).hex().upper(),
            pem=certificate_to_pem(cert).decode("ascii"),
        )
        audit = AuditRecord(
            at=now,
            actor=actor.name,
            action="certificate.issue",
            target=device_id,
            source=actor.source,
            details={"serial": str(cert.serial_number), "notAfter": record.not_after.isoformat()},
        )
        self._store.record_certificate(record, audit)
        chain = b"".join(certificate_to_pem(c) for c in self._authority.full_chain[:-1])
        return IssuedBundle(record=record, chain_pem=chain.decode("ascii"))

    def revoke(self, serial: int, reason: RevocationReason, *, actor: Actor) -> IssuedCertificate:
        """Revoke a certificate the hub issued."""
        now = self._clock()
        existing = self._store.get_certificate(serial)
        if existing is None:
            raise NotFoundError("certificate", str(serial))
        audit = AuditRecord(
            at=now,
            actor=actor.name,
            action="certificate.revoke",
            target=existing.device_id,
            source=actor.source,
            details={"serial": str(serial), "reason": reason.value},
        )
        revoked = self._store.revoke_certificate(serial, now, reason.value, audit)
        self._registry.notifier.publish(
            RegistryChange(ChangeKind.CERTIFICATE_REVOKED, device_id=existing.device_id)
        )
        return revoked

    def revoke_all_for(self, device_id: str, reason: RevocationReason, *, actor: Actor) -> int:
        """Revoke every unrevoked certificate of a device; returns how many."""
        count = 0
        for cert in self._store.list_certificates(device_id=device_id, after=None, limit=10_000):
            if not cert.revoked:
                self.revoke(cert.serial, reason, actor=actor)
                count += 1
        return count

    def list(
        self, *, device_id: str | None, after: int | None, limit: int
    ) -> list[IssuedCertificate]:
        """Issued certificates, soonest expiry first."""
        return self._store.list_certificates(device_id=device_id, after=after, limit=limit)

    def crl(self, *, next_update_hours: int = 24) -> x509.CertificateRevocationList:
        """A freshly signed CRL of every revoked certificate."""
        now = self._clock()
        entries = [
            RevokedEntry(
                serial=cert.serial,
                revoked_at=cert.revoked_at,
                reason=RevocationReason(cert.revocation_reason or "unspecified"),
            )
            for cert in self._store.revoked_certificates()
            if cert.revoked_at is not None
        ]
        return build_crl(
            self._authority,
            entries,
            now=now,
            next_update_hours=next_update_hours,
            crl_number=int(now.timestamp() * 1000),
        )

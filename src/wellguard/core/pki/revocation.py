"""Certificate revocation lists: building them for our CAs and reading them back safely.

Theory of operation: the registry records each revocation as a ``RevokedEntry`` (serial,
when, why); ``build_crl`` turns the current set into a CRL signed by the issuing CA, with
an increasing CRL number the caller persists, so that relying parties can tell a newer
list from an older one. ``thisUpdate`` is backdated by the same clock-skew allowance as
certificates. A CRL read back (from disk, from another node) is trusted only after
``crl_revoked_serials`` has verified its signature against the issuer certificate; an
unsigned or tampered list raises ``PkiError`` instead of silently un-revoking devices.
``certificateHold`` is the one reversible reason: dropping the entry from the next CRL
releases the hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wellguard.core.pki import _x509
from wellguard.core.pki.authority import CertificateAuthority
from wellguard.errors import InvalidInputError, PkiError

__all__ = ["RevocationReason", "RevokedEntry", "build_crl", "crl_revoked_serials"]


class RevocationReason(StrEnum):
    """Why a certificate was revoked; values are RFC 5280's CRLReason names."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"

    @property
    def flag(self) -> x509.ReasonFlags:
        """The matching ``cryptography`` reason flag."""
        return x509.ReasonFlags(self.value)


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate: its serial number, when it was revoked, and why."""

    serial: int
    revoked_at: datetime
    reason: RevocationReason = RevocationReason.UNSPECIFIED

    def __post_init__(self) -> None:
        _x509.check_serial(self.serial)
        object.__setattr__(self, "revoked_at", _x509.as_utc(self.revoked_at))
        object.__setattr__(self, "reason", RevocationReason(self.reason))


def build_crl(
    issuer: CertificateAuthority,
    revoked: Sequence[RevokedEntry],
    *,
    now: datetime,
    next_update_hours: int = 24,
    crl_number: int,
) -> x509.CertificateRevocationList:
    """Build and sign the CRL of ``issuer`` listing ``revoked``, valid for the next hours."""
    now = _x509.as_utc(now)
    if isinstance(next_update_hours, bool) or not (
        isinstance(next_update_hours, int) and next_update_hours >= 1
    ):
        raise InvalidInputError(
            "next_update_hours must be a positive number of hours", field="next_update_hours"
        )
    if isinstance(crl_number, bool) or not (
        isinstance(crl_number, int) and 0 <= crl_number < 2**_x509.SERIAL_BITS
    ):
        raise InvalidInputError(
            f"crl_number must be an integer from 0 to 2**{_x509.SERIAL_BITS}", field="crl_number"
        )
    usage = _x509.key_usage(issuer.certificate)
    if usage is None or not usage.crl_sign:
        raise PkiError(f"{issuer.subject_text!r} may not sign CRLs (keyUsage cRLSign)")
    issuer.check_valid_at(now)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(now - _x509.CLOCK_SKEW)
        .next_update(now + timedelta(hours=next_update_hours))
        .add_extension(_x509.authority_key_identifier(issuer.certificate), critical=False)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
    )
    seen: set[int] = set()
    for entry in sorted(revoked, key=lambda e: e.serial):
        if entry.serial in seen:
            raise InvalidInputError(f"serial {entry.serial} is listed twice", field="revoked")
        seen.add(entry.serial)
        revoked_builder = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        # RFC 5280 5.3.1: the reasonCode extension SHOULD be absent for "unspecified".
        if entry.reason is not RevocationReason.UNSPECIFIED:
            revoked_builder = revoked_builder.add_extension(
                x509.CRLReason(entry.reason.flag), critical=False
            )
        builder = builder.add_revoked_certificate(revoked_builder.build())
    return builder.sign(issuer.private_key, _x509.signature_hash(issuer.private_key))


def crl_revoked_serials(
    crl: x509.CertificateRevocationList,
    issuer_cert: x509.Certificate,
    *,
    now: datetime | None = None,
) -> frozenset[int]:
    """Return the revoked serials after verifying the CRL was signed by ``issuer_cert``.

    With ``now``, a CRL whose nextUpdate has passed is refused as stale; without it the
    caller decides what staleness means.
    """
    if crl.issuer != issuer_cert.subject:
        raise PkiError(
            f"CRL issuer {crl.issuer.rfc4514_string()!r} is not"
            f" {issuer_cert.subject.rfc4514_string()!r}"
        )
    public_key = issuer_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise PkiError("CRL issuer key must be an EC or RSA key")
    try:
        valid = crl.is_signature_valid(public_key)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise PkiError("CRL signature is invalid (tampered, or signed by another key)")
    if now is not None:
        next_update = crl.next_update_utc
        if next_update is None or _x509.as_utc(now) > next_update:
            raise PkiError("CRL is stale: its nextUpdate has passed")
    return frozenset(revoked.serial_number for revoked in crl)

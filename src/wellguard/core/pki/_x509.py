"""Small X.509 building blocks shared by the CA, issuance and CRL modules (private)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from wellguard.core.pki.keys import PrivateKey
from wellguard.errors import InvalidInputError, PkiError

# Devices with a slightly slow clock must not see a certificate as "not yet valid".
CLOCK_SKEW = timedelta(minutes=5)
# RFC 5280 4.1.2.2: serials are positive and at most 20 octets.
SERIAL_BITS = 159
# RFC 5280 ub-common-name.
MAX_COMMON_NAME = 64

SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512


def as_utc(now: datetime) -> datetime:
    """Return ``now`` in UTC; naive datetimes are refused because their zone is a guess."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInputError("now must be a timezone-aware datetime", field="now")
    return now.astimezone(UTC)


def check_days(days: int, *, field: str = "days") -> None:
    """Refuse a validity period that is not a positive whole number of days."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidInputError(f"{field} must be a positive number of days", field=field)


def check_serial(serial: int) -> int:
    """Return ``serial`` if it is a valid certificate or CRL serial number."""
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 < serial < 2**SERIAL_BITS:
        raise InvalidInputError(
            f"serial must be a positive integer below 2**{SERIAL_BITS}", field="serial"
        )
    return serial


def common_name_attribute(value: str, *, field: str) -> x509.Name:
    """Return a ``Name`` holding only ``CN=value``, checking RFC 5280's length limit."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_COMMON_NAME:
        raise InvalidInputError(
            f"{field} must be 1-{MAX_COMMON_NAME} characters to fit an X.509 common name",
            field=field,
        )
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])


def common_name(name: x509.Name) -> str | None:
    """Return the single common name in ``name``, or ``None`` if there is not exactly one."""
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attributes) != 1 or not isinstance(attributes[0].value, str):
        return None
    return attributes[0].value


def signature_hash(private_key: PrivateKey) -> SignatureHash:
    """Pick the digest that matches the signing key's strength (SHA-256 for P-256 and RSA)."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if private_key.curve.key_size >= 521:
            return hashes.SHA512()
        if private_key.curve.key_size >= 384:
            return hashes.SHA384()
    return hashes.SHA256()


def public_key_der(public_key: PublicKeyTypes) -> bytes:
    """Return the DER SubjectPublicKeyInfo of ``public_key``, for equality checks."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """Return the AKI for certificates signed by ``issuer``, copying its SKI when present."""
    # A bring-your-own CA may compute its SKI differently from us; the AKI must equal it.
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = None
    if ski is not None:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    public_key = issuer.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise PkiError("issuer key must be an EC or RSA key")
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)


def basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    """Return the certificate's basicConstraints, or ``None`` when absent."""
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    """Return the certificate's keyUsage, or ``None`` when absent."""
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None

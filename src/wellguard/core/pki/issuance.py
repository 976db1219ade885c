"""Issuing end-entity certificates: devices (from their CSR), the gateway, self-signed devices.

Theory of operation: a device's private key never leaves the device, so its certificate
signing request is the only input to ``issue_device_certificate`` and is treated as
hostile: it must parse, carry a valid self-signature (proof the requester holds the key),
name exactly the device being enrolled as its common name, and hold a key that passes
``check_public_key_strength``. Everything else in the CSR (extra subject attributes,
requested extensions) is ignored; the certificate wellguard issues says only what
wellguard decides: ``CN=<device id>``, clientAuth, digitalSignature, CA=false. Validity
starts ``CLOCK_SKEW`` before ``now`` for devices with slow clocks and never extends past
the issuer's own expiry. ``issue_server_certificate`` makes the gateway's TLS certificate
and key; the two ``create_*`` helpers make a device key locally, for demos, tests and
X.509-thumbprint (self-signed) devices.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from wellguard.core.pki import _x509
from wellguard.core.pki.authority import CertificateAuthority
from wellguard.core.pki.keys import (
    DEFAULT_KEY_TYPE,
    KeyType,
    PrivateKey,
    check_public_key_strength,
    generate_private_key,
)
from wellguard.errors import InvalidInputError
from wellguard.model.ids import validate_device_id

__all__ = [
    "create_device_key_and_csr",
    "create_self_signed_device_certificate",
    "issue_device_certificate",
    "issue_server_certificate",
    "load_csr",
]

_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_DEVICE_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM (or DER) CSR and verify its self-signature; refuse anything else."""
    if not isinstance(csr_pem, bytes) or not csr_pem:
        raise InvalidInputError("certificate signing request is empty", field="csr")
    try:
        if b"-----BEGIN" in csr_pem:
            csr = x509.load_pem_x509_csr(csr_pem)
        else:
            csr = x509.load_der_x509_csr(csr_pem)
        # Parsing is lazy in places; touch what issuance reads so errors surface here.
        csr.subject.rfc4514_string()
        csr.public_key()
        signature_valid = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidInputError(
            "not a well-formed PKCS#10 certificate signing request", field="csr"
        ) from None
    if not signature_valid:
        raise InvalidInputError(
            "certificate signing request signature is invalid (tampered, or not signed by"
            " the key it carries)",
            field="csr",
        )
    return csr


def issue_device_certificate(
    csr_pem: bytes,
    issuer: CertificateAuthority,
    *,
    device_id: str,
    serial: int | None = None,
    now: datetime,
    days: int = 365,
) -> x509.Certificate:
    """Issue a clientAuth certificate for ``device_id`` from its CSR, signed by ``issuer``."""
    now = _x509.as_utc(now)
    validate_device_id(device_id)
    subject = _x509.common_name_attribute(device_id, field="deviceId")
    _x509.check_days(days)
    serial = x509.random_serial_number() if serial is None else _x509.check_serial(serial)
    csr = load_csr(csr_pem)
    requested = _x509.common_name(csr.subject)
    if requested != device_id:
        raise InvalidInputError(
            f"CSR common name {requested!r} does not match device id {device_id!r}",
            field="csr",
        )
    public_key = csr.public_key()
    check_public_key_strength(public_key)
    issuer.check_valid_at(now)
    builder = _end_entity_builder(
        subject, public_key, now=now, days=days, not_after_cap=issuer.not_valid_after
    )
    return (
        builder.issuer_name(issuer.certificate.subject)
        .serial_number(serial)
        .add_extension(_x509.authority_key_identifier(issuer.certificate), critical=False)
        .add_extension(_DEVICE_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(issuer.private_key, _x509.signature_hash(issuer.private_key))
    )


def issue_server_certificate(
    issuer: CertificateAuthority,
    *,
    hostnames: Sequence[str],
    ip_addresses: Sequence[str] = (),
    key_type: KeyType | str = DEFAULT_KEY_TYPE,
    now: datetime,
    days: int = 825,
) -> tuple[x509.Certificate, PrivateKey]:
    """Make a serverAuth key and certificate for the given DNS names and IP addresses."""
    now = _x509.as_utc(now)
    _x509.check_days(days)
    if isinstance(hostnames, str) or isinstance(ip_addresses, str):
        raise InvalidInputError("hostnames and ip_addresses must be lists, not a string")
    names: list[x509.GeneralName] = [x509.DNSName(_check_hostname(h)) for h in hostnames]
    names += [x509.IPAddress(_parse_ip(ip)) for ip in ip_addresses]
    if not names:
        raise InvalidInputError(
            "a server certificate needs at least one hostname or IP address", field="hostnames"
        )
    # The CN is informational (clients match the SAN); use the first name that fits.
    candidates = [*hostnames, *(str(_parse_ip(ip)) for ip in ip_addresses)]
    cn = next((n for n in candidates if len(n) <= _x509.MAX_COMMON_NAME), candidates[0])
    subject = _x509.common_name_attribute(cn, field="hostnames")
    issuer.check_valid_at(now)
    private_key = generate_private_key(key_type)
    public_key = private_key.public_key()
    certificate = (
        _end_entity_builder(
            subject, public_key, now=now, days=days, not_after_cap=issuer.not_valid_after
        )
        .issuer_name(issuer.certificate.subject)
        .serial_number(x509.random_serial_number())
        .add_extension(_x509.authority_key_identifier(issuer.certificate), critical=False)
        .add_extension(
            _server_key_usage(rsa_key=isinstance(private_key, rsa.RSAPrivateKey)), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(issuer.private_key, _x509.signature_hash(issuer.private_key))
    )
    return certificate, private_key


def create_device_key_and_csr(
    device_id: str, key_type: KeyType | str = DEFAULT_KEY_TYPE
) -> tuple[PrivateKey, bytes]:
    """Generate a device key and a PEM CSR with ``CN=device_id`` (what a device would do)."""
    validate_device_id(device_id)
    subject = _x509.common_name_attribute(device_id, field="deviceId")
    private_key = generate_private_key(key_type)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(private_key, _x509.signature_hash(private_key))
    )
    return private_key, csr.public_bytes(serialization.Encoding.PEM)


def create_self_signed_device_certificate(
    device_id: str,
    *,
    key_type: KeyType | str = DEFAULT_KEY_TYPE,
    now: datetime,
    days: int = 365,
) -> tuple[x509.Certificate, PrivateKey]:
    """Make a self-signed clientAuth certificate and key for an X.509-thumbprint device."""
    now = _x509.as_utc(now)
    validate_device_id(device_id)
    subject = _x509.common_name_attribute(device_id, field="deviceId")
    _x509.check_days(days)
    private_key = generate_private_key(key_type)
    public_key = private_key.public_key()
    certificate = (
        _end_entity_builder(subject, public_key, now=now, days=days, not_after_cap=None)
        .issuer_name(subject)
        .serial_number(x509.random_serial_number())
        .add_extension(_DEVICE_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(private_key, _x509.signature_hash(private_key))
    )
    return certificate, private_key


def _server_key_usage(*, rsa_key: bool) -> x509.KeyUsage:
    # keyEncipherment only matters for TLS 1.2 RSA key exchange, which needs an RSA key.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _end_entity_builder(
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    *,
    now: datetime,
    days: int,
    not_after_cap: datetime | None,
) -> x509.CertificateBuilder:
    not_after = now + timedelta(days=days)
    if not_after_cap is not None:
        not_after = min(not_after, not_after_cap)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(public_key)
        .not_valid_before(now - _x509.CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _check_hostname(hostname: str) -> str:
    text = hostname[2:] if isinstance(hostname, str) and hostname.startswith("*.") else hostname
    if (
        not isinstance(text, str)
        or not 1 <= len(hostname) <= 253
        or not all(_HOSTNAME_LABEL.fullmatch(label) for label in text.rstrip(".").split("."))
    ):
        raise InvalidInputError(f"{hostname!r} is not a valid DNS hostname", field="hostnames")
    return hostname


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidInputError(f"{text!r} is not an IP address", field="ip_addresses") from None

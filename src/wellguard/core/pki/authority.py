"""Certificate authorities: wellguard's own root and issuing CA, or one the operator brings.

Theory of operation: wellguard runs a two-tier PKI. ``create_root_ca`` makes a long-lived
self-signed root whose key should be kept offline after setup; ``create_issuing_ca``
makes the online CA (pathLen 0, so it can sign only end-entity certificates) that signs
device and server certificates. An operator who already has a PKI hands a CA
certificate, its key and optionally its chain to ``load_certificate_authority``, which
applies the checks a relying party would: the certificate is a CA allowed to sign
certificates, the key belongs to it, the chain links up, and nothing is expired at
``now``. ``CertificateAuthority`` re-checks the structural rules on construction, so
every instance in the program is internally consistent. Nothing here touches files or
the system clock; the caller supplies PEM bytes and ``now``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wellguard.core.pki import _x509
from wellguard.core.pki.encoding import certificates_from_pem, private_key_from_pem
from wellguard.core.pki.keys import (
    DEFAULT_KEY_TYPE,
    KeyType,
    PrivateKey,
    check_public_key_strength,
    generate_private_key,
)
from wellguard.errors import InvalidInputError, PkiError

__all__ = [
    "CertificateAuthority",
    "create_issuing_ca",
    "create_root_ca",
    "load_certificate_authority",
]


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate, its private key, and the issuers above it up to the root."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False, compare=False)
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise PkiError("CA private key must be an EC or RSA key")
        if _x509.public_key_der(self.private_key.public_key()) != _x509.public_key_der(
            self.certificate.public_key()
        ):
            raise PkiError(f"CA private key does not match the certificate {self.subject_text!r}")
        _require_ca(self.certificate, what="CA certificate")
        _require_linked((self.certificate, *self.chain))

    @property
    def subject_text(self) -> str:
        """The CA's subject as an RFC 4514 string, for messages and logs."""
        return self.certificate.subject.rfc4514_string()

    @property
    def full_chain(self) -> tuple[x509.Certificate, ...]:
        """This CA's certificate followed by its issuers, root last."""
        return (self.certificate, *self.chain)

    @property
    def root_certificate(self) -> x509.Certificate:
        """The topmost certificate known for this CA (itself, for a root)."""
        return self.full_chain[-1]

    @property
    def not_valid_after(self) -> datetime:
        """When the CA certificate expires (UTC)."""
        return self.certificate.not_valid_after_utc

    def check_valid_at(self, now: datetime) -> None:
        """Raise ``PkiError`` if this CA or any certificate in its chain is not valid at now."""
        now = _x509.as_utc(now)
        for certificate in self.full_chain:
            _require_current(certificate, now)


def create_root_ca(
    common_name: str,
    *,
    key_type: KeyType | str = DEFAULT_KEY_TYPE,
    now: datetime,
    days: int = 3650,
) -> CertificateAuthority:
    """Create a self-signed root CA valid for ``days`` from ``now``."""
    now = _x509.as_utc(now)
    _x509.check_days(days)
    name = _x509.common_name_attribute(common_name, field="commonName")
    private_key = generate_private_key(key_type)
    public_key = private_key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _x509.CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(private_key, _x509.signature_hash(private_key))
    )
    return CertificateAuthority(certificate=certificate, private_key=private_key)


def create_issuing_ca(
    root: CertificateAuthority,
    common_name: str,
    *,
    key_type: KeyType | str = DEFAULT_KEY_TYPE,
    now: datetime,
    days: int = 1825,
) -> CertificateAuthority:
    """Create an issuing CA (pathLen 0) signed by ``root``, never outliving it."""
    now = _x509.as_utc(now)
    _x509.check_days(days)
    name = _x509.common_name_attribute(common_name, field="commonName")
    root.check_valid_at(now)
    constraints = _x509.basic_constraints(root.certificate)
    if constraints is not None and constraints.path_length == 0:
        raise PkiError(f"{root.subject_text!r} has pathLen 0 and cannot sign another CA")
    private_key = generate_private_key(key_type)
    public_key = private_key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _x509.CLOCK_SKEW)
        .not_valid_after(min(now + timedelta(days=days), root.not_valid_after))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_x509.authority_key_identifier(root.certificate), critical=False)
        .sign(root.private_key, _x509.signature_hash(root.private_key))
    )
    return CertificateAuthority(
        certificate=certificate, private_key=private_key, chain=root.full_chain
    )


def load_certificate_authority(
    cert_pem: bytes,
    key_pem: bytes,
    password: bytes | None,
    chain_pem: bytes = b"",
    *,
    now: datetime,
) -> CertificateAuthority:
    """Load a bring-your-own CA, refusing anything a relying party would refuse at ``now``.

    Extra certificates after the first in ``cert_pem`` are treated as its chain, ahead of
    those in ``chain_pem``; the chain is ordered from the CA's issuer up to the root.
    """
    now = _x509.as_utc(now)
    try:
        certificates = certificates_from_pem(cert_pem)
        if chain_pem.strip():
            certificates.extend(certificates_from_pem(chain_pem))
        private_key = private_key_from_pem(key_pem, password)
    except InvalidInputError as exc:
        raise PkiError(f"cannot load CA: {exc}") from None
    certificate, *chain = certificates
    try:
        check_public_key_strength(certificate.public_key())
    except InvalidInputError as exc:
        raise PkiError(f"CA certificate key: {exc}") from None
    except UnsupportedAlgorithm:
        raise PkiError("CA certificate uses an unsupported key algorithm") from None
    authority = CertificateAuthority(
        certificate=certificate, private_key=private_key, chain=tuple(chain)
    )
    authority.check_valid_at(now)
    return authority


def _require_ca(certificate: x509.Certificate, *, what: str) -> None:
    subject = certificate.subject.rfc4514_string()
    constraints = _x509.basic_constraints(certificate)
    if constraints is None or not constraints.ca:
        raise PkiError(f"{what} {subject!r} is not a CA (basicConstraints CA=true is missing)")
    usage = _x509.key_usage(certificate)
    if usage is None or not usage.key_cert_sign:
        raise PkiError(f"{what} {subject!r} may not sign certificates (keyUsage keyCertSign)")


def _require_linked(certificates: Sequence[x509.Certificate]) -> None:
    """Check each certificate is signed by the next one, and that every issuer is a CA."""
    for child, parent in itertools.pairwise(certificates):
        _require_ca(parent, what="chain certificate")
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise PkiError(
                f"chain is broken: {child.subject.rfc4514_string()!r} was not issued by"
                f" {parent.subject.rfc4514_string()!r}"
            ) from None


def _require_current(certificate: x509.Certificate, now: datetime) -> None:
    subject = certificate.subject.rfc4514_string()
    if now > certificate.not_valid_after_utc:
        raise PkiError(
            f"certificate {subject!r} expired on {certificate.not_valid_after_utc.isoformat()}"
        )
    if now < certificate.not_valid_before_utc:
        raise PkiError(
            f"certificate {subject!r} is not valid before"
            f" {certificate.not_valid_before_utc.isoformat()}"
        )

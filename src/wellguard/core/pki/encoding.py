"""PEM in and out for certificates, CRLs and private keys.

Theory of operation: these are the only functions that turn PKI objects into bytes and
back. Bytes that came from outside and do not parse raise ``InvalidInputError`` with a
message naming what was expected; a key that parses but cannot be decrypted raises
``PkiError``. Private keys are written as PKCS#8, encrypted with the best algorithm the
``cryptography`` build offers whenever a password is given.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wellguard.core.pki.keys import PrivateKey
from wellguard.errors import InvalidInputError, PkiError

__all__ = [
    "certificate_from_pem",
    "certificate_to_pem",
    "certificates_from_pem",
    "certificates_to_pem",
    "crl_from_pem",
    "crl_to_pem",
    "private_key_from_pem",
    "private_key_to_pem",
]


def certificate_to_pem(certificate: x509.Certificate) -> bytes:
    """Return ``certificate`` as PEM."""
    return certificate.public_bytes(serialization.Encoding.PEM)


def certificates_to_pem(certificates: Iterable[x509.Certificate]) -> bytes:
    """Return a PEM bundle of ``certificates`` in the order given."""
    return b"".join(certificate_to_pem(certificate) for certificate in certificates)


def certificates_from_pem(data: bytes) -> list[x509.Certificate]:
    """Parse a PEM bundle of one or more certificates, in file order."""
    if not isinstance(data, bytes) or b"-----BEGIN CERTIFICATE-----" not in data:
        raise InvalidInputError("no PEM certificate found", field="certificate")
    try:
        return x509.load_pem_x509_certificates(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidInputError("malformed PEM certificate", field="certificate") from None


def certificate_from_pem(data: bytes) -> x509.Certificate:
    """Parse exactly one PEM certificate."""
    certificates = certificates_from_pem(data)
    if len(certificates) != 1:
        raise InvalidInputError(
            f"expected one PEM certificate, found {len(certificates)}", field="certificate"
        )
    return certificates[0]


def crl_to_pem(crl: x509.CertificateRevocationList) -> bytes:
    """Return ``crl`` as PEM."""
    return crl.public_bytes(serialization.Encoding.PEM)


def crl_from_pem(data: bytes) -> x509.CertificateRevocationList:
    """Parse a PEM CRL (its signature is not checked here; see ``crl_revoked_serials``)."""
    try:
        return x509.load_pem_x509_crl(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidInputError("malformed PEM certificate revocation list", field="crl") from None


def private_key_to_pem(private_key: PrivateKey, password: bytes | None) -> bytes:
    """Return the key as PKCS#8 PEM, encrypted when ``password`` is given."""
    encryption: serialization.KeySerializationEncryption
    if password is None:
        encryption = serialization.NoEncryption()
    elif isinstance(password, bytes) and password:
        encryption = serialization.BestAvailableEncryption(password)
    else:
        raise InvalidInputError(
            "password must be non-empty bytes, or None for an unencrypted key", field="password"
        )
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def private_key_from_pem(data: bytes, password: bytes | None) -> PrivateKey:
    """Load an EC or RSA private key from PEM, decrypting it with ``password`` if given."""
    if not isinstance(data, bytes) or b"PRIVATE KEY-----" not in data:
        raise InvalidInputError("no PEM private key found", field="privateKey")
    try:
        key = serialization.load_pem_private_key(data, password=password or None)
    except TypeError:
        if password:
            raise PkiError("private key is not encrypted, but a password was given") from None
        raise PkiError("private key is encrypted; a password is required") from None
    except ValueError:
        if password and b"ENCRYPTED" in data:
            raise PkiError("cannot decrypt private key: wrong password") from None
        raise InvalidInputError("malformed PEM private key", field="privateKey") from None
    except UnsupportedAlgorithm:
        raise PkiError("private key uses an unsupported algorithm or encryption") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"{type(key).__name__} keys are not supported; use an EC or RSA key")
    return key

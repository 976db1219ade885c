from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from wellguard.core.pki import (
    CertificateAuthority,
    certificate_from_pem,
    certificate_to_pem,
    certificates_from_pem,
    certificates_to_pem,
    generate_private_key,
    private_key_from_pem,
    private_key_to_pem,
)
from wellguard.errors import InvalidInputError, PkiError


def test_certificate_round_trip(root_ca: CertificateAuthority) -> None:
    pem = certificate_to_pem(root_ca.certificate)
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert certificate_from_pem(pem) == root_ca.certificate


def test_bundle_keeps_file_order(issuing_ca: CertificateAuthority) -> None:
    bundle = certificates_to_pem(issuing_ca.full_chain)
    assert tuple(certificates_from_pem(bundle)) == issuing_ca.full_chain
    with pytest.raises(InvalidInputError, match="expected one PEM certificate, found 2"):
        certificate_from_pem(bundle)


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (b"", "no PEM certificate"),
        (b"\x00\xff garbage", "no PEM certificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "malformed"),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "malformed"),
    ],
)
def test_garbage_certificate_pem_is_refused(garbage: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        certificates_from_pem(garbage)


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_private_key_round_trip_unencrypted(key_type: str) -> None:
    key = generate_private_key(key_type)
    pem = private_key_to_pem(key, None)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert private_key_from_pem(pem, None).private_numbers() == key.private_numbers()


def test_private_key_round_trip_encrypted() -> None:
    key = generate_private_key()
    pem = private_key_to_pem(key, b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert private_key_from_pem(pem, b"correct horse").private_numbers() == key.private_numbers()


def test_wrong_password_cannot_decrypt() -> None:
    pem = private_key_to_pem(generate_private_key(), b"correct horse")
    with pytest.raises(PkiError, match="cannot decrypt"):
        private_key_from_pem(pem, b"battery staple")


def test_password_mismatches_are_explained() -> None:
    encrypted = private_key_to_pem(generate_private_key(), b"pw")
    with pytest.raises(PkiError, match="a password is required"):
        private_key_from_pem(encrypted, None)
    plain = private_key_to_pem(generate_private_key(), None)
    with pytest.raises(PkiError, match="not encrypted, but a password was given"):
        private_key_from_pem(plain, b"pw")


def test_empty_password_is_refused_when_writing() -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        private_key_to_pem(generate_private_key(), b"")


@pytest.mark.parametrize(
    "garbage",
    [b"", b"junk", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_garbage_private_key_is_refused(garbage: bytes) -> None:
    with pytest.raises(InvalidInputError, match="private key"):
        private_key_from_pem(garbage, None)


def test_unsupported_key_type_is_refused() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(PkiError, match="Ed25519PrivateKey keys are not supported"):
        private_key_from_pem(pem, None)

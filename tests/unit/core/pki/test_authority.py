from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from wellguard.core.pki import (
    CertificateAuthority,
    certificate_to_pem,
    certificates_to_pem,
    create_issuing_ca,
    create_root_ca,
    create_self_signed_device_certificate,
    generate_private_key,
    load_certificate_authority,
    private_key_to_pem,
)
from wellguard.core.pki.keys import PrivateKey
from wellguard.errors import InvalidInputError, PkiError

SKEW = timedelta(minutes=5)


T = TypeVar("T", bound=x509.ExtensionType)


def _extension(cert: x509.Certificate, kind: type[T]) -> x509.Extension[T]:
    return cert.extensions.get_extension_for_class(kind)


def _self_signed(
    key: PrivateKey, now: datetime, *, ca: bool = True, key_cert_sign: bool = True
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hand Made CA")])
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )


def test_root_ca_is_a_self_signed_ca(root_ca: CertificateAuthority, now: datetime) -> None:
    cert = root_ca.certificate
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=Test Root CA"
    cert.verify_directly_issued_by(cert)
    constraints = _extension(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length is None
    usage = _extension(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = _extension(cert, x509.SubjectKeyIdentifier).value
    aki = _extension(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.not_valid_before_utc == now - SKEW
    assert cert.not_valid_after_utc == now + timedelta(days=3650)
    assert root_ca.chain == ()
    assert root_ca.root_certificate == cert
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


def test_issuing_ca_is_path_len_zero_and_chains_to_root(
    root_ca: CertificateAuthority, issuing_ca: CertificateAuthority, now: datetime
) -> None:
    cert = issuing_ca.certificate
    cert.verify_directly_issued_by(root_ca.certificate)
    assert cert.issuer == root_ca.certificate.subject
    assert issuing_ca.chain == (root_ca.certificate,)
    assert issuing_ca.full_chain == (cert, root_ca.certificate)
    assert issuing_ca.root_certificate == root_ca.certificate
    constraints = _extension(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = _extension(cert, x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    root_ski = _extension(root_ca.certificate, x509.SubjectKeyIdentifier).value
    assert _extension(cert, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski.digest
    assert cert.not_valid_after_utc == now + timedelta(days=1825)


def test_issuing_ca_never_outlives_its_root(now: datetime) -> None:
    root = create_root_ca("Short Root", now=now, days=10)
    issuing = create_issuing_ca(root, "Issuing", now=now, days=1825)
    assert issuing.not_valid_after == root.not_valid_after


def test_p384_ca_signs_with_sha384(now: datetime) -> None:
    root = create_root_ca("P-384 Root", key_type="ec-p384", now=now)
    issuing = create_issuing_ca(root, "RSA Issuing", key_type="rsa-2048", now=now)
    assert isinstance(issuing.certificate.signature_hash_algorithm, hashes.SHA384)
    issuing.certificate.verify_directly_issued_by(root.certificate)


def test_issuing_ca_cannot_sign_another_ca(issuing_ca: CertificateAuthority, now: datetime) -> None:
    with pytest.raises(PkiError, match="pathLen 0"):
        create_issuing_ca(issuing_ca, "Too Deep", now=now)


def test_expired_root_cannot_sign(now: datetime) -> None:
    root = create_root_ca("Old Root", now=now - timedelta(days=20), days=10)
    with pytest.raises(PkiError, match="expired"):
        create_issuing_ca(root, "Issuing", now=now)


@pytest.mark.parametrize("bad", ["", "x" * 65])
def test_common_name_must_fit(bad: str, now: datetime) -> None:
    with pytest.raises(InvalidInputError, match="common name"):
        create_root_ca(bad, now=now)


def test_naive_clock_and_bad_days_are_refused(now: datetime) -> None:
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        create_root_ca("Root", now=now.replace(tzinfo=None))
    with pytest.raises(InvalidInputError, match="days"):
        create_root_ca("Root", now=now, days=0)


def test_authority_is_frozen_and_hides_its_key(root_ca: CertificateAuthority) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        root_ca.chain = ()  # type: ignore[misc]
    assert "private_key" not in repr(root_ca)


def test_constructor_checks_key_and_chain(
    root_ca: CertificateAuthority, issuing_ca: CertificateAuthority
) -> None:
    with pytest.raises(PkiError, match="does not match"):
        CertificateAuthority(certificate=root_ca.certificate, private_key=generate_private_key())
    other_root = create_root_ca("Test Root CA", now=root_ca.certificate.not_valid_before_utc)
    with pytest.raises(PkiError, match="chain is broken"):
        CertificateAuthority(
            certificate=issuing_ca.certificate,
            private_key=issuing_ca.private_key,
            chain=(other_root.certificate,),
        )


# -- bring your own CA -------------------------------------------------------------------


def test_load_round_trip_with_password_and_chain(
    root_ca: CertificateAuthority, issuing_ca: CertificateAuthority, now: datetime
) -> None:
    loaded = load_certificate_authority(
        certificate_to_pem(issuing_ca.certificate),
        private_key_to_pem(issuing_ca.private_key, b"s3cret"),
        b"s3cret",
        certificate_to_pem(root_ca.certificate),
        now=now,
    )
    assert loaded == issuing_ca
    assert loaded.chain == (root_ca.certificate,)


def test_load_takes_the_chain_from_a_full_chain_file(
    issuing_ca: CertificateAuthority, now: datetime
) -> None:
    loaded = load_certificate_authority(
        certificates_to_pem(issuing_ca.full_chain),
        private_key_to_pem(issuing_ca.private_key, None),
        None,
        now=now,
    )
    assert loaded.full_chain == issuing_ca.full_chain


def test_load_accepts_an_external_ca_without_ski(now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, now)
    loaded = load_certificate_authority(
        certificate_to_pem(cert), private_key_to_pem(key, None), None, now=now
    )
    assert loaded.certificate == cert


def test_load_refuses_a_non_ca_certificate(now: datetime) -> None:
    cert, key = create_self_signed_device_certificate("well-01", now=now)
    with pytest.raises(PkiError, match="not a CA"):
        load_certificate_authority(
            certificate_to_pem(cert), private_key_to_pem(key, None), None, now=now
        )


def test_load_refuses_a_ca_without_key_cert_sign(now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, now, key_cert_sign=False)
    with pytest.raises(PkiError, match="keyCertSign"):
        load_certificate_authority(
            certificate_to_pem(cert), private_key_to_pem(key, None), None, now=now
        )


def test_load_refuses_a_key_that_does_not_match(
    root_ca: CertificateAuthority, issuing_ca: CertificateAuthority, now: datetime
) -> None:
    with pytest.raises(PkiError, match="does not match the certificate"):
        load_certificate_authority(
            certificate_to_pem(root_ca.certificate),
            private_key_to_pem(issuing_ca.private_key, None),
            None,
            now=now,
        )


def test_load_refuses_an_expired_ca(root_ca: CertificateAuthority, now: datetime) -> None:
    later = root_ca.not_valid_after + timedelta(seconds=1)
    with pytest.raises(PkiError, match="expired on"):
        load_certificate_authority(
            certificate_to_pem(root_ca.certificate),
            private_key_to_pem(root_ca.private_key, None),
            None,
            now=later,
        )


def test_load_refuses_a_ca_not_yet_valid(root_ca: CertificateAuthority, now: datetime) -> None:
    with pytest.raises(PkiError, match="not valid before"):
        load_certificate_authority(
            certificate_to_pem(root_ca.certificate),
            private_key_to_pem(root_ca.private_key, None),
            None,
            now=now - timedelta(days=1),
        )


def test_load_refuses_an_expired_chain_certificate(now: datetime) -> None:
    # Some external PKIs issue CAs that outlive their root; the expired root still counts.
    short_root = create_root_ca("Short Root", now=now, days=2)
    key = ec.generate_private_key(ec.SECP256R1())
    issuing = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Long Issuing")]))
        .issuer_name(short_root.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_extension(short_root.certificate, x509.KeyUsage).value, critical=True)
        .sign(short_root.private_key, hashes.SHA256())
    )
    with pytest.raises(PkiError, match=r"Short Root.*expired"):
        load_certificate_authority(
            certificate_to_pem(issuing),
            private_key_to_pem(key, None),
            None,
            certificate_to_pem(short_root.certificate),
            now=now + timedelta(days=3),
        )


def test_load_refuses_a_wrong_password(root_ca: CertificateAuthority, now: datetime) -> None:
    with pytest.raises(PkiError, match="cannot decrypt"):
        load_certificate_authority(
            certificate_to_pem(root_ca.certificate),
            private_key_to_pem(root_ca.private_key, b"right"),
            b"wrong",
            now=now,
        )


def test_load_refuses_garbage_with_a_pki_error(
    root_ca: CertificateAuthority, now: datetime
) -> None:
    key_pem = private_key_to_pem(root_ca.private_key, None)
    with pytest.raises(PkiError, match="cannot load CA: no PEM certificate"):
        load_certificate_authority(b"not a certificate", key_pem, None, now=now)
    with pytest.raises(PkiError, match="cannot load CA: no PEM private key"):
        load_certificate_authority(certificate_to_pem(root_ca.certificate), b"junk", None, now=now)


def test_load_refuses_a_weak_ca_key(now: datetime) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cert = _self_signed(key, now)
    with pytest.raises(PkiError, match="too weak"):
        load_certificate_authority(
            certificate_to_pem(cert), private_key_to_pem(key, None), None, now=now
        )


def test_load_refuses_a_chain_that_does_not_link(
    issuing_ca: CertificateAuthority, now: datetime
) -> None:
    stranger = create_root_ca("Stranger", now=now)
    with pytest.raises(PkiError, match="chain is broken"):
        load_certificate_authority(
            certificate_to_pem(issuing_ca.certificate),
            private_key_to_pem(issuing_ca.private_key, None),
            None,
            certificate_to_pem(stranger.certificate),
            now=now,
        )

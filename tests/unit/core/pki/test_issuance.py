from __future__ import annotations

import base64
import contextlib
import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store
from hypothesis import given
from hypothesis import strategies as st

from wellguard.core.pki import (
    CertificateAuthority,
    create_device_key_and_csr,
    create_issuing_ca,
    create_root_ca,
    create_self_signed_device_certificate,
    issue_device_certificate,
    issue_server_certificate,
    load_csr,
)
from wellguard.core.pki.keys import PrivateKey
from wellguard.errors import InvalidInputError, PkiError

T = TypeVar("T", bound=x509.ExtensionType)
SKEW = timedelta(minutes=5)
_DEVICE_KEY, VALID_CSR_PEM = create_device_key_and_csr("well-01")
VALID_CSR_DER = x509.load_pem_x509_csr(VALID_CSR_PEM).public_bytes(serialization.Encoding.DER)


def _extension(cert: x509.Certificate, kind: type[T]) -> x509.Extension[T]:
    return cert.extensions.get_extension_for_class(kind)


def _csr(
    key: PrivateKey | ed25519.Ed25519PrivateKey,
    names: list[x509.NameAttribute[str]],
    extensions: Sequence[x509.ExtensionType] = (),
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def _cn(value: str) -> x509.NameAttribute[str]:
    return x509.NameAttribute(NameOID.COMMON_NAME, value)


# -- device certificates -----------------------------------------------------------------


def test_device_certificate_profile(issuing_ca: CertificateAuthority, now: datetime) -> None:
    cert = issue_device_certificate(
        VALID_CSR_PEM, issuing_ca, device_id="well-01", now=now, days=365
    )
    assert cert.subject.rfc4514_string() == "CN=well-01"
    assert cert.issuer == issuing_ca.certificate.subject
    assert cert.public_key() == _DEVICE_KEY.public_key()
    constraints = _extension(cert, x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca
    usage = _extension(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert list(_extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    issuer_ski = _extension(issuing_ca.certificate, x509.SubjectKeyIdentifier).value
    assert _extension(cert, x509.AuthorityKeyIdentifier).value.key_identifier == (issuer_ski.digest)
    assert _extension(cert, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(_DEVICE_KEY.public_key())
    )
    assert cert.not_valid_before_utc == now - SKEW
    assert cert.not_valid_after_utc == now + timedelta(days=365)
    assert 0 < cert.serial_number < 2**159


def test_device_certificate_chains_to_issuing_ca_and_root(
    root_ca: CertificateAuthority, issuing_ca: CertificateAuthority, now: datetime
) -> None:
    cert = issue_device_certificate(VALID_CSR_PEM, issuing_ca, device_id="well-01", now=now)
    cert.verify_directly_issued_by(issuing_ca.certificate)
    issuing_ca.certificate.verify_directly_issued_by(root_ca.certificate)
    # Full path validation, as the gateway would do it. The web-PKI profile demands a SAN
    # on client certificates; IoT Hub device certificates carry only CN=<device id>.
    device_profile = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store([root_ca.certificate]))
        .time(now)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=device_profile
        )
        .build_client_verifier()
    )
    verified = verifier.verify(cert, [issuing_ca.certificate])
    assert verified.chain == [cert, issuing_ca.certificate, root_ca.certificate]


def test_serials_are_random_unless_given(issuing_ca: CertificateAuthority, now: datetime) -> None:
    serials = {
        issue_device_certificate(
            VALID_CSR_PEM, issuing_ca, device_id="well-01", now=now
        ).serial_number
        for _ in range(5)
    }
    assert len(serials) == 5
    cert = issue_device_certificate(
        VALID_CSR_PEM, issuing_ca, device_id="well-01", serial=4242, now=now
    )
    assert cert.serial_number == 4242


@pytest.mark.parametrize("serial", [0, -1, 2**159, True])
def test_bad_serial_is_refused(
    serial: int, issuing_ca: CertificateAuthority, now: datetime
) -> None:
    with pytest.raises(InvalidInputError, match="serial"):
        issue_device_certificate(
            VALID_CSR_PEM, issuing_ca, device_id="well-01", serial=serial, now=now
        )


def test_device_certificate_never_outlives_its_issuer(now: datetime) -> None:
    root = create_root_ca("Short", now=now, days=30)
    issuing = create_issuing_ca(root, "Short Issuing", now=now)
    cert = issue_device_certificate(VALID_CSR_PEM, issuing, device_id="well-01", now=now, days=365)
    assert cert.not_valid_after_utc == issuing.not_valid_after


def test_csr_content_beyond_the_key_and_cn_is_ignored(
    issuing_ca: CertificateAuthority, now: datetime
) -> None:
    key = _DEVICE_KEY
    csr = _csr(
        key,
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil Corp"), _cn("well-01")],
        [x509.BasicConstraints(ca=True, path_length=None)],
    )
    cert = issue_device_certificate(csr, issuing_ca, device_id="well-01", now=now)
    assert cert.subject.rfc4514_string() == "CN=well-01"
    assert not _extension(cert, x509.BasicConstraints).value.ca


def test_csr_for_another_device_is_refused(issuing_ca: CertificateAuthority, now: datetime) -> None:
    with pytest.raises(InvalidInputError, match="'well-01' does not match device id 'well-02'"):
        issue_device_certificate(VALID_CSR_PEM, issuing_ca, device_id="well-02", now=now)


def test_csr_without_a_single_cn_is_refused(
    issuing_ca: CertificateAuthority, now: datetime
) -> None:
    no_cn = _csr(_DEVICE_KEY, [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "well-01")])
    two_cns = _csr(_DEVICE_KEY, [_cn("well-01"), _cn("well-01")])
    for csr in (no_cn, two_cns):
        with pytest.raises(InvalidInputError, match="common name None does not match"):
            issue_device_certificate(csr, issuing_ca, device_id="well-01", now=now)


def test_csr_with_tampered_subject_is_refused(
    issuing_ca: CertificateAuthority, now: datetime
) -> None:
    tampered = VALID_CSR_DER.replace(b"well-01", b"well-02")
    assert tampered != VALID_CSR_DER
    with pytest.raises(InvalidInputError, match="signature is invalid"):
        issue_device_certificate(tampered, issuing_ca, device_id="well-02", now=now)


def test_csr_with_tampered_signature_is_refused() -> None:
    tampered = bytearray(VALID_CSR_DER)
    tampered[-3] ^= 0x01  # inside the ECDSA signature's s value
    with pytest.raises(InvalidInputError, match="signature is invalid"):
        load_csr(bytes(tampered))


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"hello",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        VALID_CSR_PEM[:100],
    ],
)
def test_garbage_csr_is_refused(garbage: bytes) -> None:
    with pytest.raises(InvalidInputError, match="certificate signing request"):
        load_csr(garbage)


def test_csr_with_rsa_1024_key_is_refused(issuing_ca: CertificateAuthority, now: datetime) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidInputError, match="too weak"):
        issue_device_certificate(
            _csr(weak, [_cn("well-01")]), issuing_ca, device_id="well-01", now=now
        )


def test_csr_with_ed25519_key_is_refused(issuing_ca: CertificateAuthority, now: datetime) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(InvalidInputError, match="ed25519"):
        issue_device_certificate(
            _csr(key, [_cn("well-01")]), issuing_ca, device_id="well-01", now=now
        )


@pytest.mark.parametrize("device_id", ["", "has space", "a/b", "x" * 65])
def test_bad_device_ids_are_refused(
    device_id: str, issuing_ca: CertificateAuthority, now: datetime
) -> None:
    with pytest.raises(InvalidInputError, match="deviceId"):
        issue_device_certificate(VALID_CSR_PEM, issuing_ca, device_id=device_id, now=now)


def test_expired_issuer_is_refused(issuing_ca: CertificateAuthority) -> None:
    later = issuing_ca.not_valid_after + timedelta(days=1)
    with pytest.raises(PkiError, match="expired"):
        issue_device_certificate(VALID_CSR_PEM, issuing_ca, device_id="well-01", now=later)


@given(st.binary(max_size=1024))
def test_csr_parser_only_raises_invalid_input_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(InvalidInputError):
        load_csr(data)


@given(st.data())
def test_csr_parser_only_raises_invalid_input_on_mutated_csrs(data: st.DataObject) -> None:
    der = bytearray(VALID_CSR_DER)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(der) - 1))
        der[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(der)))
    as_pem = data.draw(st.booleans())
    blob = bytes(der[:cut])
    if as_pem:
        blob = (
            b"-----BEGIN CERTIFICATE REQUEST-----\n"
            + base64.encodebytes(blob)
            + b"-----END CERTIFICATE REQUEST-----\n"
        )
    with contextlib.suppress(InvalidInputError):
        load_csr(blob)


# -- server certificates -----------------------------------------------------------------


def test_server_certificate_profile_and_path(
    root_ca: CertificateAuthority, issuing_ca: CertificateAuthority, now: datetime
) -> None:
    cert, key = issue_server_certificate(
        issuing_ca,
        hostnames=["localhost", "hub.example.com"],
        ip_addresses=["127.0.0.1", "::1"],
        now=now,
    )
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "CN=localhost"
    san = _extension(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "hub.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert list(_extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = _extension(cert, x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_encipherment
    assert not _extension(cert, x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == now + timedelta(days=825)
    store = Store([root_ca.certificate])
    for name in (x509.DNSName("hub.example.com"), x509.IPAddress(ipaddress.ip_address("::1"))):
        verifier = PolicyBuilder().store(store).time(now).build_server_verifier(name)
        assert verifier.verify(cert, [issuing_ca.certificate])[-1] == root_ca.certificate


def test_server_certificate_with_rsa_key_allows_key_encipherment(
    issuing_ca: CertificateAuthority, now: datetime
) -> None:
    cert, key = issue_server_certificate(
        issuing_ca, hostnames=["localhost"], key_type="rsa-2048", now=now
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    assert _extension(cert, x509.KeyUsage).value.key_encipherment


def test_server_certificate_for_ip_only(issuing_ca: CertificateAuthority, now: datetime) -> None:
    cert, _ = issue_server_certificate(issuing_ca, hostnames=[], ip_addresses=["10.0.0.7"], now=now)
    assert cert.subject.rfc4514_string() == "CN=10.0.0.7"


@pytest.mark.parametrize(
    ("hostnames", "ips", "message"),
    [
        ([], [], "at least one"),
        (["bad host"], [], "not a valid DNS hostname"),
        (["-leading.example"], [], "not a valid DNS hostname"),
        (["a" * 64 + ".example"], [], "not a valid DNS hostname"),
        ("localhost", [], "lists, not a string"),
        (["localhost"], ["300.1.1.1"], "not an IP address"),
    ],
)
def test_server_certificate_refuses_bad_names(
    hostnames: list[str],
    ips: list[str],
    message: str,
    issuing_ca: CertificateAuthority,
    now: datetime,
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        issue_server_certificate(issuing_ca, hostnames=hostnames, ip_addresses=ips, now=now)


def test_server_certificate_accepts_wildcards(
    issuing_ca: CertificateAuthority, now: datetime
) -> None:
    cert, _ = issue_server_certificate(issuing_ca, hostnames=["*.hub.example.com"], now=now)
    san = _extension(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["*.hub.example.com"]


# -- local device keys -------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_create_device_key_and_csr(key_type: str) -> None:
    key, csr_pem = create_device_key_and_csr("well-07", key_type)
    csr = load_csr(csr_pem)
    assert csr.subject.rfc4514_string() == "CN=well-07"
    assert csr.public_key() == key.public_key()
    assert csr_pem.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")


def test_self_signed_device_certificate(now: datetime) -> None:
    cert, key = create_self_signed_device_certificate("well-09", now=now, days=30)
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=well-09"
    cert.verify_directly_issued_by(cert)
    assert cert.public_key() == key.public_key()
    assert not _extension(cert, x509.BasicConstraints).value.ca
    assert list(_extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_before_utc == now - SKEW
    assert cert.not_valid_after_utc == now + timedelta(days=30)

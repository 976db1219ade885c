from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from wellguard.core.pki import (
    CertificateAuthority,
    RevocationReason,
    RevokedEntry,
    build_crl,
    create_root_ca,
    crl_from_pem,
    crl_revoked_serials,
    crl_to_pem,
)
from wellguard.errors import InvalidInputError, PkiError


@pytest.fixture
def entries(now: datetime) -> list[RevokedEntry]:
    return [
        RevokedEntry(0x3333, now - timedelta(hours=1), RevocationReason.KEY_COMPROMISE),
        RevokedEntry(0x1111, now - timedelta(days=2)),
        RevokedEntry(0x2222, now - timedelta(days=1), RevocationReason.CERTIFICATE_HOLD),
    ]


def test_crl_contents(
    issuing_ca: CertificateAuthority, entries: list[RevokedEntry], now: datetime
) -> None:
    crl = build_crl(issuing_ca, entries, now=now, crl_number=7)
    assert crl.issuer == issuing_ca.certificate.subject
    assert crl.last_update_utc == now - timedelta(minutes=5)
    assert crl.next_update_utc == now + timedelta(hours=24)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = issuing_ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.value.digest
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA256)
    assert [r.serial_number for r in crl] == [0x1111, 0x2222, 0x3333]
    compromised = crl.get_revoked_certificate_by_serial_number(0x3333)
    assert compromised is not None
    assert compromised.revocation_date_utc == now - timedelta(hours=1)
    reason = compromised.extensions.get_extension_for_class(x509.CRLReason).value
    assert reason.reason is x509.ReasonFlags.key_compromise
    unspecified = crl.get_revoked_certificate_by_serial_number(0x1111)
    assert unspecified is not None
    with pytest.raises(x509.ExtensionNotFound):
        unspecified.extensions.get_extension_for_class(x509.CRLReason)


def test_crl_round_trip_through_pem(
    issuing_ca: CertificateAuthority, entries: list[RevokedEntry], now: datetime
) -> None:
    crl = crl_from_pem(crl_to_pem(build_crl(issuing_ca, entries, now=now, crl_number=1)))
    assert crl_revoked_serials(crl, issuing_ca.certificate) == {0x1111, 0x2222, 0x3333}


def test_empty_crl(issuing_ca: CertificateAuthority, now: datetime) -> None:
    crl = build_crl(issuing_ca, [], now=now, next_update_hours=6, crl_number=0)
    assert crl_revoked_serials(crl, issuing_ca.certificate, now=now) == frozenset()
    assert crl.next_update_utc == now + timedelta(hours=6)


def test_tampered_crl_is_refused(
    issuing_ca: CertificateAuthority, entries: list[RevokedEntry], now: datetime
) -> None:
    der = build_crl(issuing_ca, entries, now=now, crl_number=1).public_bytes(
        serialization.Encoding.DER
    )
    # Un-revoke serial 0x3333 by rewriting it to 0x3334 in the signed body.
    tampered = der.replace(b"\x02\x02\x33\x33", b"\x02\x02\x33\x34")
    assert tampered != der
    crl = x509.load_der_x509_crl(tampered)
    with pytest.raises(PkiError, match="signature is invalid"):
        crl_revoked_serials(crl, issuing_ca.certificate)


def test_crl_signed_by_an_impostor_with_the_same_name_is_refused(
    issuing_ca: CertificateAuthority, now: datetime
) -> None:
    impostor = create_root_ca("Test Issuing CA", now=now)
    crl = build_crl(impostor, [], now=now, crl_number=1)
    with pytest.raises(PkiError, match="signature is invalid"):
        crl_revoked_serials(crl, issuing_ca.certificate)


def test_crl_from_another_issuer_is_refused(
    root_ca: CertificateAuthority, issuing_ca: CertificateAuthority, now: datetime
) -> None:
    crl = build_crl(root_ca, [], now=now, crl_number=1)
    with pytest.raises(PkiError, match="CRL issuer 'CN=Test Root CA' is not"):
        crl_revoked_serials(crl, issuing_ca.certificate)


def test_stale_crl_is_refused_when_a_clock_is_given(
    issuing_ca: CertificateAuthority, now: datetime
) -> None:
    crl = build_crl(issuing_ca, [], now=now, crl_number=1)
    assert crl_revoked_serials(crl, issuing_ca.certificate, now=now + timedelta(hours=23)) == set()
    with pytest.raises(PkiError, match="stale"):
        crl_revoked_serials(crl, issuing_ca.certificate, now=now + timedelta(hours=25))


def test_build_crl_refuses_bad_arguments(issuing_ca: CertificateAuthority, now: datetime) -> None:
    entry = RevokedEntry(5, now)
    with pytest.raises(InvalidInputError, match="listed twice"):
        build_crl(issuing_ca, [entry, entry], now=now, crl_number=1)
    with pytest.raises(InvalidInputError, match="crl_number"):
        build_crl(issuing_ca, [], now=now, crl_number=-1)
    with pytest.raises(InvalidInputError, match="next_update_hours"):
        build_crl(issuing_ca, [], now=now, next_update_hours=0, crl_number=1)
    with pytest.raises(PkiError, match="expired"):
        build_crl(issuing_ca, [], now=now + timedelta(days=4000), crl_number=1)


def test_revoked_entry_validation(now: datetime) -> None:
    with pytest.raises(InvalidInputError, match="serial"):
        RevokedEntry(0, now)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        RevokedEntry(1, now.replace(tzinfo=None))
    entry = RevokedEntry(1, now, "superseded")  # type: ignore[arg-type]
    assert entry.reason is RevocationReason.SUPERSEDED
    assert entry.revoked_at.tzinfo is UTC


@pytest.mark.parametrize("reason", list(RevocationReason))
def test_every_reason_maps_to_a_reason_flag(reason: RevocationReason) -> None:
    assert reason.flag.value == reason.value


def test_garbage_crl_pem_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="revocation list"):
        crl_from_pem(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")

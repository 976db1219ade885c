"""X.509 device authentication: thumbprints and CA-signed chains."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.unit.core.identity.factories import NOW, Issued, make_cert, make_device, make_module
from wellguard.core.identity import (
    MAX_CHAIN_DEPTH,
    MAX_INTERMEDIATES,
    certificate_thumbprints,
    normalize_thumbprint,
    verify_ca_device,
    verify_thumbprint_device,
)
from wellguard.errors import AuthError, AuthFailureReason, InvalidInputError
from wellguard.model.device import Authentication, AuthType, Device, DeviceStatus, Module

R = AuthFailureReason
CA_AUTH = Authentication(AuthType.CERTIFICATE_AUTHORITY)


# --- thumbprints ------------------------------------------------------------------------


def test_certificate_thumbprints_are_upper_hex_digests_of_the_der() -> None:
    cert = make_cert("well-01").cert
    der = cert.public_bytes(Encoding.DER)
    sha1 = hashlib.sha1(der).hexdigest().upper()  # what IoT Hub registers
    assert certificate_thumbprints(cert) == (sha1, hashlib.sha256(der).hexdigest().upper())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ab" * 20, "AB" * 20),
        (":".join(["ab"] * 32), "AB" * 32),
        (" AB cd " * 10, "ABCD" * 10),
    ],
)
def test_normalize_thumbprint(text: str, expected: str) -> None:
    assert normalize_thumbprint(text) == expected


@pytest.mark.parametrize("text", ["", "AB" * 19, "AB" * 21, "AB" * 32 + "A", "G" * 40, "é" * 40])
def test_normalize_thumbprint_rejects(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        normalize_thumbprint(text)
    assert caught.value.field == "thumbprint"


def test_normalize_thumbprint_rejects_non_text() -> None:
    with pytest.raises(InvalidInputError):
        normalize_thumbprint(None)  # type: ignore[arg-type]


def _thumb_device(
    primary: str, secondary: str | None = None, status: DeviceStatus = DeviceStatus.ENABLED
) -> Device:
    auth = Authentication(
        AuthType.SELF_SIGNED, primary_thumbprint=primary, secondary_thumbprint=secondary
    )
    return make_device(authentication=auth, status=status)


def _thumb_refused(cert: x509.Certificate, **kwargs: object) -> AuthError:
    arguments: dict[str, object] = {"device": None, "module": None, "now": NOW}
    arguments.update(kwargs)
    with pytest.raises(AuthError) as caught:
        verify_thumbprint_device(cert, **arguments)  # type: ignore[arg-type]
    assert str(caught.value) == "unauthorized"
    return caught.value


def test_thumbprint_matches_primary_or_secondary_by_sha1_or_sha256() -> None:
    cert = make_cert("well-01").cert
    sha1, sha256 = certificate_thumbprints(cert)
    other = "00" * 20
    for device in (
        _thumb_device(sha1),
        _thumb_device(sha256.lower()),
        _thumb_device(other, sha1),
        _thumb_device(other, ":".join(sha256[i : i + 2] for i in range(0, 64, 2))),
    ):
        verify_thumbprint_device(cert, device=device, module=None, now=NOW)


def test_thumbprint_mismatch_ignores_malformed_registrations() -> None:
    cert = make_cert("well-01").cert
    error = _thumb_refused(cert, device=_thumb_device("not-a-thumbprint", "00" * 32))
    assert error.reason is R.THUMBPRINT_MISMATCH
    assert error.identity == "well-01"


def test_thumbprint_identity_checks() -> None:
    cert = make_cert("well-01").cert
    sha1 = certificate_thumbprints(cert)[0]
    assert _thumb_refused(cert).reason is R.UNKNOWN_DEVICE
    disabled = _thumb_device(sha1, status=DeviceStatus.DISABLED)
    assert _thumb_refused(cert, device=disabled).reason is R.DISABLED_DEVICE
    assert _thumb_refused(cert, device=make_device()).reason is R.WRONG_AUTH_TYPE
    ca_device = make_device(authentication=CA_AUTH)
    assert _thumb_refused(cert, device=ca_device).reason is R.WRONG_AUTH_TYPE


def test_thumbprint_dates() -> None:
    expired = make_cert("well-01", not_after=NOW - timedelta(seconds=1)).cert
    device = _thumb_device(certificate_thumbprints(expired)[0])
    assert _thumb_refused(expired, device=device).reason is R.CERT_EXPIRED
    early = make_cert("well-01", not_before=NOW + timedelta(seconds=1)).cert
    device = _thumb_device(certificate_thumbprints(early)[1])
    assert _thumb_refused(early, device=device).reason is R.CERT_NOT_YET_VALID
    # A naive clock is UTC.
    error = _thumb_refused(early, device=device, now=NOW.replace(tzinfo=None))
    assert error.reason is R.CERT_NOT_YET_VALID


def test_thumbprint_is_checked_before_dates() -> None:
    expired = make_cert("well-01", not_after=NOW - timedelta(days=1)).cert
    error = _thumb_refused(expired, device=_thumb_device("00" * 20))
    assert error.reason is R.THUMBPRINT_MISMATCH


def test_thumbprint_module() -> None:
    cert = make_cert("agent").cert
    auth = Authentication(AuthType.SELF_SIGNED, primary_thumbprint=certificate_thumbprints(cert)[0])
    module = make_module(authentication=auth)
    verify_thumbprint_device(cert, device=make_device(), module=module, now=NOW, module_id="agent")
    assert _thumb_refused(cert, device=make_device(), module_id="agent").reason is R.UNKNOWN_DEVICE
    error = _thumb_refused(cert, device=make_device(), module=module, module_id="other")
    assert error.reason is R.UNKNOWN_DEVICE
    stranger = make_module("well-02", authentication=auth)
    assert _thumb_refused(cert, device=make_device(), module=stranger).reason is R.UNKNOWN_DEVICE


# --- CA chains --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_cert("Wellguard Test Root", ca=True)


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return make_cert("Wellguard Test Intermediate", issuer=root, ca=True, path_length=0)


@pytest.fixture(scope="module")
def leaf(intermediate: Issued) -> Issued:
    return make_cert("well-01", issuer=intermediate, serial=0x1234)


def _ca(
    leaf_cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    *,
    device: Device | None = None,
    module: Module | None = None,
    module_id: str | None = None,
    revoked: Collection[int] = frozenset(),
    now: object = NOW,
) -> None:
    verify_ca_device(
        leaf_cert,
        intermediates,
        trusted=trusted,
        device=device if device is not None else make_device(authentication=CA_AUTH),
        module=module,
        device_id="well-01",
        now=now,  # type: ignore[arg-type]
        revoked_serials=revoked,
        module_id=module_id,
    )


def _ca_refused(*args: object, **kwargs: object) -> AuthError:
    with pytest.raises(AuthError) as caught:
        _ca(*args, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == "unauthorized"
    return caught.value


def test_chain_through_an_intermediate(root: Issued, intermediate: Issued, leaf: Issued) -> None:
    _ca(leaf.cert, [intermediate.cert], [root.cert])
    # The intermediate itself may be the verified CA.
    _ca(leaf.cert, [], [intermediate.cert])
    # Extra, unrelated certificates are ignored.
    stray = make_cert("Stray CA", ca=True).cert
    _ca(leaf.cert, [stray, intermediate.cert], [stray, root.cert])


def test_leaf_directly_under_the_root(root: Issued) -> None:
    _ca(make_cert("well-01", issuer=root).cert, [], [root.cert])


def test_untrusted_chains(root: Issued, intermediate: Issued, leaf: Issued) -> None:
    assert _ca_refused(leaf.cert, [intermediate.cert], []).reason is R.CERT_UNTRUSTED
    assert _ca_refused(leaf.cert, [], [root.cert]).reason is R.CERT_UNTRUSTED
    other_root = make_cert("Other Root", ca=True)
    assert _ca_refused(leaf.cert, [intermediate.cert], [other_root.cert]).reason is R.CERT_UNTRUSTED
    # Same subject name as the real root, different key: the signature decides.
    impostor = make_cert("Wellguard Test Root", ca=True)
    assert _ca_refused(leaf.cert, [intermediate.cert], [impostor.cert]).reason is R.CERT_UNTRUSTED
    # A self-signed leaf is not trusted because it names itself.
    self_signed = make_cert("well-01").cert
    assert _ca_refused(self_signed, [], [root.cert]).reason is R.CERT_UNTRUSTED


def test_issuers_must_be_certificate_authorities(root: Issued) -> None:
    not_ca = make_cert("Not A CA", issuer=root)
    leaf = make_cert("well-01", issuer=not_ca).cert
    assert _ca_refused(leaf, [not_ca.cert], [root.cert]).reason is R.CERT_UNTRUSTED
    no_constraints = make_cert("No Constraints", issuer=root, basic_constraints=False)
    leaf = make_cert("well-01", issuer=no_constraints).cert
    assert _ca_refused(leaf, [no_constraints.cert], [root.cert]).reason is R.CERT_UNTRUSTED
    no_cert_sign = make_cert("No CertSign", issuer=root, ca=True, key_cert_sign=False)
    leaf = make_cert("well-01", issuer=no_cert_sign).cert
    assert _ca_refused(leaf, [no_cert_sign.cert], [root.cert]).reason is R.CERT_UNTRUSTED
    untrusted_anchor = make_cert("Leafy Anchor")
    leaf = make_cert("well-01", issuer=untrusted_anchor).cert
    assert _ca_refused(leaf, [], [untrusted_anchor.cert]).reason is R.CERT_UNTRUSTED


def test_path_length_constraint(root: Issued, intermediate: Issued) -> None:
    # ``intermediate`` has pathLen 0 and issues the leaf directly: allowed (other tests).
    limited = make_cert("Limited", issuer=root, ca=True, path_length=0)
    below = make_cert("Below Limited", issuer=limited, ca=True)
    leaf = make_cert("well-01", issuer=below).cert
    error = _ca_refused(leaf, [below.cert, limited.cert], [root.cert])
    assert error.reason is R.CERT_UNTRUSTED
    # The constraint holds for a verified CA too.
    assert _ca_refused(leaf, [below.cert], [limited.cert]).reason is R.CERT_UNTRUSTED
    _ca(leaf, [], [below.cert])


def test_chain_depth_is_bounded() -> None:
    top = make_cert("CA 0", ca=True)
    chain = [top]
    for level in range(1, MAX_CHAIN_DEPTH + 1):
        chain.append(make_cert(f"CA {level}", issuer=chain[-1], ca=True))
    leaf = make_cert("well-01", issuer=chain[-1]).cert
    intermediates = [issued.cert for issued in chain[1:]]
    # leaf + MAX_CHAIN_DEPTH + 1 issuers: one too many.
    assert _ca_refused(leaf, intermediates, [top.cert]).reason is R.CERT_UNTRUSTED
    _ca(leaf, intermediates[1:], [chain[1].cert])  # exactly MAX_CHAIN_DEPTH issuers


def test_too_many_intermediates(root: Issued, intermediate: Issued, leaf: Issued) -> None:
    padding = [make_cert(f"Pad {i}", ca=True).cert for i in range(MAX_INTERMEDIATES)]
    error = _ca_refused(leaf.cert, [*padding, intermediate.cert], [root.cert])
    assert error.reason is R.CERT_UNTRUSTED


def test_loops_terminate() -> None:
    # A and B cross-sign each other with the same names and keys: a cycle with no anchor.
    a = make_cert("Loop A", ca=True)
    b = make_cert("Loop B", issuer=a, ca=True)
    a_by_b = make_cert("Loop A", issuer=b, ca=True, private_key=a.key)
    leaf = make_cert("well-01", issuer=a).cert
    error = _ca_refused(leaf, [a_by_b.cert, b.cert], [make_cert("Root", ca=True).cert])
    assert error.reason is R.CERT_UNTRUSTED
    # With A trusted the same pool of certificates does give a path.
    _ca(leaf, [a_by_b.cert, b.cert], [a.cert])


def test_dates_of_every_certificate_on_the_path(root: Issued, intermediate: Issued) -> None:
    expired_leaf = make_cert("well-01", issuer=intermediate, not_after=NOW - timedelta(seconds=1))
    error = _ca_refused(expired_leaf.cert, [intermediate.cert], [root.cert])
    assert error.reason is R.CERT_EXPIRED
    early_leaf = make_cert("well-01", issuer=intermediate, not_before=NOW + timedelta(hours=1))
    error = _ca_refused(early_leaf.cert, [intermediate.cert], [root.cert])
    assert error.reason is R.CERT_NOT_YET_VALID
    old_intermediate = make_cert(
        "Old Intermediate", issuer=root, ca=True, not_after=NOW - timedelta(days=1)
    )
    leaf = make_cert("well-01", issuer=old_intermediate).cert
    assert _ca_refused(leaf, [old_intermediate.cert], [root.cert]).reason is R.CERT_EXPIRED
    future_root = make_cert("Future Root", ca=True, not_before=NOW + timedelta(days=1))
    leaf = make_cert("well-01", issuer=future_root).cert
    assert _ca_refused(leaf, [], [future_root.cert]).reason is R.CERT_NOT_YET_VALID


def test_a_valid_path_is_preferred_over_an_expired_one(root: Issued) -> None:
    # The same intermediate key and name, re-issued after the first one expired.
    fresh = make_cert("Rolled Intermediate", issuer=root, ca=True)
    stale_cert = (
        x509.CertificateBuilder()
        .subject_name(fresh.cert.subject)
        .issuer_name(root.cert.subject)
        .public_key(fresh.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=400))
        .not_valid_after(NOW - timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root.key, fresh.cert.signature_hash_algorithm)  # type: ignore[arg-type]
    )
    leaf = make_cert("well-01", issuer=fresh).cert
    _ca(leaf, [stale_cert, fresh.cert], [root.cert])
    assert _ca_refused(leaf, [stale_cert], [root.cert]).reason is R.CERT_EXPIRED


def test_revoked_leaf(root: Issued, intermediate: Issued, leaf: Issued) -> None:
    error = _ca_refused(leaf.cert, [intermediate.cert], [root.cert], revoked=frozenset({0x1234}))
    assert error.reason is R.CERT_REVOKED
    _ca(leaf.cert, [intermediate.cert], [root.cert], revoked=frozenset({0x4321}))


def test_subject_must_name_the_device(root: Issued, intermediate: Issued) -> None:
    for name in (
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "well-02")]),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "WELL-01")]),
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "well-01")]),
        x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "well-01"),
                x509.NameAttribute(NameOID.COMMON_NAME, "well-02"),
            ]
        ),
    ):
        leaf = make_cert("", issuer=intermediate, subject=name).cert
        error = _ca_refused(leaf, [intermediate.cert], [root.cert])
        assert error.reason is R.CERT_SUBJECT_MISMATCH


def test_ca_identity_checks(root: Issued, intermediate: Issued, leaf: Issued) -> None:
    args = (leaf.cert, [intermediate.cert], [root.cert])
    with pytest.raises(AuthError) as caught:
        verify_ca_device(
            leaf.cert,
            [intermediate.cert],
            trusted=[root.cert],
            device=None,
            module=None,
            device_id="well-01",
            now=NOW,
            revoked_serials=(),
        )
    assert caught.value.reason is R.UNKNOWN_DEVICE
    disabled = make_device(authentication=CA_AUTH, status=DeviceStatus.DISABLED)
    assert _ca_refused(*args, device=disabled).reason is R.DISABLED_DEVICE
    assert _ca_refused(*args, device=make_device()).reason is R.WRONG_AUTH_TYPE
    wrong_id = make_device("well-02", authentication=CA_AUTH)
    assert _ca_refused(*args, device=wrong_id).reason is R.UNKNOWN_DEVICE
    module = make_module(authentication=CA_AUTH)
    _ca(*args, module=module, module_id="agent")
    assert _ca_refused(*args, module_id="agent").reason is R.UNKNOWN_DEVICE
    sas_module = make_module()
    error = _ca_refused(*args, module=sas_module, module_id="agent")
    assert (error.reason, error.identity) == (R.WRONG_AUTH_TYPE, "well-01/agent")


def test_check_order_trust_before_dates_revocation_and_subject(
    root: Issued, intermediate: Issued
) -> None:
    stranger = make_cert("Stranger CA", ca=True)
    bad = make_cert("someone-else", issuer=stranger, not_after=NOW - timedelta(days=1), serial=7)
    error = _ca_refused(bad.cert, [stranger.cert], [root.cert], revoked=frozenset({7}))
    assert error.reason is R.CERT_UNTRUSTED
    expired_revoked = make_cert(
        "someone-else", issuer=intermediate, not_after=NOW - timedelta(days=1), serial=8
    )
    error = _ca_refused(expired_revoked.cert, [intermediate.cert], [root.cert], revoked={8})
    assert error.reason is R.CERT_EXPIRED
    revoked_other = make_cert("someone-else", issuer=intermediate, serial=9)
    error = _ca_refused(revoked_other.cert, [intermediate.cert], [root.cert], revoked={9})
    assert error.reason is R.CERT_REVOKED


class _Exploding:
    """Stands in for a certificate that makes ``cryptography`` raise anything at all."""

    def __getattr__(self, name: str) -> object:
        raise ValueError(f"cannot read {name}")


def test_unexpected_errors_become_untrusted(root: Issued) -> None:
    error = _ca_refused(_Exploding(), [], [root.cert])
    assert error.reason is R.CERT_UNTRUSTED
    assert "ValueError" in error.detail

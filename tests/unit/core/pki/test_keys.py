from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from wellguard.core.pki import (
    DEFAULT_KEY_TYPE,
    KeyType,
    check_public_key_strength,
    describe_public_key,
    generate_private_key,
)
from wellguard.errors import InvalidInputError


def test_default_key_type_is_p256() -> None:
    assert DEFAULT_KEY_TYPE is KeyType.EC_P256
    key = generate_private_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [
        ("ec-p256", "ec-p256"),
        ("ec-p384", "ec-p384"),
        (KeyType.RSA_2048, "rsa-2048"),
        (KeyType.RSA_3072, "rsa-3072"),
    ],
)
def test_generated_keys_have_the_requested_type_and_pass_the_policy(
    key_type: str, expected: str
) -> None:
    key = generate_private_key(key_type)
    assert describe_public_key(key.public_key()) == expected
    check_public_key_strength(key.public_key())


def test_unknown_key_type_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidInputError, match="ec-p256, ec-p384, rsa-2048, rsa-3072"):
        generate_private_key("dsa-1024")


def test_p521_is_accepted() -> None:
    check_public_key_strength(ec.generate_private_key(ec.SECP521R1()).public_key())


def test_rsa_1024_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidInputError, match="1024 bits is too weak"):
        check_public_key_strength(key.public_key())


def test_rsa_small_exponent_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    with pytest.raises(InvalidInputError, match="exponent 3"):
        check_public_key_strength(key.public_key())


def test_non_nist_curve_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(InvalidInputError, match="secp256k1 is not accepted"):
        check_public_key_strength(key.public_key())


def test_ed25519_is_refused_for_device_tls() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(InvalidInputError, match="ed25519 keys are not supported for device TLS"):
        check_public_key_strength(key.public_key())


def test_key_agreement_keys_are_refused() -> None:
    key = x25519.X25519PrivateKey.generate()
    with pytest.raises(InvalidInputError, match="not accepted"):
        check_public_key_strength(key.public_key())

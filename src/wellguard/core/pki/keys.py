"""Key generation and the key-strength policy for everything wellguard signs or trusts.

Theory of operation: wellguard only makes EC (NIST P-256, P-384) and RSA (2048, 3072)
keys, because those are what constrained TLS stacks on devices (mbedTLS, wolfSSL, BearSSL,
the Azure IoT C SDK) verify reliably. ``check_public_key_strength`` is the single gate
for public keys that arrive from outside -- device CSRs, bring-your-own CA certificates --
and refuses anything a device or the gateway could not safely use for TLS: small RSA
moduli, small RSA exponents, curves other than P-256/P-384/P-521, and Ed25519/Ed448
(sound keys, but not usable in the TLS client-certificate path of the device SDKs).
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from wellguard.errors import InvalidInputError

__all__ = [
    "DEFAULT_KEY_TYPE",
    "KeyType",
    "PrivateKey",
    "check_public_key_strength",
    "describe_public_key",
    "generate_private_key",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""The private keys wellguard creates, stores and signs with."""

MIN_RSA_BITS = 2048
# Above this, a hostile CSR makes every signature check on the gateway expensive.
MAX_RSA_BITS = 8192
MIN_RSA_EXPONENT = 65537
_ACCEPTED_CURVES: dict[str, str] = {
    "secp256r1": "ec-p256",
    "secp384r1": "ec-p384",
    "secp521r1": "ec-p521",
}


class KeyType(StrEnum):
    """Kinds of key wellguard generates; the value is the name used in config and CLI."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"

    @classmethod
    def parse(cls, value: KeyType | str) -> KeyType:
        """Return the ``KeyType`` named by ``value`` or raise ``InvalidInputError``."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(member.value for member in cls)
            raise InvalidInputError(
                f"unknown key type {value!r}; choose one of {choices}", field="keyType"
            ) from None


DEFAULT_KEY_TYPE = KeyType.EC_P256


def generate_private_key(key_type: KeyType | str = DEFAULT_KEY_TYPE) -> PrivateKey:
    """Generate a new private key of ``key_type`` (EC P-256 unless told otherwise)."""
    match KeyType.parse(key_type):
        case KeyType.EC_P256:
            return ec.generate_private_key(ec.SECP256R1())
        case KeyType.EC_P384:
            return ec.generate_private_key(ec.SECP384R1())
        case KeyType.RSA_2048:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        case KeyType.RSA_3072:
            return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def describe_public_key(public_key: PublicKeyTypes) -> str:
    """Return a short name for the key, such as ``ec-p256`` or ``rsa-2048``, for logs."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _ACCEPTED_CURVES.get(public_key.curve.name, f"ec-{public_key.curve.name}")
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"dsa-{public_key.key_size}"
    if isinstance(public_key, x25519.X25519PublicKey | x448.X448PublicKey):
        return "key-agreement-only"
    return type(public_key).__name__


def check_public_key_strength(public_key: PublicKeyTypes) -> None:
    """Raise ``InvalidInputError`` unless the key is EC P-256/384/521 or RSA 2048-8192."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _ACCEPTED_CURVES:
            raise InvalidInputError(
                f"EC curve {public_key.curve.name} is not accepted; use P-256, P-384 or P-521",
                field="publicKey",
            )
        return
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise InvalidInputError(
                f"RSA key of {public_key.key_size} bits is too weak; at least {MIN_RSA_BITS}"
                " bits are required",
                field="publicKey",
            )
        if public_key.key_size > MAX_RSA_BITS:
            raise InvalidInputError(
                f"RSA key of {public_key.key_size} bits is larger than the {MAX_RSA_BITS}"
                " bits accepted",
                field="publicKey",
            )
        exponent = public_key.public_numbers().e
        if exponent < MIN_RSA_EXPONENT or exponent % 2 == 0:
            raise InvalidInputError(
                f"RSA public exponent {exponent} is not accepted; use 65537", field="publicKey"
            )
        return
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raise InvalidInputError(
            f"{describe_public_key(public_key)} keys are not supported for device TLS;"
            " use EC P-256 or RSA-2048",
            field="publicKey",
        )
    raise InvalidInputError(
        f"{describe_public_key(public_key)} keys are not accepted; use EC P-256 or RSA-2048",
        field="publicKey",
    )

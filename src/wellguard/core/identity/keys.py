"""Symmetric keys: generation, validation and DPS group-key derivation.

Theory of operation
-------------------
IoT Hub keys are base64 text of 16 to 64 random bytes; wellguard makes 32-byte ones, as
the Azure portal does. Every place that turns key text into HMAC key bytes goes through
``decode_key_bytes`` so that one rule decides what a usable key is: strict base64 (no
stray characters, correct padding) decoding to 16-64 bytes. A key that fails the rule
cannot sign or verify anything, so a stored empty or truncated key can never become a
key an attacker can guess.

Enrollment-group devices of the Device Provisioning Service derive their own key from
the group key: ``base64(HMAC-SHA256(b64decode(group_key), registration_id))``, which
``derive_device_key`` computes exactly as the Azure SDK samples and DPS do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from wellguard.errors import InvalidInputError

__all__ = [
    "KEY_MAX_BYTES",
    "KEY_MIN_BYTES",
    "decode_key_bytes",
    "derive_device_key",
    "generate_symmetric_key",
    "validate_symmetric_key",
]

KEY_MIN_BYTES = 16
KEY_MAX_BYTES = 64
_GENERATED_KEY_BYTES = 32


def decode_key_bytes(text: str) -> bytes | None:
    """HMAC key bytes of base64 key ``text``, or None when it is not a usable key."""
    if not isinstance(text, str) or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not KEY_MIN_BYTES <= len(raw) <= KEY_MAX_BYTES:
        return None
    return raw


def generate_symmetric_key() -> str:
    """A new random key: base64 of 32 bytes from ``secrets``."""
    return base64.b64encode(secrets.token_bytes(_GENERATED_KEY_BYTES)).decode("ascii")


def validate_symmetric_key(text: str, field: str = "primaryKey") -> str:
    """Return ``text`` if it is base64 of 16-64 bytes, else raise ``InvalidInputError``."""
    if decode_key_bytes(text) is None:
        raise InvalidInputError(
            f"{field} must be base64 encoding {KEY_MIN_BYTES} to {KEY_MAX_BYTES} bytes",
            field=field,
        )
    return text


def derive_device_key(group_key_b64: str, registration_id: str) -> str:
    """DPS group derivation: base64(HMAC-SHA256(b64decode(group key), registration id))."""
    key = decode_key_bytes(group_key_b64)
    if key is None:
        raise InvalidInputError(
            f"group key must be base64 encoding {KEY_MIN_BYTES} to {KEY_MAX_BYTES} bytes",
            field="groupKey",
        )
    if not isinstance(registration_id, str) or not registration_id:
        raise InvalidInputError("registration id must not be empty", field="registrationId")
    try:
        message = registration_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            "registration id must be valid unicode text", field="registrationId"
        ) from None
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")

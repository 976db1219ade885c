"""Authenticated encryption of secrets at rest under one master key.

Theory of operation: the platform holds a single 32-byte master key (from the operator,
never defaulted). ``SecretBox`` never uses it directly: HKDF-SHA256 derives one key for
sealing and one password per named purpose, so the two uses cannot collide. ``seal``
encrypts with AES-256-GCM under a fresh random 96-bit nonce and returns text,
``v1:`` followed by URL-safe base64 of nonce and ciphertext, that fits a database column
or a TOML file. The caller's ``context`` (for example ``b"device:well-01:primary"``) is
bound in as associated data: it is not stored, and the token opens only under the same
context, so a sealed value copied onto another row is useless. Every failure to open --
wrong key, wrong context, tampering, truncation, not a token at all -- is one
``PkiError``, in the manner of Fernet's single ``InvalidToken``. With random nonces a key
should seal fewer than 2**32 values, far beyond what a registry holds.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wellguard.errors import InvalidInputError, PkiError

__all__ = ["SecretBox", "generate_master_key", "master_key_from_text", "master_key_to_text"]

KEY_BYTES = 32
NONCE_BYTES = 12
_PREFIX = "v1:"
_TAG_BYTES = 16
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_SEAL_INFO = b"wellguard/secretbox/v1/aes-256-gcm"
_PASSWORD_INFO = b"wellguard/secretbox/v1/password/"


def generate_master_key() -> bytes:
    """Return 32 fresh random bytes for use as a master key."""
    return os.urandom(KEY_BYTES)


def master_key_to_text(master_key: bytes) -> str:
    """Return ``master_key`` as URL-safe base64 text, the form config files hold."""
    _check_key(master_key)
    return base64.urlsafe_b64encode(master_key).decode("ascii")


def master_key_from_text(text: str) -> bytes:
    """Parse a 32-byte master key written as URL-safe base64 or as 64 hex digits."""
    value = text.strip() if isinstance(text, str) else ""
    if _HEX_KEY.fullmatch(value):
        return bytes.fromhex(value)
    try:
        padded = value + "=" * (-len(value) % 4)
        key = base64.b64decode(padded.replace("+", "-").replace("/", "_"), b"-_", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise InvalidInputError(
            "master key must be 32 bytes written as URL-safe base64 (43 or 44 characters)"
            " or hex (64 characters)",
            field="masterKey",
        )
    return key


class SecretBox:
    """Seals and opens small secrets with AES-256-GCM under a key derived from the master key."""

    __slots__ = ("_aead", "_master_key")

    def __init__(self, master_key: bytes) -> None:
        _check_key(master_key)
        self._master_key = bytes(master_key)
        self._aead = AESGCM(_derive(self._master_key, _SEAL_INFO))

    def __repr__(self) -> str:
        return "SecretBox(<master key hidden>)"

    def seal(self, plaintext: bytes, *, context: bytes = b"") -> str:
        """Encrypt ``plaintext`` bound to ``context`` and return a ``v1:`` token."""
        if not isinstance(plaintext, bytes) or not isinstance(context, bytes):
            raise InvalidInputError("plaintext and context must be bytes")
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, context)
        return _PREFIX + base64.urlsafe_b64encode(sealed).decode("ascii")

    def open(self, token: str, *, context: bytes = b"") -> bytes:
        """Return the plaintext sealed in ``token`` under ``context``, or raise ``PkiError``."""
        if not isinstance(token, str) or not token.startswith(_PREFIX):
            raise PkiError("cannot open sealed secret: not a v1 token")
        if not isinstance(context, bytes):
            raise InvalidInputError("context must be bytes")
        try:
            sealed = base64.b64decode(token[len(_PREFIX) :], b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise PkiError("cannot open sealed secret: malformed token") from None
        if len(sealed) < NONCE_BYTES + _TAG_BYTES:
            raise PkiError("cannot open sealed secret: token is truncated")
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
        except InvalidTag:
            raise PkiError(
                "cannot open sealed secret: wrong key, wrong context, or tampered"
            ) from None

    def derive_password(self, purpose: str) -> bytes:
        """Return a stable password for ``purpose`` (e.g. ``"ca:issuing"``) as ASCII bytes."""
        if not isinstance(purpose, str) or not purpose:
            raise InvalidInputError("purpose must be a non-empty string", field="purpose")
        secret = _derive(self._master_key, _PASSWORD_INFO + purpose.encode("utf-8"))
        # Text, so an operator can also hand it to `openssl pkey -passin`.
        return base64.urlsafe_b64encode(secret).rstrip(b"=")


def _check_key(master_key: bytes) -> None:
    if not isinstance(master_key, bytes | bytearray) or len(master_key) != KEY_BYTES:
        raise InvalidInputError(f"master key must be exactly {KEY_BYTES} bytes", field="masterKey")


def _derive(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(
        master_key
    )

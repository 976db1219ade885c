from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellguard.core.pki import generate_private_key, private_key_from_pem, private_key_to_pem
from wellguard.core.secretbox import (
    SecretBox,
    generate_master_key,
    master_key_from_text,
    master_key_to_text,
)
from wellguard.errors import InvalidInputError, PkiError

KEY = bytes(range(32))
BOX = SecretBox(KEY)
CONTEXT = b"device:well-01:primary"


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token[3:]))
    raw[index] ^= 0x01
    return "v1:" + base64.urlsafe_b64encode(bytes(raw)).decode()


def test_round_trip_and_token_shape() -> None:
    token = BOX.seal(b"primary key bytes", context=CONTEXT)
    assert token.startswith("v1:")
    raw = base64.urlsafe_b64decode(token[3:])
    assert len(raw) == 12 + len(b"primary key bytes") + 16
    assert BOX.open(token, context=CONTEXT) == b"primary key bytes"


def test_every_seal_uses_a_fresh_nonce() -> None:
    assert BOX.seal(b"same", context=CONTEXT) != BOX.seal(b"same", context=CONTEXT)


def test_wrong_context_is_refused() -> None:
    token = BOX.seal(b"secret", context=b"device:well-01:primary")
    with pytest.raises(PkiError, match="wrong context"):
        BOX.open(token, context=b"device:well-02:primary")
    with pytest.raises(PkiError):
        BOX.open(token)


def test_wrong_key_is_refused() -> None:
    token = BOX.seal(b"secret", context=CONTEXT)
    with pytest.raises(PkiError, match="wrong key"):
        SecretBox(generate_master_key()).open(token, context=CONTEXT)


@pytest.mark.parametrize("index", [0, 11, 12, 17, -16, -1])
def test_tampering_anywhere_is_refused(index: int) -> None:
    token = BOX.seal(b"secret", context=CONTEXT)
    with pytest.raises(PkiError, match="tampered"):
        BOX.open(_flip(token, index), context=CONTEXT)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "not a v1 token"),
        ("v2:AAAA", "not a v1 token"),
        ("v1:not base64!", "malformed"),
        ("v1:" + base64.urlsafe_b64encode(b"short").decode(), "truncated"),
    ],
)
def test_garbage_tokens_are_refused(token: str, message: str) -> None:
    with pytest.raises(PkiError, match=message):
        BOX.open(token)


def test_truncated_token_is_refused() -> None:
    token = BOX.seal(b"a longer secret value", context=CONTEXT)
    raw = base64.urlsafe_b64decode(token[3:])
    shorter = "v1:" + base64.urlsafe_b64encode(raw[:-4]).decode()
    with pytest.raises(PkiError):
        BOX.open(shorter, context=CONTEXT)


@pytest.mark.parametrize("key", [b"", b"x" * 31, b"x" * 33, "x" * 32])
def test_master_key_must_be_32_bytes(key: bytes) -> None:
    with pytest.raises(InvalidInputError, match="32 bytes"):
        SecretBox(key)


def test_repr_hides_the_key() -> None:
    assert KEY.hex() not in repr(BOX)
    assert repr(BOX) == "SecretBox(<master key hidden>)"


def test_generated_master_keys_are_random_32_bytes() -> None:
    first, second = generate_master_key(), generate_master_key()
    assert len(first) == 32
    assert first != second


def test_master_key_text_forms() -> None:
    key = generate_master_key()
    text = master_key_to_text(key)
    assert master_key_from_text(text) == key
    assert master_key_from_text(text.rstrip("=")) == key
    assert master_key_from_text(f"  {text}\n") == key
    assert master_key_from_text(key.hex()) == key
    assert master_key_from_text(key.hex().upper()) == key
    assert master_key_from_text(base64.b64encode(key).decode()) == key


@pytest.mark.parametrize(
    "text",
    ["", "tooshort", "00" * 31, "00" * 33, base64.b64encode(b"x" * 31).decode(), "!" * 43],
)
def test_bad_master_key_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="URL-safe base64"):
        master_key_from_text(text)


def test_derived_passwords_are_stable_separate_and_ascii() -> None:
    password = BOX.derive_password("ca:issuing")
    assert password == SecretBox(KEY).derive_password("ca:issuing")
    assert password != BOX.derive_password("ca:root")
    assert password != SecretBox(generate_master_key()).derive_password("ca:issuing")
    assert password.isascii()
    assert len(password) == 43
    with pytest.raises(InvalidInputError, match="purpose"):
        BOX.derive_password("")


def test_derived_password_protects_a_ca_key() -> None:
    key = generate_private_key()
    pem = private_key_to_pem(key, BOX.derive_password("ca:issuing"))
    loaded = private_key_from_pem(pem, BOX.derive_password("ca:issuing"))
    assert loaded.private_numbers() == key.private_numbers()
    with pytest.raises(PkiError, match="cannot decrypt"):
        private_key_from_pem(pem, BOX.derive_password("ca:root"))


@given(plaintext=st.binary(max_size=4096), context=st.binary(max_size=256))
def test_round_trip_for_arbitrary_bytes(plaintext: bytes, context: bytes) -> None:
    assert BOX.open(BOX.seal(plaintext, context=context), context=context) == plaintext


@given(
    plaintext=st.binary(max_size=256), context=st.binary(max_size=64), other=st.binary(max_size=64)
)
def test_any_other_context_is_refused(plaintext: bytes, context: bytes, other: bytes) -> None:
    token = BOX.seal(plaintext, context=context)
    if other != context:
        with pytest.raises(PkiError):
            BOX.open(token, context=other)


@given(st.text(max_size=200))
def test_open_only_raises_pki_error_on_arbitrary_text(token: str) -> None:
    with contextlib.suppress(PkiError):
        BOX.open(token)

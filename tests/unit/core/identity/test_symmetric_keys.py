"""Symmetric keys: generation, validation and DPS group derivation."""

from __future__ import annotations

import base64

import pytest

from wellguard.core.identity import (
    KEY_MAX_BYTES,
    KEY_MIN_BYTES,
    decode_key_bytes,
    derive_device_key,
    generate_symmetric_key,
    validate_symmetric_key,
)
from wellguard.errors import InvalidInputError


def test_generated_keys_are_32_random_bytes() -> None:
    keys = {generate_symmetric_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == 32
        assert validate_symmetric_key(key) == key


@pytest.mark.parametrize("size", [KEY_MIN_BYTES, 32, KEY_MAX_BYTES])
def test_validate_accepts_16_to_64_bytes(size: int) -> None:
    key = base64.b64encode(bytes(range(size))).decode()
    assert validate_symmetric_key(key) == key
    assert decode_key_bytes(key) == bytes(range(size))


@pytest.mark.parametrize(
    "text",
    [
        "",
        base64.b64encode(bytes(KEY_MIN_BYTES - 1)).decode(),
        base64.b64encode(bytes(KEY_MAX_BYTES + 1)).decode(),
        "not base64 at all!!",
        base64.b64encode(bytes(32)).decode().rstrip("="),  # missing padding
        " " + base64.b64encode(bytes(32)).decode(),
        base64.b64encode(bytes(32)).decode()[:-2] + "é=",
    ],
)
def test_validate_rejects(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_symmetric_key(text, field="secondaryKey")
    assert caught.value.field == "secondaryKey"
    assert decode_key_bytes(text) is None


def test_decode_key_bytes_of_non_text() -> None:
    assert decode_key_bytes(None) is None  # type: ignore[arg-type]


def test_derive_device_key_matches_the_azure_docs_example() -> None:
    # From "How to provision legacy devices using symmetric keys" (Azure DPS docs).
    group_key = (
        "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
    )
    derived = derive_device_key(group_key, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
    assert derived == "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
    assert validate_symmetric_key(derived) == derived


def test_derived_keys_differ_per_registration() -> None:
    group_key = generate_symmetric_key()
    assert derive_device_key(group_key, "a") != derive_device_key(group_key, "b")


@pytest.mark.parametrize(
    ("group_key", "registration_id", "field"),
    [
        ("nope", "dev-1", "groupKey"),
        (base64.b64encode(bytes(32)).decode(), "", "registrationId"),
        (base64.b64encode(bytes(32)).decode(), "\ud800", "registrationId"),
    ],
)
def test_derive_rejects(group_key: str, registration_id: str, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        derive_device_key(group_key, registration_id)
    assert caught.value.field == field

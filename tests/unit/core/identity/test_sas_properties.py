"""Property tests: parsing is total, generate/parse/verify round-trips, tampering fails."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.unit.core.identity.factories import HUB_HOSTS, NOW, key, policies
from wellguard.core.identity import (
    MAX_EXPIRY,
    SasToken,
    generate_sas_token,
    parse_sas_token,
    verify_sas_token,
    verify_service_sas,
)
from wellguard.core.identity.sas import _canonical_resource
from wellguard.errors import AuthError, AuthFailureReason
from wellguard.model.policy import AccessRights

# Text without lone surrogates, which no wire format can carry.
_TEXT = st.characters(codec="utf-8")
_FIELD_NAMES = st.sampled_from(["sr", "sig", "se", "skn", "SR", "x", ""])
_FIELD_VALUES = st.one_of(
    st.text(st.sampled_from("abc%2F=&+-0123456789 é\x00"), max_size=12),
    st.integers(-5, 10**13).map(str),
)


def _parse_outcome(text: str) -> SasToken | AuthError:
    try:
        return parse_sas_token(text)
    except AuthError as error:
        return error


def _assert_parse_is_total(text: str) -> None:
    outcome = _parse_outcome(text)
    if isinstance(outcome, AuthError):
        assert outcome.reason is AuthFailureReason.MALFORMED_TOKEN
    else:
        assert isinstance(outcome, SasToken)
        assert outcome.expiry >= 0


@given(st.text())
def test_parse_never_raises_anything_but_auth_error(text: str) -> None:
    _assert_parse_is_total(text)
    _assert_parse_is_total("SharedAccessSignature " + text)


@given(st.lists(st.tuples(_FIELD_NAMES, _FIELD_VALUES), max_size=6), st.sampled_from("&;"))
def test_parse_is_total_on_token_shaped_text(fields: list[tuple[str, str]], sep: str) -> None:
    body = sep.join(f"{name}={value}" for name, value in fields)
    _assert_parse_is_total("SharedAccessSignature " + body)


_KEYS = st.binary(min_size=16, max_size=64).map(lambda raw: base64.b64encode(raw).decode())
_RESOURCES = st.text(_TEXT, min_size=1, max_size=200).filter(lambda r: bool(_canonical_resource(r)))
_KEY_NAMES = st.none() | st.text(_TEXT, min_size=1, max_size=40)


@given(_RESOURCES, _KEYS, st.integers(0, MAX_EXPIRY), _KEY_NAMES)
def test_generate_parse_verify_round_trip(
    resource: str, key_b64: str, expiry: int, key_name: str | None
) -> None:
    token = parse_sas_token(generate_sas_token(resource, key_b64, expiry, key_name))
    assert token.resource_uri == resource
    assert token.expiry == expiry
    assert token.key_name == key_name
    verify_sas_token(
        token,
        keys=[key(77), key_b64],
        targets=[resource],
        now=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=expiry),
        max_ttl_seconds=0,
    )


_POLICIES = policies()
_OWNER = _POLICIES["iothubowner"]


def _fields(token: str) -> dict[str, str]:
    body = token.removeprefix("SharedAccessSignature ")
    return dict(part.split("=", 1) for part in body.split("&"))


def _verify_service(token: str) -> None:
    verify_service_sas(
        token,
        policies=_POLICIES,
        hub_hosts=HUB_HOSTS,
        now=NOW,
        required=AccessRights.REGISTRY_READ,
        max_ttl_seconds=3600,
    )


@given(
    st.sampled_from(HUB_HOSTS),
    st.integers(0, 3600),
    st.sampled_from(["sr", "sig", "se", "skn"]),
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789%+/=:."), min_size=1),
)
def test_tampering_any_field_fails(host: str, ttl: int, field: str, replacement: str) -> None:
    expiry = int(NOW.timestamp()) + ttl
    token = generate_sas_token(host, _OWNER.primary_key, expiry, key_name="iothubowner")
    _verify_service(token)
    fields = _fields(token)
    # Spellings that decode to the same sig or skn are the same token, not a tampered one.
    if field in ("sig", "skn"):
        assume(unquote_plus(replacement) != unquote_plus(fields[field]))
    assume(replacement != fields[field])
    fields[field] = replacement
    tampered = "SharedAccessSignature " + "&".join(f"{k}={v}" for k, v in fields.items())
    with pytest.raises(AuthError):
        _verify_service(tampered)

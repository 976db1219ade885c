"""SAS tokens: format, strict parsing, scoping, time window and signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, quote_plus

import pytest

from tests.unit.core.identity.factories import (
    DEVICE_KEY,
    DEVICE_KEY2,
    MAX_TTL,
    NOW,
    NOW_S,
    OTHER_KEY,
)
from wellguard.core.identity import (
    MAX_EXPIRY,
    MAX_TOKEN_LENGTH,
    SasToken,
    generate_sas_token,
    parse_sas_token,
    resource_matches,
    verify_sas_token,
)
from wellguard.errors import AuthError, AuthFailureReason, InvalidInputError

R = AuthFailureReason
TARGET = "hub.local/devices/well-01"


def _signature(key_b64: str, message: str) -> str:
    digest = hmac.new(base64.b64decode(key_b64), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _verify(token: str | SasToken, **overrides: object) -> None:
    parsed = parse_sas_token(token) if isinstance(token, str) else token
    arguments: dict[str, object] = {
        "keys": [DEVICE_KEY, DEVICE_KEY2],
        "targets": [TARGET],
        "now": NOW,
        "max_ttl_seconds": MAX_TTL,
    }
    arguments.update(overrides)
    verify_sas_token(parsed, **arguments)  # type: ignore[arg-type]


# --- generate ---------------------------------------------------------------------------


def test_generate_matches_the_documented_algorithm() -> None:
    expiry = NOW_S + 3600
    encoded = quote(TARGET, safe="")
    signature = _signature(DEVICE_KEY, f"{encoded}\n{expiry}")
    expected = f"SharedAccessSignature sr={encoded}&sig={quote(signature, safe='')}&se={expiry}"
    assert generate_sas_token(TARGET, DEVICE_KEY, expiry) == expected
    assert encoded == "hub.local%2Fdevices%2Fwell-01"


def test_generate_appends_skn_last() -> None:
    token = generate_sas_token("hub.local", DEVICE_KEY, 10, key_name="iothubowner")
    assert token.startswith("SharedAccessSignature sr=hub.local&sig=")
    assert token.endswith("&se=10&skn=iothubowner")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (("", DEVICE_KEY, 1), "resourceUri"),
        ((TARGET, "not base64!", 1), "key"),
        ((TARGET, base64.b64encode(b"short").decode(), 1), "key"),
        ((TARGET, DEVICE_KEY, -1), "expiry"),
        ((TARGET, DEVICE_KEY, MAX_EXPIRY + 1), "expiry"),
        ((TARGET, DEVICE_KEY, True), "expiry"),
        ((TARGET, DEVICE_KEY, 1, ""), "keyName"),
        (("\ud800", DEVICE_KEY, 1), None),
    ],
)
def test_generate_rejects_bad_arguments(arguments: tuple[object, ...], field: str | None) -> None:
    with pytest.raises(InvalidInputError) as caught:
        generate_sas_token(*arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- parse ------------------------------------------------------------------------------


def test_parse_decodes_fields_and_keeps_the_signed_resource() -> None:
    token = parse_sas_token(
        "SharedAccessSignature sr=hub.local%2Fdevices%2Fwell-01&sig=ab%2Bc%2F%3D&se=42&skn=de+v"
    )
    assert token == SasToken(
        resource_uri="hub.local/devices/well-01",
        signature="ab+c/=",
        expiry=42,
        key_name="de v",
        encoded_resource="hub.local%2Fdevices%2Fwell-01",
    )
    assert token.signed_resource == "hub.local%2Fdevices%2Fwell-01"


def test_parse_accepts_fields_in_any_order() -> None:
    a = parse_sas_token("SharedAccessSignature skn=p&se=1&sig=s&sr=r")
    b = parse_sas_token("SharedAccessSignature sr=r&sig=s&se=1&skn=p")
    assert a == b
    assert a.key_name == "p"
    assert parse_sas_token("SharedAccessSignature se=0&sr=r&sig=s").key_name is None


def test_signed_resource_defaults_to_the_canonical_encoding() -> None:
    token = SasToken(resource_uri="hub/devices/a b", signature="x", expiry=1)
    assert token.signed_resource == "hub%2Fdevices%2Fa%20b"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("SharedAccessSignature ", id="no-fields"),
        pytest.param("sharedaccesssignature sr=r&sig=s&se=1", id="prefix-case"),
        pytest.param("Bearer sr=r&sig=s&se=1", id="other-scheme"),
        pytest.param("SharedAccessSignature  sr=r&sig=s&se=1", id="double-space"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=1 ", id="trailing-space"),
        pytest.param("SharedAccessSignature sr=r&sig=s\n&se=1", id="control-char"),
        pytest.param("SharedAccessSignature sig=s&se=1", id="missing-sr"),
        pytest.param("SharedAccessSignature sr=r&se=1", id="missing-sig"),
        pytest.param("SharedAccessSignature sr=r&sig=s", id="missing-se"),
        pytest.param("SharedAccessSignature sr=r&sr=r&sig=s&se=1", id="duplicate"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=1&skn=a&skn=b", id="duplicate-skn"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=1&foo=bar", id="unknown"),
        pytest.param("SharedAccessSignature SR=r&sig=s&se=1", id="upper-case-name"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=1&", id="trailing-amp"),
        pytest.param("SharedAccessSignature sr=r&&sig=s&se=1", id="empty-field"),
        pytest.param("SharedAccessSignature sr&sig=s&se=1", id="no-equals"),
        pytest.param("SharedAccessSignature sr=&sig=s&se=1", id="empty-sr"),
        pytest.param("SharedAccessSignature sr=r&sig=&se=1", id="empty-sig"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=", id="empty-se"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=1&skn=", id="empty-skn"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=-1", id="negative-se"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=+1", id="signed-se"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=01", id="leading-zero-se"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=1.5", id="fraction-se"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=1e9", id="exponent-se"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=abc", id="text-se"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=1000000000000", id="huge-se"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=253402300800", id="after-9999"),
        pytest.param("SharedAccessSignature sr=r&sig=s&se=١٢", id="arabic-digits"),
        pytest.param("SharedAccessSignature sr=é&sig=s&se=1", id="non-ascii"),
        pytest.param("SharedAccessSignature sr=%ff&sig=s&se=1", id="bad-utf8"),
        pytest.param(
            "SharedAccessSignature sr=" + "a" * MAX_TOKEN_LENGTH + "&sig=s&se=1", id="too-long"
        ),
    ],
)
def test_parse_rejects_malformed_tokens(text: str) -> None:
    with pytest.raises(AuthError) as caught:
        parse_sas_token(text)
    assert caught.value.reason is R.MALFORMED_TOKEN
    assert caught.value.detail
    assert str(caught.value) == "unauthorized"


def test_parse_rejects_non_text() -> None:
    with pytest.raises(AuthError) as caught:
        parse_sas_token(b"SharedAccessSignature sr=r&sig=s&se=1")  # type: ignore[arg-type]
    assert caught.value.reason is R.MALFORMED_TOKEN


def test_parse_accepts_a_token_of_exactly_the_maximum_length() -> None:
    head = "SharedAccessSignature sig=s&se=1&sr="
    token = parse_sas_token(head + "a" * (MAX_TOKEN_LENGTH - len(head)))
    assert len(token.resource_uri) == MAX_TOKEN_LENGTH - len(head)


# --- resource scope ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "target", "expected"),
    [
        ("hub.local/devices/a", "hub.local/devices/a", True),
        ("hub.local/devices/a", "hub.local/devices/a/modules/m", True),
        ("hub.local/devices/a", "hub.local/devices/ab", False),
        ("hub.local/devices/ab", "hub.local/devices/a", False),
        ("hub.local", "hub.local/devices/a", True),
        ("HUB.Local/Devices/A", "hub.local/devices/a", True),
        ("https://hub.local/devices/a", "hub.local/devices/a", True),
        ("http://hub.local/devices/a/", "hub.local/devices/a", True),
        ("hub.local/devices/a", "https://hub.local/devices/a/", True),
        ("hub.local:8443/devices/a", "hub.local:8443/devices/a", True),
        ("hub.local:8443/devices/a", "hub.local/devices/a", False),
        ("hub.local/devices/a", "hub.local:8443/devices/a", False),
        ("other.local/devices/a", "hub.local/devices/a", False),
        ("hub.local/devices/a%3Ab", "hub.local/devices/a:b", True),  # C# double encoding
        ("hub.local/devices/a%41", "hub.local/devices/a%41", True),  # '%' in a device id
        ("ftp://hub.local/devices/a", "hub.local/devices/a", False),
        ("https://", "hub.local", False),
        ("/", "/", False),
        ("", "hub.local", False),
        ("hub.local/devices/a", "", False),
    ],
)
def test_resource_matches(granted: str, target: str, expected: bool) -> None:
    assert resource_matches(granted, target) is expected


def test_resource_matches_is_false_for_non_text() -> None:
    assert resource_matches(None, "hub.local") is False  # type: ignore[arg-type]


# --- verify -----------------------------------------------------------------------------


def test_verify_accepts_primary_and_secondary_key() -> None:
    _verify(generate_sas_token(TARGET, DEVICE_KEY, NOW_S + 3600))
    _verify(generate_sas_token(TARGET, DEVICE_KEY2, NOW_S + 3600))


def test_verify_refuses_a_token_signed_with_another_key() -> None:
    with pytest.raises(AuthError) as caught:
        _verify(generate_sas_token(TARGET, OTHER_KEY, NOW_S + 3600))
    assert caught.value.reason is R.BAD_SIGNATURE


def test_unusable_keys_just_do_not_match() -> None:
    token = generate_sas_token(TARGET, DEVICE_KEY2, NOW_S + 3600)
    _verify(token, keys=["***not base64***", "", "QUJD", DEVICE_KEY2])
    with pytest.raises(AuthError) as caught:
        _verify(token, keys=["***not base64***", ""])
    assert caught.value.reason is R.BAD_SIGNATURE


def test_empty_key_never_verifies() -> None:
    encoded = quote(TARGET, safe="")
    empty_key_sig = base64.b64encode(
        hmac.new(b"", f"{encoded}\n{NOW_S}".encode(), hashlib.sha256).digest()
    ).decode()
    token = f"SharedAccessSignature sr={encoded}&sig={quote(empty_key_sig, safe='')}&se={NOW_S}"
    with pytest.raises(AuthError) as caught:
        _verify(token, keys=[""])
    assert caught.value.reason is R.BAD_SIGNATURE


def test_verify_refuses_a_token_for_another_resource() -> None:
    token = generate_sas_token("hub.local/devices/well-02", DEVICE_KEY, NOW_S + 3600)
    with pytest.raises(AuthError) as caught:
        _verify(token, identity="well-01")
    assert caught.value.reason is R.WRONG_RESOURCE
    assert caught.value.identity == "well-01"


def test_verify_accepts_any_of_the_targets() -> None:
    token = generate_sas_token("hub.local:8443/devices/well-01", DEVICE_KEY, NOW_S + 60)
    _verify(token, targets=[TARGET, "hub.local:8443/devices/well-01"])


@pytest.mark.parametrize(
    ("expiry", "reason"),
    [
        (NOW_S, None),
        (NOW_S - 300, None),  # exactly at the edge of the skew
        (NOW_S - 301, R.EXPIRED_TOKEN),
        (NOW_S - 86_400, R.EXPIRED_TOKEN),
        (NOW_S + MAX_TTL + 300, None),
        (NOW_S + MAX_TTL + 301, R.EXPIRED_TOKEN),  # beyond the longest accepted lifetime
        (0, R.EXPIRED_TOKEN),
    ],
)
def test_verify_time_window(expiry: int, reason: AuthFailureReason | None) -> None:
    token = generate_sas_token(TARGET, DEVICE_KEY, expiry)
    if reason is None:
        _verify(token)
        return
    with pytest.raises(AuthError) as caught:
        _verify(token)
    assert caught.value.reason is reason


def test_clock_skew_is_configurable() -> None:
    token = generate_sas_token(TARGET, DEVICE_KEY, NOW_S - 10)
    _verify(token, clock_skew_seconds=10)
    with pytest.raises(AuthError):
        _verify(token, clock_skew_seconds=0)


def test_a_naive_clock_is_taken_as_utc() -> None:
    token = generate_sas_token(TARGET, DEVICE_KEY, NOW_S + 60)
    naive = NOW.replace(tzinfo=None)
    _verify(token, now=naive, clock_skew_seconds=0)
    with pytest.raises(AuthError):
        _verify(token, now=naive + timedelta(seconds=61), clock_skew_seconds=0)


def test_verify_order_resource_then_expiry_then_signature() -> None:
    stale_foreign = generate_sas_token("hub.local/devices/x", OTHER_KEY, 5)
    with pytest.raises(AuthError) as caught:
        _verify(stale_foreign)
    assert caught.value.reason is R.WRONG_RESOURCE
    stale_forged = generate_sas_token(TARGET, OTHER_KEY, 5)
    with pytest.raises(AuthError) as caught:
        _verify(stale_forged)
    assert caught.value.reason is R.EXPIRED_TOKEN


def test_the_signature_covers_sr_exactly_as_sent() -> None:
    expiry = NOW_S + 60
    # azure-iot-hub encodes sr with quote_plus, its uamqp client not at all: IoT Hub signs
    # the field as sent, so both verify although they decode to the same resource.
    for encoded in (quote_plus(TARGET), TARGET, "hub.local%2fdevices%2fwell-01"):
        sig = quote(_signature(DEVICE_KEY, f"{encoded}\n{expiry}"))
        _verify(f"SharedAccessSignature sr={encoded}&sig={sig}&se={expiry}")
    # Re-encoding sr differently breaks the signature even though the resource is equal.
    good = generate_sas_token(TARGET, DEVICE_KEY, expiry)
    with pytest.raises(AuthError) as caught:
        _verify(good.replace("%2F", "%2f"))
    assert caught.value.reason is R.BAD_SIGNATURE


def test_skn_is_not_covered_by_the_signature() -> None:
    # As in IoT Hub: skn only selects the key; verify_sas_token alone does not bind it.
    token = generate_sas_token(TARGET, DEVICE_KEY, NOW_S + 60, key_name="a")
    _verify(token.replace("&skn=a", "&skn=b"))


def test_sas_token_validates_on_construction() -> None:
    with pytest.raises(InvalidInputError):
        SasToken(resource_uri="", signature="s", expiry=1)
    with pytest.raises(InvalidInputError):
        SasToken(resource_uri="r", signature="s", expiry=-1)
    with pytest.raises(InvalidInputError):
        SasToken(resource_uri="r", signature="s", expiry=1, key_name="")
    assert datetime.fromtimestamp(NOW_S, UTC) == NOW

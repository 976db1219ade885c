"""parse_connect_identity: the claim in a CONNECT, and each way it can be refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellguard.core.gateway import ClaimedIdentity, parse_connect_identity
from wellguard.errors import AuthError, AuthFailureReason, InvalidInputError

R = AuthFailureReason
HOSTS = ("hub.local", "hub.local:8883", "Gateway.Example")
CLIENT_TYPE = "azure-iot-device-iothub-py%2F2.14.0%283.11.7%3BLinux%29"
QUERY = f"?api-version=2019-10-01&DeviceClientType={CLIENT_TYPE}"


def test_device_username() -> None:
    identity = parse_connect_identity("well-01", f"hub.local/well-01/{QUERY}", HOSTS)
    assert identity == ClaimedIdentity(
        "well-01",
        None,
        "2019-10-01",
        "hub.local",
        None,
        "azure-iot-device-iothub-py/2.14.0(3.11.7;Linux)",
    )
    assert identity.key == "well-01"


def test_module_username_with_port_and_model_id() -> None:
    username = (
        "hub.local:8883/well-01/agent/?api-version=2020-09-30"
        "&DeviceClientType=c%2F1.0&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"
    )
    identity = parse_connect_identity("well-01/agent", username, HOSTS)
    assert (identity.device_id, identity.module_id, identity.key) == (
        "well-01",
        "agent",
        "well-01/agent",
    )
    assert identity.hostname == "hub.local:8883"
    assert identity.model_id == "dtmi:com:example:Thermostat;1"
    assert identity.api_version == "2020-09-30"
    assert identity.client_type == "c/1.0"


@pytest.mark.parametrize(
    "username",
    [
        "HUB.LOCAL/well-01/?api-version=2019-10-01",  # host compared case-insensitively
        "gateway.example/well-01/?api-version=2019-10-01",
        "hub.local/well-01/api-version=2016-11-14",  # legacy form without '?'
        "hub.local/well-01/",
        "hub.local/well-01",
        "hub.local/well-01/?",
        "hub.local/well-01/?api-version=2019-10-01&unknown=x&&",
    ],
)
def test_accepted_variants(username: str) -> None:
    identity = parse_connect_identity("well-01", username, HOSTS)
    assert identity.device_id == "well-01"
    assert identity.module_id is None


def test_ids_with_question_mark_do_not_shift_the_split() -> None:
    identity = parse_connect_identity("?x", "hub.local/?x/?api-version=2019-10-01", HOSTS)
    assert identity.device_id == "?x"
    assert identity.api_version == "2019-10-01"
    identity = parse_connect_identity("d/?m=1", "hub.local/d/?m=1/?api-version=2019-10-01", HOSTS)
    assert (identity.device_id, identity.module_id) == ("d", "?m=1")


@pytest.mark.parametrize(
    ("client_id", "username", "reason"),
    [
        ("well-01", None, R.BAD_USERNAME),
        ("well-01", "", R.BAD_USERNAME),
        ("well-01", "hub.local", R.BAD_USERNAME),
        ("well-01", "/well-01/?api-version=2019-10-01", R.BAD_USERNAME),
        ("well-01", "hub.local/well-01/" + "?x=" + "a" * 5000, R.BAD_USERNAME),
        ("well-01", "hub.local/well-01/?api-version=yesterday", R.BAD_USERNAME),
        ("well-01", "hub.local/well-01/?model-id=urn:x", R.BAD_USERNAME),
        ("well-01", "hub.local/well-01/?api-version=a&api-version=b", R.BAD_USERNAME),
        ("well-01", "hub.local/well-01/?DeviceClientType=%FF", R.BAD_USERNAME),
        ("well-01", "hub.local/well-01/?DeviceClientType=a%0Ab", R.BAD_USERNAME),
        ("", "hub.local//?api-version=2019-10-01", R.BAD_CLIENT_ID),
        ("a/b/c", "hub.local/a/b/c/?api-version=2019-10-01", R.BAD_CLIENT_ID),
        ("bad id", "hub.local/bad id/", R.BAD_CLIENT_ID),
        ("well-01/", "hub.local/well-01//", R.BAD_CLIENT_ID),
        ("well-01", "other.hub/well-01/?api-version=2019-10-01", R.WRONG_HOST),
        ("well-01", "hub.local:1234/well-01/", R.WRONG_HOST),
        ("well-01", "hub.local/well-02/?api-version=2019-10-01", R.CLIENT_ID_MISMATCH),
        ("well-01", "hub.local/well-01x/?api-version=2019-10-01", R.CLIENT_ID_MISMATCH),
        ("well-01", "hub.local/well-01/agent/?api-version=2019-10-01", R.CLIENT_ID_MISMATCH),
        ("well-01/agent", "hub.local/well-01/?api-version=2019-10-01", R.CLIENT_ID_MISMATCH),
        ("well-01/agent", "hub.local/well-01/other/", R.CLIENT_ID_MISMATCH),
    ],
)
def test_refusals(client_id: str, username: str | None, reason: AuthFailureReason) -> None:
    with pytest.raises(AuthError) as caught:
        parse_connect_identity(client_id, username, HOSTS)
    assert caught.value.reason is reason
    assert str(caught.value) == "unauthorized"


def test_claimed_identity_validates_on_construction() -> None:
    with pytest.raises(InvalidInputError):
        ClaimedIdentity("bad id", None, None, "hub.local")
    with pytest.raises(InvalidInputError):
        ClaimedIdentity("ok", "bad/module", None, "hub.local")
    with pytest.raises(InvalidInputError):
        ClaimedIdentity("ok", None, None, "")


@given(st.text(max_size=300), st.one_of(st.none(), st.text(max_size=300)))
def test_arbitrary_input_is_an_identity_or_an_auth_error(
    client_id: str, username: str | None
) -> None:
    try:
        identity = parse_connect_identity(client_id, username, HOSTS)
    except AuthError:
        return
    assert identity.key == client_id

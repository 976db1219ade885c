"""The dialect agrees byte for byte with what the official Python device SDK sends and parses.

``sdk_dialect_probe.py`` runs in the SDK's virtualenv (it pins paho-mqtt<2) and drives the
SDK's own pipeline stages with a capture stage in place of the network; this module
prepares the inputs (including topics built by wellguard for the SDK to parse) and checks
the answers. One subprocess serves every test.
"""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.support.requirements import sdk_python
from wellguard.core.gateway import (
    ClaimedIdentity,
    MethodResponse,
    SubscriptionKind,
    Telemetry,
    TopicDeniedError,
    TwinGet,
    TwinReportedPatch,
    c2d_topic,
    classify_publish,
    classify_subscribe,
    desired_patch_topic,
    encode_property_bag,
    method_request_topic,
    parse_connect_identity,
    twin_response_topic,
)
from wellguard.model.message import SECURITY_INTERFACE_ID

pytestmark = pytest.mark.sdk

PROBE = Path(__file__).with_name("sdk_dialect_probe.py")
HOST = "hub.local"
HOSTS = (HOST, f"{HOST}:8883")
DEVICE = "well-01"
MODULE = "agent"
ODD_DEVICE = "a:b@c$d'e(f)g!h*i?j,k=l%m_n.o-p"  # every character IoT Hub allows in an id
ODD_MODULE = "?m=o%d"
MODEL_ID = "dtmi:com:example:Thermostat;1"
TWIN_RIDS = [str(uuid.UUID(int=0xA1)), str(uuid.UUID(int=0xB2))]
METHOD_RID = "7f & =/?x+ü"
METHOD_NAME = "reboot now/ü?&=+%"
METHOD_REQUEST_RID = "1a/b?c&d=e"

CONNECTS = [
    (DEVICE, None, ""),
    (DEVICE, MODULE, ""),
    (ODD_DEVICE, None, "product x/1.0 (ü;&=)"),
    (DEVICE, None, MODEL_ID),
    (ODD_DEVICE, ODD_MODULE, MODEL_ID),
]

_SDK_ATTRS = {
    "message_id": "messageId",
    "correlation_id": "correlationId",
    "user_id": "userId",
    "content_type": "contentType",
    "content_encoding": "contentEncoding",
    "expiry_time_utc": "expiryTimeUtc",
}
_ALPHABET = "aZ09 -_.~!*'()&=%+/?#$;:,@[]ü€中\u00e9\U0001f600\t"


def _random_text(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(low, high)))


def _random_properties(rng: random.Random) -> dict[str, str]:
    props: dict[str, str] = {}
    for _ in range(rng.randint(0, 8)):
        key = _random_text(rng, 1, 12)
        if not key.startswith(("$", "iothub-")):
            props[key] = _random_text(rng, 0, 20)
    return props


def _message_specs() -> list[dict[str, Any]]:
    fixed: list[dict[str, Any]] = [
        {},
        {"message_id": "m 1", "content_type": "application/json", "content_encoding": "utf-8"},
        {
            "message_id": "id&=/?%+ü",
            "correlation_id": "corr 7",
            "user_id": "user@x",
            "content_type": "text/plain; charset=utf-8",
            "content_encoding": "utf-8",
            "expiry_time_utc": "2030-01-02T03:04:05+00:00",
            "custom": {"a b": "c d", "ü&=": "x=y&z", "plus+": "1+1", "empty": "", "slash/": "/"},
        },
        {"custom": {"only": "custom"}},
        {"message_id": "sec-1", "security": True, "custom": {"k": "v"}},
    ]
    rng = random.Random(20240607)
    randomised = [
        {
            "message_id": _random_text(rng, 1, 10),
            "content_type": _random_text(rng, 1, 10),
            "custom": _random_properties(rng),
        }
        for _ in range(60)
    ]
    return fixed + randomised


SPECS = _message_specs()
C2D_CASES: list[tuple[dict[str, str], dict[str, str]]] = [
    ({}, {}),
    (
        {
            "messageId": "m 1&=/?",
            "correlationId": "c/1",
            "userId": "u",
            "to": f"/devices/{DEVICE}/messages/deviceBound",
            "contentType": "application/json",
            "contentEncoding": "utf-8",
            "expiryTimeUtc": "2030-01-01T00:00:00Z",
        },
        {"a b": "c d", "ü&=": "x=y&z", "plus+": "1+1", "iothub-ack": "full", "e": ""},
    ),
    *(({"messageId": f"r{i}"}, _random_properties(random.Random(i))) for i in range(30)),
]


def _device(device_id: str = DEVICE) -> ClaimedIdentity:
    return ClaimedIdentity(device_id, None, "2019-10-01", HOST)


def _module() -> ClaimedIdentity:
    return ClaimedIdentity(DEVICE, MODULE, "2019-10-01", HOST)


def _telemetry_args() -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(DEVICE, None, spec) for spec in SPECS] + [(ODD_DEVICE, MODULE, SPECS[2])]


@cache
def _probe() -> dict[str, Any]:
    args = {
        "host": HOST,
        "device": DEVICE,
        "module": MODULE,
        "twin_rids": TWIN_RIDS,
        "method_rid": METHOD_RID,
        "method_status": 201,
        "connect": CONNECTS,
        "telemetry": _telemetry_args(),
        "c2d": [(DEVICE, c2d_topic(_device(), system, app)) for system, app in C2D_CASES],
        "twin_get_response": twin_response_topic(200, TWIN_RIDS[0]),
        "twin_patch_response": twin_response_topic(204, TWIN_RIDS[1], 7),
        "method_request": method_request_topic(METHOD_NAME, METHOD_REQUEST_RID),
        "desired_patch": desired_patch_topic(7),
    }
    done = subprocess.run(
        [sdk_python(), str(PROBE), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(("index", "case"), list(enumerate(CONNECTS)))
def test_sdk_connect_fields_parse(index: int, case: tuple[str, str | None, str]) -> None:
    device_id, module_id, product_info = case
    fields = _probe()["connect"][index]
    identity = parse_connect_identity(fields["client_id"], fields["username"], HOSTS)
    assert (identity.device_id, identity.module_id, identity.hostname) == (
        device_id,
        module_id,
        HOST,
    )
    assert identity.key == fields["client_id"]
    assert identity.client_type is not None
    assert identity.client_type.startswith("azure-iot-device-iothub-py/2.14.0(")
    if product_info.startswith("dtmi"):
        assert (identity.api_version, identity.model_id) == ("2020-09-30", MODEL_ID)
        assert identity.client_type.endswith(")")
    else:
        assert (identity.api_version, identity.model_id) == ("2019-10-01", None)
        assert identity.client_type.endswith(product_info)


def test_sdk_username_shape() -> None:
    # Ids and host travel unencoded, the query fully encoded, "/?" before the query.
    fields = _probe()["connect"][4]
    assert fields["client_id"] == f"{ODD_DEVICE}/{ODD_MODULE}"
    assert fields["username"].startswith(f"{HOST}/{ODD_DEVICE}/{ODD_MODULE}/?api-version=")
    assert fields["username"].endswith("&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1")


@pytest.mark.parametrize(("index", "spec"), list(enumerate(SPECS)))
def test_sdk_telemetry_topic_parses_and_matches_our_encoding(
    index: int, spec: dict[str, Any]
) -> None:
    topic = _probe()["telemetry"][index]
    system = {_SDK_ATTRS[k]: v for k, v in spec.items() if k in _SDK_ATTRS}
    if spec.get("security"):
        system["interfaceId"] = SECURITY_INTERFACE_ID
    app = spec.get("custom", {})
    assert classify_publish(topic, _device()) == Telemetry(system, app)
    assert topic == f"devices/{DEVICE}/messages/events/" + encode_property_bag(system, app)


def test_sdk_module_telemetry_topic() -> None:
    topic = _probe()["telemetry"][-1]
    module = ClaimedIdentity(ODD_DEVICE, MODULE, None, HOST)
    assert topic.startswith(f"devices/{ODD_DEVICE}/modules/{MODULE}/messages/events/%24.mid=")
    action = classify_publish(topic, module)
    assert isinstance(action, Telemetry)
    assert action.app == SPECS[2]["custom"]
    with pytest.raises(TopicDeniedError):
        classify_publish(topic, _device(ODD_DEVICE))


@pytest.mark.parametrize(("index", "case"), list(enumerate(C2D_CASES)))
def test_our_c2d_topic_parses_in_sdk(
    index: int, case: tuple[dict[str, str], dict[str, str]]
) -> None:
    system, app = case
    parsed = _probe()["c2d"][index]
    for attr, name in _SDK_ATTRS.items():
        assert parsed[attr] == system.get(name), attr
    assert parsed["ack"] == app.get("iothub-ack")
    assert parsed["custom"] == {k: v for k, v in app.items() if k != "iothub-ack"}


def test_sdk_twin_and_method_topics() -> None:
    out = _probe()["twin_and_methods"]
    assert out["twin_get"] == f"$iothub/twin/GET/?$rid={TWIN_RIDS[0]}"
    assert out["twin_patch"] == f"$iothub/twin/PATCH/properties/reported/?$rid={TWIN_RIDS[1]}"
    assert classify_publish(out["twin_get"], _device()) == TwinGet(TWIN_RIDS[0])
    assert classify_publish(out["twin_patch"], _module()) == TwinReportedPatch(TWIN_RIDS[1])
    assert classify_publish(out["method_response"], _device()) == MethodResponse(201, METHOD_RID)


def test_sdk_accepts_our_twin_responses() -> None:
    completions = _probe()["twin_and_methods"]["completions"]
    assert completions == [
        {"error": None, "twin": {"desired": {}, "reported": {}}},
        {"error": None, "twin": None},
    ]


def test_sdk_parses_our_method_request_and_desired_patch() -> None:
    out = _probe()["twin_and_methods"]
    assert out["method_request"] == {
        "name": METHOD_NAME,
        "rid": METHOD_REQUEST_RID,
        "payload": {"x": 1},
    }
    assert out["desired_patch"] == {
        "type": "TwinDesiredPropertiesPatchEvent",
        "patch": {"t": 5, "$version": 7},
    }


def test_sdk_subscriptions() -> None:
    subscribe = _probe()["subscribe"]
    assert [classify_subscribe(f, _device()) for f in subscribe["device"]] == [
        SubscriptionKind.C2D,
        SubscriptionKind.METHODS,
        SubscriptionKind.TWIN_RESPONSES,
        SubscriptionKind.TWIN_DESIRED,
    ]
    inputs, *rest = subscribe["module"]
    assert inputs == f"devices/{DEVICE}/modules/{MODULE}/inputs/#"
    with pytest.raises(TopicDeniedError):
        classify_subscribe(inputs, _module())
    assert [classify_subscribe(f, _module()) for f in rest] == [
        SubscriptionKind.METHODS,
        SubscriptionKind.TWIN_RESPONSES,
        SubscriptionKind.TWIN_DESIRED,
    ]

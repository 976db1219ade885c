"""Resolvers: twin documents and message routing's view of a message."""

from __future__ import annotations

from typing import Any

import pytest

from wellguard.core.iotquery import (
    UNDEFINED,
    UntypedString,
    document_resolver,
    evaluate_condition,
    message_resolver,
    parse_condition,
)
from wellguard.model.message import SystemProperty


def test_document_resolver_walks_objects_and_arrays_case_sensitively() -> None:
    resolve = document_resolver(
        {"tags": {"site": "permian", "zones": [{"id": "a"}, {"id": "b"}]}, "n": None}
    )
    assert resolve(("tags", "site")) == "permian"
    assert resolve(("tags", "zones", "1", "id")) == "b"
    assert resolve(("n",)) is None
    for missing in [
        ("tags", "Site"),
        ("tags", "zones", "2"),
        ("tags", "zones", "-1"),
        ("tags", "zones", "x"),
        ("tags", "site", "0"),  # strings are not indexable
        ("n", "x"),
        ("nothing",),
    ]:
        assert resolve(missing) is UNDEFINED, missing


def routed(
    condition: str,
    *,
    app: dict[str, str] | None = None,
    system: dict[str, str] | None = None,
    body: Any = None,
    twin: dict[str, Any] | None = None,
) -> bool:
    resolve = message_resolver(
        app_properties=app or {}, system_properties=system or {}, body=body, twin=twin
    )
    return evaluate_condition(parse_condition(condition), resolve)


BODY = {"pressure": 612.5, "alarm": {"code": 7}, "readings": [1, 2]}
SYSTEM = {
    "iothub-connection-device-id": "well-01",
    "iothub-connection-module-id": "modbus",
    "contentType": "application/json",
    "content-encoding": "utf-8",
    "iothub-enqueuedtime": "2024-05-01T10:00:00Z",
    "message-id": "m-1",
    "dt-dataschema": "dtmi:wellguard:pump;1",
}
APP = {"site": "permian", "temperature": "72", "level": "high", "a.b": "dotted"}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("$body.pressure > 500 AND site = 'permian'", True),
        ("$body.pressure > 700 OR site = 'bakken'", False),
        ("IS_DEFINED($body.alarm)", True),
        ("$body.alarm.code = 7", True),
        ("$body.readings[1] = 2", True),
        ("IS_DEFINED($body.missing)", False),
        ("IS_OBJECT($body)", True),
        ("$connectionDeviceId = 'well-01'", True),
        ("$CONNECTIONDEVICEID = 'well-01'", True),
        ("$connectionModuleId = 'modbus'", True),
        ("$contentType = 'application/json' AND $contentEncoding = 'utf-8'", True),
        ("$iothub-enqueuedtime > '2024-01-01'", True),
        ("$messageId = 'm-1'", True),
        ("STARTSWITH($dt-dataschema, 'dtmi:wellguard')", True),
        ("IS_DEFINED($correlationId)", False),
        ("IS_DEFINED($connectionDeviceId.x)", False),
        ("temperature > 50", True),  # application properties read as numbers for numbers
        ("temperature = '72'", True),
        ("temperature > 100", False),
        ("level > 5", False),  # 'high' is not a number: undefined, no match
        ("NOT level > 5", False),
        ("a.b = 'dotted'", True),
        ("Site = 'permian'", False),  # application property names are case-sensitive
        ("IS_DEFINED(site) AND IS_STRING(site)", True),
    ],
)
def test_routing_conditions(condition: str, expected: bool) -> None:
    assert routed(condition, app=APP, system=SYSTEM, body=BODY) is expected


@pytest.mark.parametrize("body", [None, "text", b"{}", [1, 2], 42])
def test_body_is_undefined_unless_it_is_a_json_object(body: Any) -> None:
    assert not routed("IS_DEFINED($body)", body=body)
    assert not routed("IS_DEFINED($body.x)", body=body)


def test_twin_in_routing() -> None:
    twin = {"tags": {"site": "permian"}, "properties": {"reported": {"fw": "1.0.7"}}}
    assert routed(
        "$twin.tags.site = 'permian' AND $twin.properties.reported.fw = '1.0.7'", twin=twin
    )
    assert not routed("IS_DEFINED($twin.tags)")


def test_message_properties_are_untyped_strings() -> None:
    resolve = message_resolver(
        app_properties={"x": "1"}, system_properties={"$UserId": "u"}, body=None
    )
    assert isinstance(resolve(("x",)), UntypedString)
    assert resolve(("$userId",)) == "u"
    assert resolve(("y",)) is UNDEFINED


@pytest.mark.parametrize("prop", list(SystemProperty))
def test_every_model_system_property_is_reachable_by_its_routing_name(
    prop: SystemProperty,
) -> None:
    resolve = message_resolver(app_properties={}, system_properties={prop: "v"}, body=None)
    assert resolve((f"${prop.value}",)) == "v"
    assert resolve((f"${prop.value.upper()}",)) == "v"

from __future__ import annotations

import pytest

from wellguard.core.mqtt import topic_matches, validate_topic_filter, validate_topic_name
from wellguard.errors import ProtocolError


@pytest.mark.parametrize(
    "name",
    [
        "devices/well-01/messages/events/a=1",
        "$iothub/twin/PATCH/properties/reported/?$rid=1",
        "/",
        "a//b",
        "ünïcödé/トピック",
        "x" * 65_535,
    ],
)
def test_valid_topic_names(name: str) -> None:
    validate_topic_name(name)


@pytest.mark.parametrize(
    "name", ["", "a/+", "a/#", "+", "#", "a+b", "a\x00b", "x" * 65_536, "é" * 32_768]
)
def test_invalid_topic_names(name: str) -> None:
    with pytest.raises(ProtocolError, match=r"^(invalid_topic_name|string_too_long):"):
        validate_topic_name(name)


@pytest.mark.parametrize(
    "topic_filter",
    ["#", "+", "a/#", "a/+/b", "+/+", "/+", "a//#", "$iothub/methods/POST/#", "sport/+/#"],
)
def test_valid_topic_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    "topic_filter",
    ["", "a/#/b", "a#", "#/a", "a/b#", "a+", "+a/b", "a/+b", "a\x00", "x" * 65_536],
)
def test_invalid_topic_filters(topic_filter: str) -> None:
    with pytest.raises(ProtocolError, match=r"^(invalid_topic_filter|string_too_long):"):
        validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    ("topic_filter", "name", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("sport/tennis/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/#", "sport/tennis", True),
        ("sport/#", "sport", True),
        ("#", "anything/at/all", True),
        ("sport/+", "sport/tennis", True),
        ("sport/+", "sport/tennis/x", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("+/tennis/#", "sport/tennis/x", True),
        ("a/+/c", "a/b/d", False),
        ("#", "$SYS/broker", False),
        ("+/monitor", "$SYS/monitor", False),
        ("$SYS/#", "$SYS/broker", True),
        ("$iothub/methods/POST/#", "$iothub/methods/POST/reboot/?$rid=1", True),
        ("devices/d1/messages/devicebound/#", "devices/d1/messages/devicebound/%24.to=x", True),
        ("devices/d1/messages/devicebound/#", "devices/d2/messages/devicebound/x", False),
    ],
)
def test_topic_matches(topic_filter: str, name: str, expected: bool) -> None:
    assert topic_matches(topic_filter, name) is expected

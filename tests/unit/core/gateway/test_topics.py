"""classify_publish / classify_subscribe and the outbound topic builders."""

from __future__ import annotations

import contextlib
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellguard.core.gateway import (
    MAX_C2D_BYTES,
    MAX_D2C_BYTES,
    MAX_QUEUED_C2D,
    MAX_RID_CHARS,
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
    method_request_topic,
    twin_response_topic,
)
from wellguard.errors import AuthError, AuthFailureReason, InvalidInputError
from wellguard.model.message import SystemProperty as S

DEVICE = ClaimedIdentity("well-01", None, "2019-10-01", "hub.local")
MODULE = ClaimedIdentity("well-01", "agent", "2019-10-01", "hub.local")
OTHER = ClaimedIdentity("well-02", None, "2019-10-01", "hub.local")


def test_limits_match_iot_hub() -> None:
    assert (MAX_D2C_BYTES, MAX_C2D_BYTES, MAX_QUEUED_C2D) == (262144, 65536, 50)


@pytest.mark.parametrize(
    ("topic", "identity", "expected"),
    [
        ("devices/well-01/messages/events/", DEVICE, Telemetry()),
        ("devices/well-01/messages/events", DEVICE, Telemetry()),
        (
            "devices/well-01/messages/events/%24.mid=1&a=b",
            DEVICE,
            Telemetry({S.MESSAGE_ID: "1"}, {"a": "b"}),
        ),
        ("devices/well-01/modules/agent/messages/events/x=1", MODULE, Telemetry({}, {"x": "1"})),
        ("$iothub/twin/GET/?$rid=1", DEVICE, TwinGet("1")),
        ("$iothub/twin/GET/?$rid=a%20b%26c", MODULE, TwinGet("a b&c")),
        ("$iothub/twin/PATCH/properties/reported/?$rid=7", DEVICE, TwinReportedPatch("7")),
        (
            "$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3",
            DEVICE,
            TwinReportedPatch("7"),
        ),
        ("$iothub/methods/res/200/?$rid=9", DEVICE, MethodResponse(200, "9")),
        ("$iothub/methods/res/-1/?$rid=9", MODULE, MethodResponse(-1, "9")),
        ("$iothub/methods/res/%35%30%30/?$rid=9", DEVICE, MethodResponse(500, "9")),
    ],
)
def test_publish_actions(topic: str, identity: ClaimedIdentity, expected: object) -> None:
    assert classify_publish(topic, identity) == expected


@pytest.mark.parametrize(
    ("topic", "identity"),
    [
        ("devices/well-02/messages/events/", DEVICE),
        ("devices/well-01/messages/events/", OTHER),
        ("devices/well-01/messages/events/", MODULE),
        ("devices/well-01/modules/agent/messages/events/", DEVICE),
        ("devices/well-01/modules/other/messages/events/", MODULE),
        ("devices/well-01/messages/eventsX", DEVICE),
        ("devices/well-01/messages/devicebound/", DEVICE),
        ("devices/WELL-01/messages/events/", DEVICE),
        ("devices/well-01/modules/agent/inputs/x", MODULE),
        ("$iothub/twin/GET", DEVICE),
        ("$iothub/twin/PATCH/properties/desired/?$version=1", DEVICE),
        ("$iothub/twin/res/200/?$rid=1", DEVICE),
        ("$iothub/methods/POST/x/?$rid=1", DEVICE),
        ("$iothub/methods/res/200", DEVICE),
        ("#", DEVICE),
        ("", DEVICE),
        ("$SYS/broker", DEVICE),
    ],
)
def test_publish_denied(topic: str, identity: ClaimedIdentity) -> None:
    with pytest.raises(TopicDeniedError) as caught:
        classify_publish(topic, identity)
    assert isinstance(caught.value, AuthError)
    assert caught.value.reason is AuthFailureReason.TOPIC_NOT_ALLOWED
    assert str(caught.value.reason) == "topic_not_allowed"
    assert caught.value.topic == topic
    assert caught.value.identity == identity.key


@pytest.mark.parametrize(
    "topic",
    [
        "$iothub/twin/GET/?",
        "$iothub/twin/GET/?rid=1",
        "$iothub/twin/GET/?$rid=",
        "$iothub/twin/GET/?$rid=" + "r" * (MAX_RID_CHARS + 1),
        "$iothub/twin/GET/?$rid=1&$rid=2",
        "$iothub/twin/GET/?$rid=%FF",
        "$iothub/twin/PATCH/properties/reported/?$rid=%00",
        "$iothub/methods/res/ok/?$rid=1",
        "$iothub/methods/res/2147483648/?$rid=1",
        "$iothub/methods/res//?$rid=1",
        "$iothub/methods/res/\u0662\u0660\u0660/?$rid=1",  # non-ASCII digits
        "$iothub/methods/res/200/?",
        "devices/well-01/messages/events/a=1&a=2",
    ],
)
def test_publish_malformed(topic: str) -> None:
    with pytest.raises(InvalidInputError):
        classify_publish(topic, DEVICE)


@pytest.mark.parametrize(
    ("topic_filter", "identity", "kind"),
    [
        ("devices/well-01/messages/devicebound/#", DEVICE, SubscriptionKind.C2D),
        ("devices/+/messages/devicebound/#", DEVICE, SubscriptionKind.C2D),
        ("$iothub/twin/res/#", DEVICE, SubscriptionKind.TWIN_RESPONSES),
        ("$iothub/twin/res/#", MODULE, SubscriptionKind.TWIN_RESPONSES),
        ("$iothub/twin/PATCH/properties/desired/#", MODULE, SubscriptionKind.TWIN_DESIRED),
        ("$iothub/methods/POST/#", MODULE, SubscriptionKind.METHODS),
    ],
)
def test_subscriptions(
    topic_filter: str, identity: ClaimedIdentity, kind: SubscriptionKind
) -> None:
    assert classify_subscribe(topic_filter, identity) is kind


@pytest.mark.parametrize(
    ("topic_filter", "identity"),
    [
        ("devices/well-02/messages/devicebound/#", DEVICE),
        ("devices/well-01/messages/devicebound/#", MODULE),
        ("devices/+/messages/devicebound/#", MODULE),
        ("devices/well-01/modules/agent/messages/devicebound/#", MODULE),
        ("devices/well-01/modules/agent/inputs/#", MODULE),
        ("devices/#", DEVICE),
        ("#", DEVICE),
        ("+/+/+", DEVICE),
        ("$iothub/#", DEVICE),
        ("$iothub/twin/#", DEVICE),
        ("$iothub/twin/res/+", DEVICE),
        ("$iothub/methods/res/#", DEVICE),
    ],
)
def test_subscriptions_denied(topic_filter: str, identity: ClaimedIdentity) -> None:
    with pytest.raises(TopicDeniedError):
        classify_subscribe(topic_filter, identity)


def test_builders() -> None:
    assert c2d_topic(DEVICE, {}, {}) == "devices/well-01/messages/devicebound/"
    assert (
        c2d_topic(DEVICE, {S.MESSAGE_ID: "m", S.TO: "/devices/well-01"}, {"k": "v w"})
        == "devices/well-01/messages/devicebound/%24.mid=m&%24.to=%2Fdevices%2Fwell-01&k=v%20w"
    )
    assert twin_response_topic(200, "1") == "$iothub/twin/res/200/?$rid=1"
    assert twin_response_topic(204, "a b", 12) == "$iothub/twin/res/204/?$rid=a%20b&$version=12"
    assert desired_patch_topic(0) == "$iothub/twin/PATCH/properties/desired/?$version=0"
    assert method_request_topic("reboot", "1f") == "$iothub/methods/POST/reboot/?$rid=1f"
    assert method_request_topic("a/b?c", "x&y") == "$iothub/methods/POST/a%2Fb%3Fc/?$rid=x%26y"


@pytest.mark.parametrize(
    "build",
    [
        lambda: c2d_topic(MODULE, {}, {}),
        lambda: twin_response_topic(99, "1"),
        lambda: twin_response_topic(600, "1"),
        lambda: twin_response_topic(200, ""),
        lambda: twin_response_topic(200, "r" * (MAX_RID_CHARS + 1)),
        lambda: twin_response_topic(204, "1", -1),
        lambda: desired_patch_topic(-1),
        lambda: desired_patch_topic(True),
        lambda: method_request_topic("", "1"),
        lambda: method_request_topic("m" * 129, "1"),
        lambda: method_request_topic("m", ""),
        lambda: method_request_topic("m\x00", "1"),
    ],
)
def test_builder_refusals(build: object) -> None:
    assert callable(build)
    with pytest.raises(InvalidInputError):
        build()


_RIDS = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=MAX_RID_CHARS
)


@given(_RIDS, st.integers(-(2**31), 2**31 - 1))
def test_rid_and_status_round_trip(rid: str, status: int) -> None:
    encoded = quote(rid, safe="")
    assert classify_publish(f"$iothub/twin/GET/?$rid={encoded}", MODULE) == TwinGet(rid)
    topic = f"$iothub/methods/res/{status}/?$rid={encoded}"
    assert classify_publish(topic, DEVICE) == MethodResponse(status, rid)
    assert twin_response_topic(200, rid) == f"$iothub/twin/res/200/?$rid={encoded}"


_PREFIXES = st.sampled_from(
    [
        "",
        "devices/well-01/messages/events/",
        "devices/well-01/modules/agent/messages/events/",
        "devices/well-01/messages/devicebound/",
        "$iothub/twin/GET/?",
        "$iothub/twin/PATCH/properties/reported/?",
        "$iothub/methods/res/",
        "$iothub/",
    ]
)


@given(_PREFIXES, st.text(max_size=200), st.sampled_from([DEVICE, MODULE, OTHER]))
def test_arbitrary_topics_raise_only_dialect_errors(
    prefix: str, rest: str, identity: ClaimedIdentity
) -> None:
    for text in (prefix + rest, rest):
        with contextlib.suppress(TopicDeniedError, InvalidInputError):
            classify_publish(text, identity)
        with contextlib.suppress(TopicDeniedError):
            classify_subscribe(text, identity)

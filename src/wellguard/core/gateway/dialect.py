"""Azure IoT Hub's MQTT device dialect: who a CONNECT claims to be, what a topic means.

Theory of operation
-------------------
IoT Hub speaks plain MQTT 3.1.1 but gives topics and the CONNECT fields fixed meanings.
The gateway feeds each piece through this module before acting on it:

* CONNECT: ``parse_connect_identity`` reads the client id (``deviceId`` or
  ``deviceId/moduleId``) and the username ``{host}/{clientId}/?{query}`` and returns a
  ``ClaimedIdentity`` — a claim only; the credential is checked elsewhere. The SDKs never
  url-encode the host or the ids in the username but do encode every query key and value
  (``api-version``, ``DeviceClientType``, ``model-id``). Any disagreement is an
  ``AuthError`` with a precise reason for the security log.
* PUBLISH: ``classify_publish`` maps a topic to a ``PublishAction`` (telemetry with its
  property bag, twin GET, reported-properties PATCH, method response) or raises
  ``TopicDeniedError`` when the topic is not one this identity may publish to; a topic of
  the right shape with a bad part (``$rid``, status, property bag) is ``InvalidInputError``.
* SUBSCRIBE: ``classify_subscribe`` accepts exactly the filters the SDKs use (plus the
  embedded C SDK's ``devices/+/messages/devicebound/#``); modules have no C2D queue in IoT
  Hub, so their C2D filter is denied, as are IoT Edge ``inputs`` filters.
* Outbound: the ``*_topic`` builders produce C2D, twin-response, desired-patch and
  method-request topics byte for byte as IoT Hub sends them; ``$rid`` values and method
  names are percent-encoded, ids never are (the SDK does not decode them).

``TopicDeniedError`` is an ``AuthError`` (reason ``topic_not_allowed``): a topic refusal is
an authorization decision and leaves the gateway as one opaque answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias
from urllib.parse import quote

from wellguard.core.gateway._property_bag import (
    MAX_APP_PROPERTIES,
    MAX_BAG_BYTES,
    MAX_PROPERTY_KEY_CHARS,
    MAX_PROPERTY_VALUE_CHARS,
    check_text,
    decode_component,
    encode_property_bag,
    parse_property_bag,
)
from wellguard.core.gateway._username import ClaimedIdentity, parse_connect_identity
from wellguard.errors import AuthError, AuthFailureReason, InvalidInputError

__all__ = [
    "MAX_APP_PROPERTIES",
    "MAX_BAG_BYTES",
    "MAX_C2D_BYTES",
    "MAX_D2C_BYTES",
    "MAX_PROPERTY_KEY_CHARS",
    "MAX_PROPERTY_VALUE_CHARS",
    "MAX_QUEUED_C2D",
    "MAX_RID_CHARS",
    "ClaimedIdentity",
    "MethodResponse",
    "PublishAction",
    "SubscriptionKind",
    "Telemetry",
    "TopicDeniedError",
    "TwinGet",
    "TwinReportedPatch",
    "c2d_topic",
    "classify_publish",
    "classify_subscribe",
    "desired_patch_topic",
    "encode_property_bag",
    "method_request_topic",
    "parse_connect_identity",
    "parse_property_bag",
    "twin_response_topic",
]

MAX_D2C_BYTES = 256 * 1024  # IoT Hub's device-to-cloud message size limit
MAX_C2D_BYTES = 64 * 1024  # IoT Hub's cloud-to-device message size limit
MAX_QUEUED_C2D = 50  # IoT Hub's per-device cloud-to-device queue depth
MAX_RID_CHARS = 128
_MAX_METHOD_NAME_CHARS = 128

_TWIN_GET = "$iothub/twin/GET/?"
_TWIN_REPORTED = "$iothub/twin/PATCH/properties/reported/?"
_METHOD_RESPONSE = "$iothub/methods/res/"
_STATUS = re.compile(r"-?[0-9]{1,10}")
_INT32 = range(-(2**31), 2**31)


class TopicDeniedError(AuthError):
    """The identity may not use this topic; ``topic`` keeps its first 1024 characters."""

    def __init__(self, topic: str, identity: ClaimedIdentity, *, detail: str = "") -> None:
        super().__init__(AuthFailureReason.TOPIC_NOT_ALLOWED, identity=identity.key, detail=detail)
        self.topic = topic[:1024]  # bounded: it goes to the security log


class SubscriptionKind(StrEnum):
    """What a granted subscription delivers."""

    C2D = "c2d"
    TWIN_RESPONSES = "twin_responses"
    TWIN_DESIRED = "twin_desired"
    METHODS = "methods"


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A device-to-cloud message: system properties by ``SystemProperty``, app properties."""

    system: dict[str, str] = field(default_factory=dict)
    app: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TwinGet:
    """A request for the full twin, answered on ``twin_response_topic`` with ``rid``."""

    rid: str


@dataclass(frozen=True, slots=True)
class TwinReportedPatch:
    """A reported-properties patch (payload is the JSON patch), answered with 204."""

    rid: str


@dataclass(frozen=True, slots=True)
class MethodResponse:
    """The device's answer to a direct method request ``rid``; payload is JSON."""

    status: int
    rid: str


PublishAction: TypeAlias = Telemetry | TwinGet | TwinReportedPatch | MethodResponse


def _query(text: str, topic: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for entry in text.split("&"):
        if not entry:
            continue
        raw_key, _, raw_value = entry.partition("=")
        key = decode_component(raw_key, "topic parameter")
        if key in params:
            raise InvalidInputError(f"duplicate {key!r} in {topic!r}", field="topic")
        params[key] = decode_component(raw_value, "topic parameter")
    return params


def _rid(params: Mapping[str, str]) -> str:
    rid = params.get("$rid")
    if rid is None:
        raise InvalidInputError("topic has no $rid", field="$rid")
    return _validate_rid(rid)


def _validate_rid(rid: str) -> str:
    if not rid:
        raise InvalidInputError("$rid is empty", field="$rid")
    check_text(rid, "$rid", MAX_RID_CHARS)
    return rid


def _telemetry_prefix(identity: ClaimedIdentity) -> str:
    if identity.module_id is None:
        return f"devices/{identity.device_id}/messages/events"
    return f"devices/{identity.device_id}/modules/{identity.module_id}/messages/events"


def classify_publish(topic: str, identity: ClaimedIdentity) -> PublishAction:
    """Say what a PUBLISH from ``identity`` means, or raise ``TopicDeniedError``."""
    if topic.startswith("devices/"):
        prefix = _telemetry_prefix(identity)
        if topic == prefix:
            return Telemetry()
        if topic.startswith(prefix + "/"):
            # Everything after "events/" is the bag; a lenient client may leave '/' unencoded.
            system, app = parse_property_bag(topic[len(prefix) + 1 :])
            return Telemetry(system, app)
        raise TopicDeniedError(topic, identity, detail="telemetry topic of another identity")
    if topic.startswith(_TWIN_GET):
        return TwinGet(_rid(_query(topic[len(_TWIN_GET) :], topic)))
    if topic.startswith(_TWIN_REPORTED):
        # Extra parameters (some clients add $version) are tolerated and ignored.
        return TwinReportedPatch(_rid(_query(topic[len(_TWIN_REPORTED) :], topic)))
    if topic.startswith(_METHOD_RESPONSE):
        status_text, sep, rest = topic[len(_METHOD_RESPONSE) :].partition("/?")
        if not sep:
            raise TopicDeniedError(topic, identity, detail="method response without /?$rid=")
        status_text = decode_component(status_text, "status")
        if not _STATUS.fullmatch(status_text) or int(status_text) not in _INT32:
            raise InvalidInputError(
                "method response status is not a 32-bit integer", field="status"
            )
        return MethodResponse(int(status_text), _rid(_query(rest, topic)))
    raise TopicDeniedError(topic, identity, detail="not a topic devices may publish to")


def classify_subscribe(topic_filter: str, identity: ClaimedIdentity) -> SubscriptionKind:
    """Say what a SUBSCRIBE filter from ``identity`` is for, or raise ``TopicDeniedError``."""
    if topic_filter == "$iothub/twin/res/#":
        return SubscriptionKind.TWIN_RESPONSES
    if topic_filter == "$iothub/twin/PATCH/properties/desired/#":
        return SubscriptionKind.TWIN_DESIRED
    if topic_filter == "$iothub/methods/POST/#":
        return SubscriptionKind.METHODS
    if identity.module_id is None and topic_filter in (
        f"devices/{identity.device_id}/messages/devicebound/#",
        "devices/+/messages/devicebound/#",  # embedded C SDK; delivery is per connection
    ):
        return SubscriptionKind.C2D
    raise TopicDeniedError(topic_filter, identity, detail="not a filter this identity may use")


def c2d_topic(identity: ClaimedIdentity, system: Mapping[str, str], app: Mapping[str, str]) -> str:
    """The topic IoT Hub delivers a cloud-to-device message on, properties encoded."""
    if identity.module_id is not None:
        raise InvalidInputError("modules have no cloud-to-device queue", field="moduleId")
    return f"devices/{identity.device_id}/messages/devicebound/" + encode_property_bag(system, app)


def twin_response_topic(status: int, rid: str, version: int | None = None) -> str:
    """``$iothub/twin/res/{status}/?$rid={rid}`` plus ``&$version=`` (204 after a patch)."""
    if not 100 <= status <= 599:
        raise InvalidInputError("twin response status must be 100-599", field="status")
    topic = f"$iothub/twin/res/{status}/?$rid={quote(_validate_rid(rid), safe='')}"
    if version is not None:
        topic += f"&$version={_version(version)}"
    return topic


def desired_patch_topic(version: int) -> str:
    """The topic a desired-properties patch is pushed on."""
    return f"$iothub/twin/PATCH/properties/desired/?$version={_version(version)}"


def method_request_topic(name: str, rid: str) -> str:
    """The topic a direct method request is delivered on."""
    if not name:
        raise InvalidInputError("method name is empty", field="methodName")
    check_text(name, "methodName", _MAX_METHOD_NAME_CHARS)
    return f"$iothub/methods/POST/{quote(name, safe='')}/?$rid={quote(_validate_rid(rid), safe='')}"


def _version(version: int) -> int:
    if isinstance(version, bool) or version < 0:
        raise InvalidInputError("twin version must be a non-negative integer", field="$version")
    return version

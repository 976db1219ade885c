"""The gateway's sans-IO decisions: IoT Hub's MQTT dialect, throttling, admission, counters.

``dialect`` says who a CONNECT claims to be and what each topic means, byte-compatible
with the Azure IoT device SDKs; ``throttle`` paces messages per device and hub-wide;
``admission`` rate-limits and bans source addresses; ``counters`` buckets per-device
activity for the security detections. Nothing here does IO or reads a clock: callers pass
``now`` (monotonic seconds) or ``now_wall`` (wall-clock seconds).
"""

from wellguard.core.gateway.admission import (
    AdmissionControl,
    AdmissionDecision,
    AdmissionRefusal,
    address_group,
)
from wellguard.core.gateway.counters import CounterName, CounterSample, DeviceCounters
from wellguard.core.gateway.dialect import (
    MAX_APP_PROPERTIES,
    MAX_BAG_BYTES,
    MAX_C2D_BYTES,
    MAX_D2C_BYTES,
    MAX_PROPERTY_KEY_CHARS,
    MAX_PROPERTY_VALUE_CHARS,
    MAX_QUEUED_C2D,
    MAX_RID_CHARS,
    ClaimedIdentity,
    MethodResponse,
    PublishAction,
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
    parse_property_bag,
    twin_response_topic,
)
from wellguard.core.gateway.throttle import (
    DEFAULT_DEVICE_BURST,
    DEFAULT_DEVICE_RATE,
    DEFAULT_HUB_BURST,
    DEFAULT_HUB_RATE,
    DeviceThrottle,
    HubThrottle,
    ThrottleDecision,
    TokenBucket,
)

__all__ = [
    "DEFAULT_DEVICE_BURST",
    "DEFAULT_DEVICE_RATE",
    "DEFAULT_HUB_BURST",
    "DEFAULT_HUB_RATE",
    "MAX_APP_PROPERTIES",
    "MAX_BAG_BYTES",
    "MAX_C2D_BYTES",
    "MAX_D2C_BYTES",
    "MAX_PROPERTY_KEY_CHARS",
    "MAX_PROPERTY_VALUE_CHARS",
    "MAX_QUEUED_C2D",
    "MAX_RID_CHARS",
    "AdmissionControl",
    "AdmissionDecision",
    "AdmissionRefusal",
    "ClaimedIdentity",
    "CounterName",
    "CounterSample",
    "DeviceCounters",
    "DeviceThrottle",
    "HubThrottle",
    "MethodResponse",
    "PublishAction",
    "SubscriptionKind",
    "Telemetry",
    "ThrottleDecision",
    "TokenBucket",
    "TopicDeniedError",
    "TwinGet",
    "TwinReportedPatch",
    "address_group",
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

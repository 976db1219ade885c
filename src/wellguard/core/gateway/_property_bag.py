"""The url-encoded property bag IoT Hub puts at the end of telemetry and C2D topics.

Theory of operation
-------------------
A bag is ``key=value`` pairs joined by ``&``, each key and value percent-encoded. The
official Python SDK encodes with ``urllib.parse.quote(safe="")`` (so ``/``, ``&``, ``=``,
``$`` and space all become ``%XX``, and ``+`` is never a space) and decodes with
``urllib.parse.unquote``; we do the same, and decode strictly as UTF-8.

System properties travel under IoT Hub's short names (``$.mid`` → messageId, ...); on
the way in they are mapped to ``SystemProperty`` values and everything else is an
application property. Keys IoT Hub reserves but wellguard does not model (other
``$``-prefixed keys such as ``$.on`` or ``$.ifname``, and ``iothub-*`` keys other than
``iothub-creation-time-utc``) are dropped, as IoT Hub ignores system properties it does
not know; a device therefore cannot smuggle a hub-stamped property in as its own.
Duplicate keys are refused rather than resolved, so no two readers can disagree on a
message's properties.

Limits (``InvalidInputError`` when exceeded): the encoded bag is at most 8 KiB, at most
64 application properties, keys at most 128 and values at most 1024 characters after
decoding, no U+0000 or lone surrogates (they cannot be stored), and keys not empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, unquote

from wellguard.errors import InvalidInputError
from wellguard.model.message import SystemProperty

__all__ = [
    "MAX_APP_PROPERTIES",
    "MAX_BAG_BYTES",
    "MAX_PROPERTY_KEY_CHARS",
    "MAX_PROPERTY_VALUE_CHARS",
    "encode_property_bag",
    "parse_property_bag",
]

MAX_BAG_BYTES = 8 * 1024
MAX_APP_PROPERTIES = 64
MAX_PROPERTY_KEY_CHARS = 128
MAX_PROPERTY_VALUE_CHARS = 1024

# Short names from the SDKs' topic encoders (Python mqtt_topic_iothub.py; $.ctime and $.sub
# from the embedded C SDK; $.schema from the PnP samples); iothub-creation-time-utc is the
# application-property spelling IoT Hub also accepts for the creation time.
_SHORT_TO_SYSTEM: dict[str, SystemProperty] = {
    "$.mid": SystemProperty.MESSAGE_ID,
    "$.cid": SystemProperty.CORRELATION_ID,
    "$.uid": SystemProperty.USER_ID,
    "$.to": SystemProperty.TO,
    "$.ct": SystemProperty.CONTENT_TYPE,
    "$.ce": SystemProperty.CONTENT_ENCODING,
    "$.exp": SystemProperty.EXPIRY_TIME,
    "$.ctime": SystemProperty.CREATION_TIME,
    "iothub-creation-time-utc": SystemProperty.CREATION_TIME,
    "$.ifid": SystemProperty.INTERFACE_ID,
    "$.schema": SystemProperty.DATA_SCHEMA,
    "$.sub": SystemProperty.COMPONENT_NAME,
}
_SYSTEM_TO_SHORT: dict[str, str] = {
    SystemProperty.MESSAGE_ID: "$.mid",
    SystemProperty.CORRELATION_ID: "$.cid",
    SystemProperty.USER_ID: "$.uid",
    SystemProperty.TO: "$.to",
    SystemProperty.CONTENT_TYPE: "$.ct",
    SystemProperty.CONTENT_ENCODING: "$.ce",
    SystemProperty.INTERFACE_ID: "$.ifid",
    SystemProperty.EXPIRY_TIME: "$.exp",
    SystemProperty.CREATION_TIME: "$.ctime",
    SystemProperty.DATA_SCHEMA: "$.schema",
    SystemProperty.COMPONENT_NAME: "$.sub",
}
# IoT Hub's own keys. Inbound, those not mapped above are dropped; outbound they pass
# (iothub-ack, IoT Hub's request for C2D feedback, is one).
_RESERVED_PREFIXES = ("$", "iothub-")


def check_text(value: str, what: str, max_chars: int) -> None:
    if len(value) > max_chars:
        raise InvalidInputError(f"{what} is longer than {max_chars} characters", field=what)
    if "\x00" in value or any("\ud800" <= char <= "\udfff" for char in value):
        raise InvalidInputError(f"{what} contains U+0000 or a lone surrogate", field=what)


def decode_component(text: str, what: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{what} is not valid percent-encoded UTF-8", field=what) from None


def _is_reserved(key: str) -> bool:
    return key.startswith(_RESERVED_PREFIXES)


def parse_property_bag(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Split a topic's property bag into (system properties by ``SystemProperty``, app)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BAG_BYTES:
        raise InvalidInputError(f"property bag exceeds {MAX_BAG_BYTES} bytes", field="properties")
    system: dict[str, str] = {}
    app: dict[str, str] = {}
    seen: set[str] = set()
    for entry in text.split("&"):
        if not entry:
            continue  # tolerate "a=1&&b=2" and a trailing '&'
        raw_key, _, raw_value = entry.partition("=")
        key = decode_component(raw_key, "property key")
        value = decode_component(raw_value, "property value")
        if not key:
            raise InvalidInputError("property key is empty", field="property key")
        check_text(key, "property key", MAX_PROPERTY_KEY_CHARS)
        check_text(value, "property value", MAX_PROPERTY_VALUE_CHARS)
        if key in seen:
            raise InvalidInputError(f"duplicate property {key!r}", field="properties")
        seen.add(key)
        system_name = _SHORT_TO_SYSTEM.get(key)
        if system_name is not None:
            if system_name in system:  # $.ctime and iothub-creation-time-utc together
                raise InvalidInputError(f"duplicate property {key!r}", field="properties")
            system[system_name.value] = value  # plain str keys: serializers want exact str
        elif not _is_reserved(key):
            app[key] = value
    if len(app) > MAX_APP_PROPERTIES:
        raise InvalidInputError(
            f"more than {MAX_APP_PROPERTIES} application properties", field="properties"
        )
    return system, app


def encode_property_bag(system: Mapping[str, str], app: Mapping[str, str]) -> str:
    """Encode properties the way IoT Hub writes them into a C2D topic (system first)."""
    unknown = [name for name in system if name not in _SYSTEM_TO_SHORT]
    if unknown:
        raise InvalidInputError(f"unknown system property {unknown[0]!r}", field="properties")
    pairs: list[tuple[str, str]] = []
    # The SDK's order ($.mid, $.cid, $.uid, $.ct, $.ce, $.ifid, $.exp) with $.to after $.uid.
    for name, short in _SYSTEM_TO_SHORT.items():
        value = system.get(name)
        if value is not None:
            check_text(value, "property value", MAX_PROPERTY_VALUE_CHARS)
            pairs.append((short, value))
    if len(app) > MAX_APP_PROPERTIES:
        raise InvalidInputError(
            f"more than {MAX_APP_PROPERTIES} application properties", field="properties"
        )
    # Sorted, as the SDK does, so the same message always yields the same topic.
    for key, value in sorted(app.items()):
        if not key:
            raise InvalidInputError("property key is empty", field="property key")
        check_text(key, "property key", MAX_PROPERTY_KEY_CHARS)
        check_text(value, "property value", MAX_PROPERTY_VALUE_CHARS)
        if key in _SHORT_TO_SYSTEM:
            raise InvalidInputError(
                f"application property {key!r} is a system property name", field="properties"
            )
        pairs.append((key, value))
    bag = "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in pairs)
    if len(bag) > MAX_BAG_BYTES:
        raise InvalidInputError(f"property bag exceeds {MAX_BAG_BYTES} bytes", field="properties")
    return bag

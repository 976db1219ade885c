"""MQTT 3.1.1 topic names, topic filters and how filters match names.

Theory of operation: a *topic name* is what a PUBLISH carries; it is at least one
character, holds no wildcard and no U+0000, and is at most 65,535 bytes of UTF-8
(spec 4.7.3). A *topic filter* is what a SUBSCRIBE or UNSUBSCRIBE carries; besides those
rules, ``#`` may only be a whole level and the last one, and ``+`` may only be a whole
level (spec 4.7.1). Levels are separated by ``/`` and may be empty.

``topic_matches`` follows spec 4.7.2: a filter whose first character is a wildcard does
not match names that begin with ``$`` (``$iothub/...``, ``$SYS/...``), so a device
subscribed to ``#`` never receives IoT Hub's reserved topics by accident. Validation
raises ``ProtocolError`` so the decoder and the packet constructors share one rule set.
"""

from __future__ import annotations

from wellguard.errors import ProtocolError

__all__ = ["topic_matches", "validate_topic_filter", "validate_topic_name"]

_MAX_STRING_BYTES = 65_535
# A str of at most this many code points cannot exceed 65,535 bytes of UTF-8 (4 bytes
# per code point at most), so the common short topic never pays for an encode().
_SURELY_SHORT = _MAX_STRING_BYTES // 4


def _check_length(text: str, what: str) -> None:
    if len(text) > _SURELY_SHORT and len(text.encode("utf-8", "surrogatepass")) > (
        _MAX_STRING_BYTES
    ):
        raise ProtocolError(f"string_too_long: {what} is longer than 65535 bytes")


def validate_topic_name(name: str) -> None:
    """Raise ``ProtocolError`` unless ``name`` is a valid MQTT 3.1.1 topic name."""
    if not name:
        raise ProtocolError("invalid_topic_name: topic name is empty")
    if "+" in name or "#" in name:
        raise ProtocolError(f"invalid_topic_name: wildcard in topic name {name!r}")
    if "\x00" in name:
        raise ProtocolError("invalid_topic_name: U+0000 in topic name")
    _check_length(name, "topic name")


def validate_topic_filter(topic_filter: str) -> None:
    """Raise ``ProtocolError`` unless ``topic_filter`` is a valid MQTT 3.1.1 topic filter."""
    if not topic_filter:
        raise ProtocolError("invalid_topic_filter: topic filter is empty")
    if "\x00" in topic_filter:
        raise ProtocolError("invalid_topic_filter: U+0000 in topic filter")
    _check_length(topic_filter, "topic filter")
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            raise ProtocolError(
                f"invalid_topic_filter: '#' must be the whole last level in {topic_filter!r}"
            )
        if "+" in level and level != "+":
            raise ProtocolError(
                f"invalid_topic_filter: '+' must be a whole level in {topic_filter!r}"
            )


def topic_matches(topic_filter: str, topic_name: str) -> bool:
    """Whether a valid ``topic_filter`` matches a valid ``topic_name`` (spec 4.7)."""
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter == topic_name
    if topic_name.startswith("$") and topic_filter[0] in "+#":
        return False
    name_levels = topic_name.split("/")
    filter_levels = topic_filter.split("/")
    count = len(name_levels)
    for index, level in enumerate(filter_levels):
        if level == "#":
            # "a/#" also matches "a": '#' includes the parent level (spec 4.7.1.2).
            return True
        if index >= count:
            return False
        if level != "+" and level != name_levels[index]:
            return False
    return len(filter_levels) == count

"""The fourteen MQTT 3.1.1 control packets as immutable values.

Theory of operation: each packet is a frozen, slotted dataclass that checks the protocol
rules about its own fields when it is built (packet identifiers 1..65535, QoS 0..2, no
DUP on QoS 0, valid topic names and filters, CONNECT flag consistency). The decoder
builds packets straight from the wire and relies on these checks instead of repeating
them, so a packet that exists is a packet that may be sent; a violation raises
``ProtocolError`` whose message starts with a short reason such as ``invalid_qos``.

Only protocol level 4 (MQTT 3.1.1, protocol name ``MQTT``) exists here: Azure IoT Hub
speaks 3.1.1 only, so a level 3 (``MQIsdp``) CONNECT is refused by the decoder with
CONNACK return code 1 rather than represented. Strings are ``str`` (the codec does the
UTF-8), binary fields (payloads, password) are ``bytes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

from wellguard.core.mqtt.topics import validate_topic_filter, validate_topic_name
from wellguard.errors import ProtocolError

__all__ = [
    "ConnAck",
    "ConnAckCode",
    "Connect",
    "Disconnect",
    "Packet",
    "PacketType",
    "PingReq",
    "PingResp",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "SubAck",
    "SubAckCode",
    "Subscribe",
    "UnsubAck",
    "Unsubscribe",
    "Will",
]

_MAX_BYTES = 65_535


class PacketType(IntEnum):
    """The control packet type in the high nibble of the first byte."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnAckCode(IntEnum):
    """CONNACK return codes of MQTT 3.1.1 (spec 3.2.2.3)."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class SubAckCode(IntEnum):
    """SUBACK return codes: the granted QoS, or failure."""

    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    FAILURE = 0x80


_SUBACK_CODES = frozenset(int(code) for code in SubAckCode)


def _check_packet_id(packet_id: int) -> None:
    if not 0 < packet_id <= 0xFFFF:
        raise ProtocolError(f"invalid_packet_id: {packet_id} is not in 1..65535")


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise ProtocolError(f"invalid_qos: {qos} is not 0, 1 or 2")


def _check_string(text: str, what: str) -> None:
    if "\x00" in text:
        raise ProtocolError(f"malformed_string: U+0000 in {what}")
    if len(text) > _MAX_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > _MAX_BYTES:
        raise ProtocolError(f"string_too_long: {what} is longer than 65535 bytes")


def _check_binary(data: bytes, what: str) -> None:
    if len(data) > _MAX_BYTES:
        raise ProtocolError(f"binary_too_long: {what} is longer than 65535 bytes")


@dataclass(frozen=True, slots=True)
class Will:
    """The message a server publishes when the client vanishes without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False

    def __post_init__(self) -> None:
        validate_topic_name(self.topic)
        _check_binary(self.payload, "will payload")
        _check_qos(self.qos)


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT: the first packet a client sends (protocol MQTT, level 4)."""

    client_id: str
    clean_session: bool = True
    keep_alive: int = 0
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None

    def __post_init__(self) -> None:
        _check_string(self.client_id, "client identifier")
        if not 0 <= self.keep_alive <= 0xFFFF:
            raise ProtocolError(f"invalid_keep_alive: {self.keep_alive} is not in 0..65535")
        if self.username is not None:
            _check_string(self.username, "user name")
        if self.password is not None:
            if self.username is None:
                # MQTT 3.1.1 3.1.2.9: the password flag needs the user name flag.
                raise ProtocolError("malformed_connect: password without user name")
            _check_binary(self.password, "password")
        if not self.client_id and not self.clean_session:
            raise ProtocolError(
                "invalid_client_id: an empty client identifier needs clean session",
                reason_code=ConnAckCode.IDENTIFIER_REJECTED,
            )


@dataclass(frozen=True, slots=True)
class ConnAck:
    """CONNACK: the server's answer to CONNECT."""

    session_present: bool
    return_code: int

    def __post_init__(self) -> None:
        if self.return_code not in ConnAckCode._value2member_map_:
            raise ProtocolError(f"invalid_return_code: CONNACK return code {self.return_code}")
        if self.return_code and self.session_present:
            raise ProtocolError("invalid_connack: session present on a refused connection")


@dataclass(frozen=True, slots=True)
class Publish:
    """PUBLISH: an application message; ``packet_id`` is set exactly when QoS > 0."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None

    def __post_init__(self) -> None:
        qos = self.qos
        if qos == 0:
            if self.packet_id is not None:
                raise ProtocolError("invalid_packet_id: QoS 0 PUBLISH has a packet identifier")
            if self.dup:
                # MQTT 3.1.1 3.3.1.1: DUP MUST be 0 for QoS 0.
                raise ProtocolError("invalid_dup: DUP set on a QoS 0 PUBLISH")
        elif qos in (1, 2):
            if self.packet_id is None:
                raise ProtocolError("invalid_packet_id: QoS > 0 PUBLISH needs a packet id")
            _check_packet_id(self.packet_id)
        else:
            raise ProtocolError(f"invalid_qos: {qos} is not 0, 1 or 2")
        validate_topic_name(self.topic)


# The decoder builds a PUBLISH per ingested message; a frozen dataclass's __init__ costs
# one object.__setattr__ per field (about 1 us in all), so the decoder fills the slots
# through their descriptors instead and checks here only what the wire format leaves
# open (the first-byte table already excludes QoS 3 and DUP on QoS 0).
_new_publish = object.__new__
_PUBLISH_SLOTS: Mapping[str, Any] = vars(Publish)
_set_topic = _PUBLISH_SLOTS["topic"].__set__
_set_payload = _PUBLISH_SLOTS["payload"].__set__
_set_qos = _PUBLISH_SLOTS["qos"].__set__
_set_retain = _PUBLISH_SLOTS["retain"].__set__
_set_dup = _PUBLISH_SLOTS["dup"].__set__
_set_packet_id = _PUBLISH_SLOTS["packet_id"].__set__


def decoded_publish(
    topic: str, payload: bytes, qos: int, retain: bool, dup: bool, packet_id: int | None
) -> Publish:
    """A ``Publish`` from wire fields whose QoS/DUP/length the decoder has checked."""
    if "+" in topic or "#" in topic or "\x00" in topic or not topic:
        validate_topic_name(topic)
    if packet_id == 0:
        raise ProtocolError("invalid_packet_id: 0 is not in 1..65535")
    packet: Publish = _new_publish(Publish)
    _set_topic(packet, topic)
    _set_payload(packet, payload)
    _set_qos(packet, qos)
    _set_retain(packet, retain)
    _set_dup(packet, dup)
    _set_packet_id(packet, packet_id)
    return packet


@dataclass(frozen=True, slots=True)
class PubAck:
    """PUBACK: acknowledges a QoS 1 PUBLISH."""

    packet_id: int

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)


@dataclass(frozen=True, slots=True)
class PubRec:
    """PUBREC: first acknowledgement of a QoS 2 PUBLISH."""

    packet_id: int

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)


@dataclass(frozen=True, slots=True)
class PubRel:
    """PUBREL: answer to PUBREC in the QoS 2 exchange."""

    packet_id: int

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)


@dataclass(frozen=True, slots=True)
class PubComp:
    """PUBCOMP: last packet of the QoS 2 exchange."""

    packet_id: int

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE: one or more (topic filter, requested QoS) pairs."""

    packet_id: int
    subscriptions: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)
        if not self.subscriptions:
            raise ProtocolError("empty_subscribe: SUBSCRIBE without a topic filter")
        for topic_filter, qos in self.subscriptions:
            validate_topic_filter(topic_filter)
            _check_qos(qos)


@dataclass(frozen=True, slots=True)
class SubAck:
    """SUBACK: one return code (granted QoS or 0x80 failure) per requested filter."""

    packet_id: int
    return_codes: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)
        if not self.return_codes:
            raise ProtocolError("empty_suback: SUBACK without a return code")
        for code in self.return_codes:
            if code not in _SUBACK_CODES:
                raise ProtocolError(f"invalid_return_code: SUBACK return code {code}")


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE: one or more topic filters to drop."""

    packet_id: int
    topic_filters: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)
        if not self.topic_filters:
            raise ProtocolError("empty_unsubscribe: UNSUBSCRIBE without a topic filter")
        for topic_filter in self.topic_filters:
            validate_topic_filter(topic_filter)


@dataclass(frozen=True, slots=True)
class UnsubAck:
    """UNSUBACK: acknowledges an UNSUBSCRIBE."""

    packet_id: int

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)


@dataclass(frozen=True, slots=True)
class PingReq:
    """PINGREQ: the client is alive."""


@dataclass(frozen=True, slots=True)
class PingResp:
    """PINGRESP: the server is alive."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT: the client leaves cleanly (the will is discarded)."""


Packet: TypeAlias = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)

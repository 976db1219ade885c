"""Packet values to MQTT 3.1.1 wire bytes (the encoding half of ``codec``).

Theory of operation: packets were validated when they were built, so encoding is pure
layout: a fixed header (type and flags, then the remaining length as a base-128 varint)
followed by the variable header and payload, assembled with one ``bytes.join``. Fixed
packets (PINGRESP, DISCONNECT, ...) are constant bytes, and the acknowledgements are one
``struct`` call, because the gateway sends a PUBACK for every QoS 1 message it ingests.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from wellguard.core.mqtt.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from wellguard.errors import ProtocolError

__all__ = ["MAX_REMAINING_LENGTH", "encode", "pack_ack"]

MAX_REMAINING_LENGTH = 268_435_455
"""The largest remaining length four varint bytes can carry (spec 2.2.3)."""

_pack_u16 = struct.Struct("!H").pack
pack_ack = struct.Struct("!BBH").pack
"""``pack_ack(first_byte, 2, packet_id)``: a PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK."""

_PINGREQ = b"\xc0\x00"
_PINGRESP = b"\xd0\x00"
_DISCONNECT = b"\xe0\x00"
_PROTOCOL = b"\x00\x04MQTT\x04"


def _fixed_header(first: int, remaining: int) -> bytes:
    if remaining < 0x80:
        return bytes((first, remaining))
    if remaining < 0x4000:
        return bytes((first, (remaining & 0x7F) | 0x80, remaining >> 7))
    if remaining > MAX_REMAINING_LENGTH:
        raise ProtocolError(f"packet_too_large: remaining length {remaining} cannot be encoded")
    out = bytearray((first,))
    while remaining >= 0x80:
        out.append((remaining & 0x7F) | 0x80)
        remaining >>= 7
    out.append(remaining)
    return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return _pack_u16(len(data)) + data


def _binary(data: bytes) -> bytes:
    return _pack_u16(len(data)) + data


def _encode_publish(packet: Publish) -> bytes:
    topic = packet.topic.encode()
    payload = packet.payload
    first = 0x30 | (packet.qos << 1)
    if packet.dup:
        first |= 0x08
    if packet.retain:
        first |= 0x01
    if packet.packet_id is None:
        variable = _pack_u16(len(topic)) + topic
    else:
        variable = _pack_u16(len(topic)) + topic + _pack_u16(packet.packet_id)
    return b"".join((_fixed_header(first, len(variable) + len(payload)), variable, payload))


def _encode_connect(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_session else 0
    parts = [_PROTOCOL, b"", _pack_u16(packet.keep_alive), _string(packet.client_id)]
    will = packet.will
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        parts += (_string(will.topic), _binary(will.payload))
    if packet.username is not None:
        flags |= 0x80
        parts.append(_string(packet.username))
    if packet.password is not None:
        flags |= 0x40
        parts.append(_binary(packet.password))
    parts[1] = bytes((flags,))
    body = b"".join(parts)
    return _fixed_header(0x10, len(body)) + body


def _encode_connack(packet: ConnAck) -> bytes:
    return bytes((0x20, 2, 1 if packet.session_present else 0, packet.return_code))


def _encode_subscribe(packet: Subscribe) -> bytes:
    parts = [_pack_u16(packet.packet_id)]
    for topic_filter, qos in packet.subscriptions:
        parts += (_string(topic_filter), bytes((qos,)))
    body = b"".join(parts)
    return _fixed_header(0x82, len(body)) + body


def _encode_suback(packet: SubAck) -> bytes:
    body = _pack_u16(packet.packet_id) + bytes(packet.return_codes)
    return _fixed_header(0x90, len(body)) + body


def _encode_unsubscribe(packet: Unsubscribe) -> bytes:
    body = _pack_u16(packet.packet_id) + b"".join(map(_string, packet.topic_filters))
    return _fixed_header(0xA2, len(body)) + body


_ENCODERS: dict[type[Any], Callable[[Any], bytes]] = {
    Publish: _encode_publish,
    PubAck: lambda packet: pack_ack(0x40, 2, packet.packet_id),
    PubRec: lambda packet: pack_ack(0x50, 2, packet.packet_id),
    PubRel: lambda packet: pack_ack(0x62, 2, packet.packet_id),
    PubComp: lambda packet: pack_ack(0x70, 2, packet.packet_id),
    Connect: _encode_connect,
    ConnAck: _encode_connack,
    Subscribe: _encode_subscribe,
    SubAck: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    UnsubAck: lambda packet: pack_ack(0xB0, 2, packet.packet_id),
    PingReq: lambda _packet: _PINGREQ,
    PingResp: lambda _packet: _PINGRESP,
    Disconnect: lambda _packet: _DISCONNECT,
}


def encode(packet: Packet) -> bytes:
    """The MQTT 3.1.1 wire bytes of ``packet``."""
    try:
        return _ENCODERS[type(packet)](packet)
    except KeyError:
        raise TypeError(f"not an MQTT packet: {packet!r}") from None
    except (UnicodeEncodeError, struct.error) as exc:
        # Only reachable with lone surrogates in a str, which UTF-8 cannot carry.
        raise ProtocolError(f"unencodable_packet: {exc}") from None

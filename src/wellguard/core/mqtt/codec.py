"""MQTT 3.1.1 codec, sans-IO: bytes in, packets out; packets in, bytes out.

Theory of operation: ``PacketDecoder.feed`` takes whatever the socket produced (a
fragment, exactly one packet, or many) and returns every packet now complete, keeping
the tail for the next call. It never raises anything but ``ProtocolError``, and after
one it is spent: the connection must be closed.

The first byte of a packet is judged as soon as it arrives, through a 256-entry table
built per direction: an entry is the parser for that exact type-and-flags byte, or
``None`` for a reserved type, wrong flag bits (PUBREL/SUBSCRIBE/UNSUBSCRIBE need 0b0010,
the rest 0), PUBLISH with QoS 3 or with DUP on QoS 0, or a packet that only the other
side sends. The remaining length is judged as soon as it is complete: longer than four
bytes, not minimally encoded, or making the packet bigger than ``max_packet_size``
(fixed header included) is refused before any of the body is buffered.

A partial packet is kept in a ``bytearray`` with the number of bytes needed before
parsing can progress, so a large packet trickling in costs linear, not quadratic, time.
Parsing slices the immutable input directly; the field rules themselves are checked by
the packet constructors (see ``packets``), which the parsers call.

CONNECT problems that have a CONNACK answer carry it as ``ProtocolError.reason_code``:
1 for protocol level 3 (``MQIsdp``) or any level but 4, 2 for an empty client id
without clean session. Everything else is answered by closing the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from wellguard.core.mqtt._encode import MAX_REMAINING_LENGTH, encode
from wellguard.core.mqtt.packets import (
    ConnAck,
    ConnAckCode,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
    decoded_publish,
)
from wellguard.errors import ProtocolError

__all__ = ["MAX_REMAINING_LENGTH", "PacketDecoder", "encode"]

_Parser = Callable[[int, bytes, int, int], Packet]

_PINGREQ: Final = PingReq()
_PINGRESP: Final = PingResp()
_DISCONNECT: Final = Disconnect()


def _malformed(what: str) -> ProtocolError:
    return ProtocolError(f"malformed_packet: {what}")


def _read_string(data: bytes, index: int, end: int, what: str) -> tuple[str, int]:
    """A length-prefixed UTF-8 string at ``index``; U+0000 is left to the constructors."""
    if end - index < 2:
        raise _malformed(f"{what} is truncated")
    stop = index + 2 + ((data[index] << 8) | data[index + 1])
    if stop > end:
        raise _malformed(f"{what} is truncated")
    try:
        # Python's UTF-8 codec refuses overlong forms and surrogates, as spec 1.5.3 asks.
        return data[index + 2 : stop].decode(), stop
    except UnicodeDecodeError:
        raise ProtocolError(f"invalid_utf8: {what} is not well-formed UTF-8") from None


def _read_binary(data: bytes, index: int, end: int, what: str) -> tuple[bytes, int]:
    if end - index < 2:
        raise _malformed(f"{what} is truncated")
    stop = index + 2 + ((data[index] << 8) | data[index + 1])
    if stop > end:
        raise _malformed(f"{what} is truncated")
    return data[index + 2 : stop], stop


def _packet_id(data: bytes, start: int, end: int) -> int:
    if end - start != 2:
        raise _malformed("acknowledgement must have remaining length 2")
    return (data[start] << 8) | data[start + 1]


def _parse_publish_qos0(first: int, data: bytes, start: int, end: int) -> Packet:
    if end - start < 2:
        raise _malformed("PUBLISH is truncated")
    stop = start + 2 + ((data[start] << 8) | data[start + 1])
    if stop > end:
        raise _malformed("PUBLISH topic is truncated")
    try:
        topic = data[start + 2 : stop].decode()
    except UnicodeDecodeError:
        raise ProtocolError("invalid_utf8: topic name is not well-formed UTF-8") from None
    return decoded_publish(topic, data[stop:end], 0, bool(first & 1), False, None)


def _parse_publish_acked(first: int, data: bytes, start: int, end: int) -> Packet:
    if end - start < 4:
        raise _malformed("PUBLISH is truncated")
    stop = start + 2 + ((data[start] << 8) | data[start + 1])
    if stop + 2 > end:
        raise _malformed("PUBLISH topic or packet identifier is truncated")
    try:
        topic = data[start + 2 : stop].decode()
    except UnicodeDecodeError:
        raise ProtocolError("invalid_utf8: topic name is not well-formed UTF-8") from None
    return decoded_publish(
        topic,
        data[stop + 2 : end],
        (first >> 1) & 3,
        bool(first & 1),
        bool(first & 8),
        (data[stop] << 8) | data[stop + 1],
    )


def _parse_connect(_first: int, data: bytes, start: int, end: int) -> Packet:
    name, index = _read_string(data, start, end, "protocol name")
    if end - index < 4:
        raise _malformed("CONNECT variable header is truncated")
    level, flags = data[index], data[index + 1]
    keep_alive = (data[index + 2] << 8) | data[index + 3]
    index += 4
    if name == "MQIsdp" or (name == "MQTT" and level != 4):
        raise ProtocolError(
            f"unsupported_protocol_version: {name} level {level}; only MQTT 3.1.1 (level 4)",
            reason_code=ConnAckCode.UNACCEPTABLE_PROTOCOL_VERSION,
        )
    if name != "MQTT":
        raise ProtocolError(f"invalid_protocol_name: {name!r}")
    if flags & 0x01:
        raise _malformed("CONNECT reserved flag is set")
    will_qos = (flags >> 3) & 3
    if not flags & 0x04 and (will_qos or flags & 0x20):
        raise _malformed("will QoS or will retain set without the will flag")
    if will_qos == 3:
        raise ProtocolError("invalid_qos: will QoS 3")
    client_id, index = _read_string(data, index, end, "client identifier")
    will = None
    if flags & 0x04:
        will_topic, index = _read_string(data, index, end, "will topic")
        will_payload, index = _read_binary(data, index, end, "will message")
        will = Will(will_topic, will_payload, will_qos, bool(flags & 0x20))
    username = password = None
    if flags & 0x80:
        username, index = _read_string(data, index, end, "user name")
    if flags & 0x40:
        if not flags & 0x80:
            raise _malformed("password flag without user name flag")
        password, index = _read_binary(data, index, end, "password")
    if index != end:
        raise _malformed("bytes after the CONNECT payload")
    return Connect(client_id, bool(flags & 0x02), keep_alive, username, password, will)


def _parse_connack(_first: int, data: bytes, start: int, end: int) -> Packet:
    if end - start != 2:
        raise _malformed("CONNACK must have remaining length 2")
    if data[start] & 0xFE:
        raise _malformed("CONNACK reserved flags are set")
    return ConnAck(bool(data[start]), data[start + 1])


def _parse_subscribe(_first: int, data: bytes, start: int, end: int) -> Packet:
    if end - start < 2:
        raise _malformed("SUBSCRIBE is truncated")
    packet_id = (data[start] << 8) | data[start + 1]
    index = start + 2
    subscriptions = []
    while index < end:
        topic_filter, index = _read_string(data, index, end, "topic filter")
        if index >= end:
            raise _malformed("requested QoS is missing")
        options = data[index]
        if options & 0xFC:
            raise _malformed("requested QoS reserved bits are set")
        subscriptions.append((topic_filter, options))
        index += 1
    return Subscribe(packet_id, tuple(subscriptions))


def _parse_suback(_first: int, data: bytes, start: int, end: int) -> Packet:
    if end - start < 2:
        raise _malformed("SUBACK is truncated")
    return SubAck((data[start] << 8) | data[start + 1], tuple(data[start + 2 : end]))


def _parse_unsubscribe(_first: int, data: bytes, start: int, end: int) -> Packet:
    if end - start < 2:
        raise _malformed("UNSUBSCRIBE is truncated")
    index = start + 2
    topic_filters = []
    while index < end:
        topic_filter, index = _read_string(data, index, end, "topic filter")
        topic_filters.append(topic_filter)
    return Unsubscribe((data[start] << 8) | data[start + 1], tuple(topic_filters))


def _empty(packet: Packet) -> _Parser:
    def parse(_first: int, _data: bytes, start: int, end: int) -> Packet:
        if end != start:
            raise _malformed("packet must have remaining length 0")
        return packet

    return parse


def _ack(kind: Callable[[int], Packet]) -> _Parser:
    def parse(_first: int, data: bytes, start: int, end: int) -> Packet:
        return kind(_packet_id(data, start, end))

    return parse


_FROM_CLIENT: dict[int, _Parser] = {
    0x10: _parse_connect,
    0x82: _parse_subscribe,
    0xA2: _parse_unsubscribe,
    0xC0: _empty(_PINGREQ),
    0xE0: _empty(_DISCONNECT),
}
_FROM_SERVER: dict[int, _Parser] = {
    0x20: _parse_connack,
    0x90: _parse_suback,
    0xB0: _ack(UnsubAck),
    0xD0: _empty(_PINGRESP),
}
_BOTH: dict[int, _Parser] = {
    0x40: _ack(PubAck),
    0x50: _ack(PubRec),
    0x62: _ack(PubRel),
    0x70: _ack(PubComp),
}
for _flags in range(16):
    _qos = (_flags >> 1) & 3
    if _qos == 0 and not _flags & 0x08:
        _BOTH[0x30 | _flags] = _parse_publish_qos0
    elif _qos in (1, 2):
        _BOTH[0x30 | _flags] = _parse_publish_acked


def _table(own: dict[int, _Parser]) -> tuple[_Parser | None, ...]:
    merged = {**_BOTH, **own}
    return tuple(merged.get(first) for first in range(256))


_SERVER_TABLE: Final = _table(_FROM_CLIENT)
_CLIENT_TABLE: Final = _table(_FROM_SERVER)
_FIXED_FLAGS: Final = {PacketType.PUBREL: 2, PacketType.SUBSCRIBE: 2, PacketType.UNSUBSCRIBE: 2}


def _first_byte_error(first: int, server_side: bool) -> ProtocolError:
    kind, flags = first >> 4, first & 0x0F
    if kind in (0, 15):
        return ProtocolError(f"invalid_packet_type: reserved packet type {kind}")
    name = PacketType(kind).name
    if kind == PacketType.PUBLISH:
        if (flags >> 1) & 3 == 3:
            return ProtocolError("invalid_qos: PUBLISH with QoS 3")
        return ProtocolError("invalid_dup: DUP set on a QoS 0 PUBLISH")
    if flags != _FIXED_FLAGS.get(PacketType(kind), 0):
        return ProtocolError(f"invalid_flags: {name} with fixed header flags {flags:#06b}")
    sender = "server" if server_side else "client"
    return ProtocolError(f"unexpected_packet: {name} is never sent by a {sender}")


class PacketDecoder:
    """Incremental MQTT 3.1.1 decoder for one direction of one connection."""

    __slots__ = ("_buffer", "_failed", "_max_packet_size", "_needed", "_server_side", "_table")

    def __init__(self, max_packet_size: int, *, server_side: bool) -> None:
        self._max_packet_size = max_packet_size
        self._server_side = server_side
        self._table = _SERVER_TABLE if server_side else _CLIENT_TABLE
        self._buffer = bytearray()
        self._needed = 0
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete packet held for the next ``feed``."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        """Every packet completed by ``data``; raises ``ProtocolError`` on a violation."""
        if self._failed:
            raise ProtocolError("decoder_failed: a previous violation ended this stream")
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._needed:
                return []
            data = bytes(buffer)
            buffer.clear()
        try:
            return self._parse(data)
        except ProtocolError:
            self._failed = True
            raise

    def _parse(self, data: bytes) -> list[Packet]:
        table = self._table
        limit = self._max_packet_size
        size = len(data)
        packets: list[Packet] = []
        pos = 0
        while pos < size:
            first = data[pos]
            parse = table[first]
            if parse is None:
                raise _first_byte_error(first, self._server_side)
            if pos + 1 == size:
                self._keep(data, pos, 2)
                return packets
            remaining = data[pos + 1]
            if remaining < 0x80:
                start = pos + 2
            elif pos + 2 < size and 0 < data[pos + 2] < 0x80:
                remaining = (remaining & 0x7F) | (data[pos + 2] << 7)
                start = pos + 3
            else:
                remaining, start = self._varint(data, pos + 1)
                if start < 0:
                    self._keep(data, pos, size - pos + 1)
                    return packets
            end = start + remaining
            if end - pos > limit:
                raise ProtocolError(
                    f"packet_too_large: {end - pos} bytes exceeds the limit of {limit}"
                )
            if end > size:
                self._keep(data, pos, end - pos)
                return packets
            packets.append(parse(first, data, start, end))
            pos = end
        return packets

    def _keep(self, data: bytes, pos: int, needed: int) -> None:
        self._buffer += memoryview(data)[pos:]
        self._needed = needed

    @staticmethod
    def _varint(data: bytes, index: int) -> tuple[int, int]:
        """(remaining length, body start), or (0, -1) when the varint is incomplete."""
        value = 0
        size = len(data)
        for position in range(4):
            if index + position >= size:
                return 0, -1
            byte = data[index + position]
            value |= (byte & 0x7F) << (7 * position)
            if byte < 0x80:
                if byte == 0 and position:
                    raise ProtocolError(
                        "malformed_remaining_length: not encoded in the fewest bytes"
                    )
                return value, index + position + 1
        raise ProtocolError("malformed_remaining_length: more than four bytes")

"""Hand-built MQTT bytes for tests, independent of the codec under test."""

from __future__ import annotations

import struct


def varint(value: int) -> bytes:
    """The MQTT remaining-length encoding of ``value``."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def frame(first: int, body: bytes) -> bytes:
    """A packet: first byte, remaining length, body."""
    return bytes((first,)) + varint(len(body)) + body


def string(data: bytes | str) -> bytes:
    """A length-prefixed string field (raw bytes allowed, to build invalid UTF-8)."""
    raw = data.encode() if isinstance(data, str) else data
    return struct.pack("!H", len(raw)) + raw


def u16(value: int) -> bytes:
    """A big-endian two-byte integer."""
    return struct.pack("!H", value)


def connect(
    *,
    name: bytes = b"MQTT",
    level: int = 4,
    flags: int = 0x02,
    keep_alive: int = 60,
    payload: bytes | None = None,
) -> bytes:
    """A CONNECT; the payload defaults to client id ``dev``."""
    if payload is None:
        payload = string("dev")
    body = string(name) + bytes((level, flags)) + u16(keep_alive) + payload
    return frame(0x10, body)


def publish(
    topic: bytes | str,
    payload: bytes = b"",
    *,
    qos: int = 0,
    packet_id: int | None = None,
    dup: bool = False,
    retain: bool = False,
) -> bytes:
    """A PUBLISH with any flags, valid or not."""
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = string(topic) + (u16(packet_id) if packet_id is not None else b"") + payload
    return frame(first, body)


def subscribe(packet_id: int, *pairs: tuple[bytes | str, int]) -> bytes:
    """A SUBSCRIBE with raw requested-QoS bytes."""
    return frame(0x82, u16(packet_id) + b"".join(string(f) + bytes((q,)) for f, q in pairs))

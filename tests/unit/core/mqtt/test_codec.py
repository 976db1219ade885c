from __future__ import annotations

import pytest

from tests.unit.core.mqtt import wire
from wellguard.core.mqtt import (
    MAX_REMAINING_LENGTH,
    ConnAck,
    ConnAckCode,
    Connect,
    Disconnect,
    Packet,
    PacketDecoder,
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
    Will,
    encode,
)
from wellguard.core.mqtt._encode import _fixed_header
from wellguard.errors import ProtocolError

FROM_CLIENT: list[Packet] = [
    Connect("well-01"),
    Connect(
        "well-01",
        clean_session=False,
        keep_alive=1767,
        username="hub.example/well-01/?api-version=2021-04-12",
        password=b"SharedAccessSignature sr=hub.example%2Fdevices%2Fwell-01&sig=x&se=1",
        will=Will("devices/well-01/messages/events/", b"gone", qos=1, retain=True),
    ),
    Connect("", keep_alive=0, username="u"),
    Connect("c", will=Will("w", b"")),
    Publish("devices/well-01/messages/events/a=1", b"\x00" * 200, qos=1, packet_id=1),
    Publish("a", b"", qos=0, retain=True),
    Publish("a/b", b"x", qos=1, dup=True, packet_id=65_535),
    Publish("q2", b"x", qos=2, packet_id=9),
    PubAck(1),
    PubRec(2),
    PubRel(3),
    PubComp(65_535),
    Subscribe(5, (("devices/well-01/messages/devicebound/#", 1), ("$iothub/twin/res/#", 0))),
    Subscribe(6, (("+/x", 2),)),
    Unsubscribe(7, ("a/+", "#")),
    PingReq(),
    Disconnect(),
]
FROM_SERVER: list[Packet] = [
    ConnAck(session_present=False, return_code=ConnAckCode.ACCEPTED),
    ConnAck(session_present=True, return_code=0),
    ConnAck(session_present=False, return_code=ConnAckCode.NOT_AUTHORIZED),
    Publish("devices/well-01/messages/devicebound/%24.mid=1", b"c2d", qos=1, packet_id=3),
    PubAck(4),
    SubAck(5, (0, 1, 2, 0x80)),
    UnsubAck(7),
    PingResp(),
]


def decode_all(data: bytes, *, server_side: bool, max_packet_size: int = 1 << 28) -> list[Packet]:
    return PacketDecoder(max_packet_size, server_side=server_side).feed(data)


def decode_bytewise(data: bytes, *, server_side: bool) -> list[Packet]:
    decoder = PacketDecoder(1 << 28, server_side=server_side)
    packets = [packet for i in range(len(data)) for packet in decoder.feed(data[i : i + 1])]
    assert decoder.buffered == 0
    return packets


@pytest.mark.parametrize("packet", FROM_CLIENT, ids=repr)
def test_client_packets_round_trip(packet: Packet) -> None:
    data = encode(packet)
    assert decode_all(data, server_side=True) == [packet]
    assert decode_bytewise(data, server_side=True) == [packet]


@pytest.mark.parametrize("packet", FROM_SERVER, ids=repr)
def test_server_packets_round_trip(packet: Packet) -> None:
    data = encode(packet)
    assert decode_all(data, server_side=False) == [packet]
    assert decode_bytewise(data, server_side=False) == [packet]


def test_many_packets_per_feed_and_any_split() -> None:
    stream = b"".join(map(encode, FROM_CLIENT)) * 3
    assert decode_all(stream, server_side=True) == FROM_CLIENT * 3
    assert decode_bytewise(stream, server_side=True) == FROM_CLIENT * 3
    for cut in range(0, len(stream), 7):
        decoder = PacketDecoder(1 << 20, server_side=True)
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == FROM_CLIENT * 3


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (PingReq(), b"\xc0\x00"),
        (PingResp(), b"\xd0\x00"),
        (Disconnect(), b"\xe0\x00"),
        (PubAck(7), b"\x40\x02\x00\x07"),
        (PubRel(0x0102), b"\x62\x02\x01\x02"),
        (UnsubAck(1), b"\xb0\x02\x00\x01"),
        (ConnAck(True, 0), b"\x20\x02\x01\x00"),
        (ConnAck(False, 5), b"\x20\x02\x00\x05"),
        (SubAck(1, (1, 0x80)), b"\x90\x04\x00\x01\x01\x80"),
        (Publish("a/b", b"hi", qos=1, packet_id=10, retain=True), b"\x33\x09\x00\x03a/b\x00\x0ahi"),
        (Publish("t", b"", qos=1, dup=True, packet_id=1), b"\x3a\x05\x00\x01t\x00\x01"),
        (Subscribe(1, (("a/#", 1),)), b"\x82\x08\x00\x01\x00\x03a/#\x01"),
        (Unsubscribe(2, ("a",)), b"\xa2\x05\x00\x02\x00\x01a"),
        (
            Connect("c", keep_alive=60, username="u", password=b"p"),
            b"\x10\x13\x00\x04MQTT\x04\xc2\x00\x3c\x00\x01c\x00\x01u\x00\x01p",
        ),
    ],
)
def test_exact_wire_bytes(packet: Packet, expected: bytes) -> None:
    assert encode(packet) == expected


@pytest.mark.parametrize("size", [5, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
def test_remaining_length_boundaries(size: int) -> None:
    packet = Publish("t", b"p" * (size - 5), qos=1, packet_id=1)
    data = encode(packet)
    assert data == wire.publish("t", b"p" * (size - 5), qos=1, packet_id=1)
    assert len(data) == 1 + len(wire.varint(size)) + size
    assert decode_all(data, server_side=True) == [packet]


def test_fixed_header_rejects_lengths_beyond_four_bytes() -> None:
    assert _fixed_header(0x30, MAX_REMAINING_LENGTH) == b"\x30\xff\xff\xff\x7f"
    with pytest.raises(ProtocolError, match=r"^packet_too_large:"):
        _fixed_header(0x30, MAX_REMAINING_LENGTH + 1)


def test_encode_rejects_non_packets_and_unencodable_text() -> None:
    with pytest.raises(TypeError):
        encode("PINGREQ")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match=r"^unencodable_packet:"):
        encode(Publish("lone\udc80surrogate", b""))

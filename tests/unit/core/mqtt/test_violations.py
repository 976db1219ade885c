"""Every MQTT 3.1.1 rule the decoder and the packet constructors enforce."""

from __future__ import annotations

import pytest

from tests.unit.core.mqtt import wire
from tests.unit.core.mqtt.wire import connect, frame, publish, string, subscribe, u16
from wellguard.core.mqtt import (
    ConnAck,
    Connect,
    PacketDecoder,
    PingReq,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
    encode,
)
from wellguard.errors import ProtocolError

CLIENT_ID = string("dev")

# (bytes a client sends to the server, reason prefix, CONNACK code to answer with)
SERVER_SIDE: list[tuple[str, bytes, str, int | None]] = [
    # Remaining length
    ("five length bytes", b"\x30\xff\xff\xff\xff\x01", "malformed_remaining_length", None),
    ("fourth byte continues", b"\x30\xff\xff\xff\x80", "malformed_remaining_length", None),
    ("non-minimal length", b"\x30\x80\x00", "malformed_remaining_length", None),
    ("non-minimal 3 bytes", b"\xc0\x80\x80\x00", "malformed_remaining_length", None),
    # Packet types, direction and fixed-header flags
    ("reserved type 0", b"\x00\x00", "invalid_packet_type", None),
    ("reserved type 15", b"\xf0\x00", "invalid_packet_type", None),
    ("CONNACK from client", encode(ConnAck(False, 0)), "unexpected_packet", None),
    ("SUBACK from client", encode(SubAck(1, (0,))), "unexpected_packet", None),
    ("UNSUBACK from client", encode(UnsubAck(1)), "unexpected_packet", None),
    ("PINGRESP from client", b"\xd0\x00", "unexpected_packet", None),
    ("PUBREL flags 0", b"\x60\x02\x00\x01", "invalid_flags", None),
    ("SUBSCRIBE flags 0", b"\x80\x06\x00\x01\x00\x01a\x00", "invalid_flags", None),
    ("UNSUBSCRIBE flags 0", b"\xa0\x05\x00\x01\x00\x01a", "invalid_flags", None),
    ("PUBACK flags 2", b"\x42\x02\x00\x01", "invalid_flags", None),
    ("PUBCOMP flags 1", b"\x71\x02\x00\x01", "invalid_flags", None),
    ("PINGREQ flags 1", b"\xc1\x00", "invalid_flags", None),
    ("DISCONNECT flags 8", b"\xe8\x00", "invalid_flags", None),
    ("CONNECT flags 2", b"\x12" + connect()[1:], "invalid_flags", None),
    ("PUBLISH QoS 3", b"\x36\x05\x00\x01t\x00\x01", "invalid_qos", None),
    ("PUBLISH DUP on QoS 0", publish("t", b"x", dup=True), "invalid_dup", None),
    # Lengths of fixed-size packets
    ("PINGREQ with a body", b"\xc0\x01\x00", "malformed_packet", None),
    ("DISCONNECT with a body", b"\xe0\x01\x00", "malformed_packet", None),
    ("PUBACK too short", b"\x40\x01\x00", "malformed_packet", None),
    ("PUBACK too long", b"\x40\x03\x00\x01\x00", "malformed_packet", None),
    # Packet identifiers
    ("PUBLISH packet id 0", publish("t", qos=1, packet_id=0), "invalid_packet_id", None),
    ("PUBACK packet id 0", b"\x40\x02\x00\x00", "invalid_packet_id", None),
    ("PUBREL packet id 0", b"\x62\x02\x00\x00", "invalid_packet_id", None),
    ("SUBSCRIBE packet id 0", subscribe(0, ("a", 0)), "invalid_packet_id", None),
    ("UNSUBSCRIBE packet id 0", frame(0xA2, u16(0) + string("a")), "invalid_packet_id", None),
    # PUBLISH layout and topic names
    ("PUBLISH empty body", b"\x30\x00", "malformed_packet", None),
    ("PUBLISH topic overruns", b"\x30\x03\x00\x05a", "malformed_packet", None),
    ("PUBLISH QoS 1 without id", b"\x32\x03\x00\x01t", "malformed_packet", None),
    ("empty topic name", publish(""), "invalid_topic_name", None),
    ("'+' in topic name", publish("a/+/b"), "invalid_topic_name", None),
    ("'#' in topic name", publish("a/#", qos=1, packet_id=1), "invalid_topic_name", None),
    ("U+0000 in topic name", publish("a\x00b"), "invalid_topic_name", None),
    ("topic not UTF-8", publish(b"\xff\xfe"), "invalid_utf8", None),
    ("topic overlong NUL", publish(b"a\xc0\x80"), "invalid_utf8", None),
    ("topic UTF-16 surrogate", publish(b"\xed\xa0\x80"), "invalid_utf8", None),
    ("topic truncated UTF-8", publish(b"\xe2\x82"), "invalid_utf8", None),
    # SUBSCRIBE / UNSUBSCRIBE
    ("SUBSCRIBE without filter", frame(0x82, u16(1)), "empty_subscribe", None),
    ("SUBSCRIBE without QoS", frame(0x82, u16(1) + string("a")), "malformed_packet", None),
    ("SUBSCRIBE truncated", b"\x82\x01\x00", "malformed_packet", None),
    ("SUBSCRIBE QoS 3", subscribe(1, ("a", 3)), "invalid_qos", None),
    ("SUBSCRIBE reserved bits", subscribe(1, ("a", 0x04)), "malformed_packet", None),
    ("filter '#' not last", subscribe(1, ("a/#/b", 0)), "invalid_topic_filter", None),
    ("filter 'a#'", subscribe(1, ("a#", 0)), "invalid_topic_filter", None),
    ("filter 'a+'", subscribe(1, ("a+/b", 0)), "invalid_topic_filter", None),
    ("empty filter", subscribe(1, ("", 0)), "invalid_topic_filter", None),
    ("filter U+0000", subscribe(1, ("a\x00", 0)), "invalid_topic_filter", None),
    ("filter not UTF-8", subscribe(1, (b"\xc3", 0)), "invalid_utf8", None),
    ("UNSUBSCRIBE without filter", frame(0xA2, u16(1)), "empty_unsubscribe", None),
    ("UNSUBSCRIBE bad filter", frame(0xA2, u16(1) + string("#/a")), "invalid_topic_filter", None),
    ("UNSUBSCRIBE truncated", b"\xa2\x03\x00\x01\x00", "malformed_packet", None),
    # CONNECT
    ("level 3 MQIsdp", connect(name=b"MQIsdp", level=3), "unsupported_protocol_version", 1),
    ("MQTT level 3", connect(level=3), "unsupported_protocol_version", 1),
    ("MQTT level 5", connect(level=5), "unsupported_protocol_version", 1),
    ("unknown protocol name", connect(name=b"MQTX"), "invalid_protocol_name", None),
    ("protocol name not UTF-8", connect(name=b"\xff"), "invalid_utf8", None),
    ("reserved flag", connect(flags=0x03), "malformed_packet", None),
    ("will QoS without will", connect(flags=0x0A), "malformed_packet", None),
    ("will retain without will", connect(flags=0x22), "malformed_packet", None),
    (
        "will QoS 3",
        connect(flags=0x1E, payload=CLIENT_ID + string("w") + string("m")),
        "invalid_qos",
        None,
    ),
    (
        "wildcard will topic",
        connect(flags=0x06, payload=CLIENT_ID + string("w/#") + string("m")),
        "invalid_topic_name",
        None,
    ),
    ("will missing", connect(flags=0x06), "malformed_packet", None),
    (
        "password without user name",
        connect(flags=0x42, payload=CLIENT_ID + string("pw")),
        "malformed_packet",
        None,
    ),
    ("user name missing", connect(flags=0x82), "malformed_packet", None),
    (
        "password missing",
        connect(flags=0xC2, payload=CLIENT_ID + string("u")),
        "malformed_packet",
        None,
    ),
    ("trailing bytes", connect(payload=CLIENT_ID + b"\x00"), "malformed_packet", None),
    ("no client id", connect(payload=b""), "malformed_packet", None),
    ("variable header short", frame(0x10, string("MQTT") + b"\x04\x02"), "malformed_packet", None),
    ("client id U+0000", connect(payload=string("a\x00")), "malformed_string", None),
    ("client id not UTF-8", connect(payload=string(b"\xff")), "invalid_utf8", None),
    (
        "user name U+0000",
        connect(flags=0x82, payload=CLIENT_ID + string("\x00")),
        "malformed_string",
        None,
    ),
    ("empty id, persistent", connect(flags=0x00, payload=string("")), "invalid_client_id", 2),
]

CLIENT_SIDE: list[tuple[str, bytes, str]] = [
    ("CONNECT from server", connect(), "unexpected_packet"),
    ("SUBSCRIBE from server", subscribe(1, ("a", 0)), "unexpected_packet"),
    ("UNSUBSCRIBE from server", frame(0xA2, u16(1) + string("a")), "unexpected_packet"),
    ("PINGREQ from server", b"\xc0\x00", "unexpected_packet"),
    ("DISCONNECT from server", b"\xe0\x00", "unexpected_packet"),
    ("CONNACK flags", b"\x21\x02\x00\x00", "invalid_flags"),
    ("CONNACK reserved bits", b"\x20\x02\x02\x00", "malformed_packet"),
    ("CONNACK code 6", b"\x20\x02\x00\x06", "invalid_return_code"),
    ("CONNACK present on refusal", b"\x20\x02\x01\x05", "invalid_connack"),
    ("CONNACK too long", b"\x20\x03\x00\x00\x00", "malformed_packet"),
    ("SUBACK code 3", b"\x90\x03\x00\x01\x03", "invalid_return_code"),
    ("SUBACK without code", b"\x90\x02\x00\x01", "empty_suback"),
    ("SUBACK truncated", b"\x90\x01\x00", "malformed_packet"),
    ("SUBACK flags", b"\x92\x03\x00\x01\x00", "invalid_flags"),
    ("UNSUBACK long", b"\xb0\x03\x00\x01\x00", "malformed_packet"),
    ("PINGRESP with body", b"\xd0\x01\x00", "malformed_packet"),
]


def _feed_all(decoder: PacketDecoder, chunks: list[bytes]) -> None:
    for chunk in chunks:
        decoder.feed(chunk)


def _assert_refused(
    data: bytes, *, server_side: bool, reason: str, code: int | None = None
) -> None:
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        decoder = PacketDecoder(1 << 20, server_side=server_side)
        with pytest.raises(ProtocolError) as caught:
            _feed_all(decoder, chunks)
        assert str(caught.value).startswith(reason + ":"), str(caught.value)
        assert caught.value.reason_code == code
        with pytest.raises(ProtocolError, match=r"^decoder_failed:"):
            decoder.feed(encode(PingReq()))


@pytest.mark.parametrize(
    ("data", "reason", "code"), [case[1:] for case in SERVER_SIDE], ids=[c[0] for c in SERVER_SIDE]
)
def test_server_side_violations(data: bytes, reason: str, code: int | None) -> None:
    _assert_refused(data, server_side=True, reason=reason, code=code)


@pytest.mark.parametrize(
    ("data", "reason"), [case[1:] for case in CLIENT_SIDE], ids=[c[0] for c in CLIENT_SIDE]
)
def test_client_side_violations(data: bytes, reason: str) -> None:
    _assert_refused(data, server_side=False, reason=reason)


def test_empty_client_id_is_allowed_with_clean_session() -> None:
    packets = PacketDecoder(1024, server_side=True).feed(connect(payload=string("")))
    assert packets == [Connect("", clean_session=True, keep_alive=60)]


def test_oversized_packet_refused_as_soon_as_its_length_is_known() -> None:
    decoder = PacketDecoder(1000, server_side=True)
    header = b"\x32" + wire.varint(2_000)
    assert decoder.feed(header[:2]) == []
    with pytest.raises(ProtocolError, match=r"^packet_too_large:"):
        decoder.feed(header[2:])  # no body byte has arrived yet


def test_packet_size_limit_counts_the_fixed_header() -> None:
    data = wire.publish("t", b"x" * 93, qos=1, packet_id=1)
    assert len(data) == 100
    assert len(PacketDecoder(100, server_side=True).feed(data)) == 1
    with pytest.raises(ProtocolError, match=r"^packet_too_large:"):
        PacketDecoder(99, server_side=True).feed(data)


def test_first_byte_judged_before_the_rest_arrives() -> None:
    with pytest.raises(ProtocolError, match=r"^invalid_flags:"):
        PacketDecoder(1024, server_side=True).feed(b"\x61")


def test_valid_packets_before_a_violation_are_not_returned() -> None:
    decoder = PacketDecoder(1024, server_side=True)
    with pytest.raises(ProtocolError):
        decoder.feed(encode(PingReq()) + b"\xf0\x00")


@pytest.mark.parametrize(
    "build",
    [
        lambda: Publish("t", b"", qos=0, packet_id=1),
        lambda: Publish("t", b"", qos=1),
        lambda: Publish("t", b"", qos=1, packet_id=0),
        lambda: Publish("t", b"", qos=1, packet_id=65_536),
        lambda: Publish("t", b"", qos=3, packet_id=1),
        lambda: Publish("t", b"", dup=True),
        lambda: Publish("a/+", b""),
        lambda: PubAck(0),
        lambda: Subscribe(1, ()),
        lambda: Subscribe(1, (("a", 3),)),
        lambda: Unsubscribe(1, ()),
        lambda: SubAck(1, ()),
        lambda: SubAck(1, (4,)),
        lambda: ConnAck(False, 6),
        lambda: ConnAck(True, 1),
        lambda: Connect("c", keep_alive=65_536),
        lambda: Connect("c", password=b"p"),
        lambda: Connect("", clean_session=False),
        lambda: Connect("c", username="u", password=b"p" * 65_536),
        lambda: Connect("c\x00"),
        lambda: Will("t", b"", qos=3),
        lambda: Will("t/#", b""),
        lambda: Will("t", b"x" * 65_536),
    ],
)
def test_constructors_refuse_invalid_packets(build: object) -> None:
    with pytest.raises(ProtocolError):
        build()  # type: ignore[operator]

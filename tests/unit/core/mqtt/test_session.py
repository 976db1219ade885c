from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.core.mqtt import wire
from wellguard.core.mqtt import (
    ConnAck,
    ConnAckCode,
    Connect,
    ConnectionState,
    Disconnect,
    PacketDecoder,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ServerConnection,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    encode,
)
from wellguard.errors import ProtocolError

TELEMETRY = "devices/well-01/messages/events/a=1"
C2D = "devices/well-01/messages/devicebound/%24.mid=1"
C2D_FILTER = "devices/well-01/messages/devicebound/#"


def sent(conn: ServerConnection) -> list[object]:
    """What the server queued, decoded as a client would."""
    return list(PacketDecoder(1 << 20, server_side=False).feed(conn.data_to_send()))


def connected(keep_alive: int = 60, now: float = 0.0) -> ServerConnection:
    conn = ServerConnection(now=now)
    [event] = conn.receive_data(encode(Connect("well-01", keep_alive=keep_alive)), now)
    assert isinstance(event, Connect)
    conn.accept()
    assert sent(conn) == [ConnAck(False, 0)]
    return conn


def test_connect_accept_publish_puback() -> None:
    conn = ServerConnection(now=0.0)
    states = [conn.state]
    connect = Connect("well-01", keep_alive=60, username="hub/well-01/?api-version=2021-04-12")
    assert conn.receive_data(encode(connect), 1.0) == [connect]
    states.append(conn.state)
    assert conn.connect == connect
    assert conn.data_to_send() == b""
    conn.accept(session_present=True)
    states.append(conn.state)
    assert states == [
        ConnectionState.AWAITING_CONNECT,
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
    ]
    assert conn.data_to_send() == b"\x20\x02\x01\x00"

    publish = Publish(TELEMETRY, b"{}", qos=1, packet_id=17)
    assert conn.receive_data(encode(publish), 2.0) == [publish]
    conn.puback(17)
    assert conn.data_to_send() == b"\x40\x02\x00\x11"


def test_packets_pipelined_behind_connect_come_in_order() -> None:
    conn = ServerConnection(now=0.0)
    subscribe = Subscribe(1, (("devices/well-01/messages/devicebound/#", 1),))
    data = encode(Connect("well-01")) + encode(subscribe) + encode(PingReq())
    events = conn.receive_data(data, 0.0)
    assert events == [Connect("well-01"), subscribe]
    assert conn.data_to_send() == b""  # the PINGRESP waits: CONNACK must come first
    conn.accept()
    conn.suback(1, [1])
    assert sent(conn) == [ConnAck(False, 0), PingResp(), SubAck(1, (1,))]


def test_ping_is_answered_internally() -> None:
    conn = connected()
    assert conn.receive_data(encode(PingReq()) * 2, 5.0) == []
    assert conn.data_to_send() == b"\xd0\x00\xd0\x00"


def test_subscribe_unsubscribe_answers() -> None:
    conn = connected()
    subscribe = Subscribe(3, (("a/#", 2), ("$iothub/twin/res/#", 0)))
    unsubscribe = Unsubscribe(4, ("a/#",))
    assert conn.receive_data(encode(subscribe) + encode(unsubscribe), 1.0) == [
        subscribe,
        unsubscribe,
    ]
    conn.suback(3, [1, 0x80])
    conn.unsuback(4)
    assert sent(conn) == [SubAck(3, (1, 0x80)), UnsubAck(4)]


def test_acknowledgements_are_concatenated_for_one_write() -> None:
    conn = connected()
    stream = b"".join(encode(Publish(TELEMETRY, b"x", qos=1, packet_id=i)) for i in (1, 2, 3))
    assert len(conn.receive_data(stream, 1.0)) == 3
    for packet_id in (1, 2, 3):
        conn.puback(packet_id)
    assert conn.data_to_send() == b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\x00\x03"
    assert conn.data_to_send() == b""


def test_refuse_queues_connack_and_closes() -> None:
    conn = ServerConnection(now=0.0)
    conn.receive_data(encode(Connect("well-01")), 0.0)
    conn.refuse(ConnAckCode.NOT_AUTHORIZED)
    assert conn.state is ConnectionState.CLOSED
    assert conn.data_to_send() == b"\x20\x02\x00\x05"
    assert conn.receive_data(encode(PingReq()), 1.0) == []
    assert conn.data_to_send() == b""
    with pytest.raises(ProtocolError, match=r"^local_state_error:"):
        conn.accept()


def test_refuse_needs_a_failure_code() -> None:
    conn = ServerConnection(now=0.0)
    conn.receive_data(encode(Connect("well-01")), 0.0)
    with pytest.raises(ProtocolError, match=r"^local_state_error:"):
        conn.refuse(0)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (wire.connect(name=b"MQIsdp", level=3), 1),
        (wire.connect(level=5), 1),
        (wire.connect(flags=0x00, payload=wire.string("")), 2),
    ],
)
def test_connect_violation_with_connack_code_queues_that_connack(data: bytes, code: int) -> None:
    conn = ServerConnection(now=0.0)
    with pytest.raises(ProtocolError) as caught:
        conn.receive_data(data, 0.0)
    assert caught.value.reason_code == code
    assert conn.state is ConnectionState.CLOSED
    assert conn.data_to_send() == bytes((0x20, 2, 0, code))


def test_malformed_connect_closes_without_connack() -> None:
    conn = ServerConnection(now=0.0)
    with pytest.raises(ProtocolError, match=r"^malformed_packet:"):
        conn.receive_data(wire.connect(flags=0x03), 0.0)
    assert conn.data_to_send() == b""
    assert conn.state is ConnectionState.CLOSED


@pytest.mark.parametrize(
    "packet",
    [PingReq(), Publish("t", b""), Subscribe(1, (("a", 0),)), Disconnect(), PubAck(1)],
    ids=repr,
)
def test_any_packet_before_connect_is_a_violation(packet: object) -> None:
    conn = ServerConnection(now=0.0)
    with pytest.raises(ProtocolError, match=r"^connect_expected:"):
        conn.receive_data(encode(packet), 0.0)  # type: ignore[arg-type]
    assert conn.state is ConnectionState.CLOSED


def test_second_connect_is_a_violation() -> None:
    conn = connected()
    with pytest.raises(ProtocolError, match=r"^duplicate_connect:"):
        conn.receive_data(encode(Connect("well-01")), 1.0)
    assert conn.state is ConnectionState.CLOSED
    conn2 = ServerConnection(now=0.0)
    with pytest.raises(ProtocolError, match=r"^duplicate_connect:"):
        conn2.receive_data(encode(Connect("a")) * 2, 0.0)


def test_qos2_publish_closes_the_connection() -> None:
    conn = connected()
    with pytest.raises(ProtocolError, match=r"^qos2_not_supported:"):
        conn.receive_data(encode(Publish(TELEMETRY, b"x", qos=2, packet_id=1)), 1.0)
    assert conn.state is ConnectionState.CLOSED
    assert conn.receive_data(encode(PingReq()), 2.0) == []


@pytest.mark.parametrize("packet", [PubRec(1), PubRel(1), PubComp(1)], ids=repr)
def test_qos2_flow_packets_close_the_connection(packet: object) -> None:
    conn = connected()
    with pytest.raises(ProtocolError, match=r"^unsupported_packet:"):
        conn.receive_data(encode(packet), 1.0)  # type: ignore[arg-type]
    assert conn.state is ConnectionState.CLOSED


def test_disconnect_closes_and_ignores_the_rest() -> None:
    conn = connected()
    data = encode(Disconnect()) + encode(PingReq())
    assert conn.receive_data(data, 1.0) == [Disconnect()]
    assert conn.state is ConnectionState.CLOSED
    assert conn.data_to_send() == b""
    assert conn.receive_data(b"\xff\xff", 2.0) == []


def test_packets_before_disconnect_are_delivered_and_their_answers_dropped() -> None:
    conn = connected()
    publish = Publish(TELEMETRY, b"x", qos=1, packet_id=5)
    subscribe = Subscribe(6, ((C2D_FILTER, 1),))
    unsubscribe = Unsubscribe(7, (C2D_FILTER,))
    data = encode(publish) + encode(subscribe) + encode(unsubscribe) + encode(Disconnect())
    assert conn.receive_data(data, 1.0) == [publish, subscribe, unsubscribe, Disconnect()]
    conn.puback(5)  # the gateway answers in order; the client is gone by then
    conn.suback(6, [1])
    conn.unsuback(7)
    assert conn.data_to_send() == b""


def test_keep_alive_deadline_and_expiry() -> None:
    conn = ServerConnection(now=0.0, connect_timeout=10.0)
    assert conn.keep_alive_deadline == 10.0
    assert not conn.is_expired(10.0)
    assert conn.is_expired(10.5)
    conn.receive_data(encode(Connect("well-01", keep_alive=60)), 5.0)
    conn.accept()
    assert conn.keep_alive == 60
    assert conn.keep_alive_deadline == 95.0
    conn.receive_data(encode(PingReq()), 50.0)
    assert conn.keep_alive_deadline == 140.0
    assert not conn.is_expired(140.0)
    assert conn.is_expired(140.1)


def test_partial_packets_do_not_count_as_activity() -> None:
    conn = connected(keep_alive=10, now=0.0)
    data = encode(Publish(TELEMETRY, b"x" * 100, qos=1, packet_id=1))
    assert conn.receive_data(data[:-1], 14.0) == []
    assert conn.keep_alive_deadline == 15.0
    assert len(conn.receive_data(data[-1:], 15.0)) == 1
    assert conn.keep_alive_deadline == 30.0


def test_keep_alive_is_capped_and_zero_means_none() -> None:
    conn = connected(keep_alive=65_535)
    assert conn.keep_alive == 1767
    assert conn.keep_alive_deadline == pytest.approx(1.5 * 1767)
    forever = connected(keep_alive=0)
    assert forever.keep_alive_deadline is None
    assert not forever.is_expired(1e12)
    forever.close()
    assert forever.keep_alive_deadline is None


def test_send_publish_qos1_and_client_puback() -> None:
    conn = connected()
    packet_id = conn.send_publish(C2D, b"hello", 1, now=3.0)
    assert packet_id == 1
    assert sent(conn) == [Publish(C2D, b"hello", qos=1, packet_id=1)]
    assert conn.in_flight[1].sent_at == 3.0
    assert conn.receive_data(encode(PubAck(1)), 4.0) == [PubAck(1)]
    assert dict(conn.in_flight) == {}


def test_send_publish_qos0_is_not_tracked() -> None:
    conn = connected()
    assert conn.send_publish(C2D, b"x", 0, retain=True) is None
    assert sent(conn) == [Publish(C2D, b"x", retain=True)]
    assert len(conn.in_flight) == 0


def test_unknown_or_repeated_client_puback_is_ignored() -> None:
    conn = connected()
    conn.send_publish(C2D, b"x", 1)
    assert conn.receive_data(encode(PubAck(99)), 1.0) == []
    assert conn.receive_data(encode(PubAck(1)) * 2, 1.0) == [PubAck(1)]
    assert conn.state is ConnectionState.CONNECTED


def test_in_flight_view_is_read_only() -> None:
    conn = connected()
    conn.send_publish(C2D, b"x", 1)
    with pytest.raises(TypeError):
        conn.in_flight[2] = conn.in_flight[1]  # type: ignore[index]


def test_send_time_defaults_to_latest_now() -> None:
    conn = connected(now=0.0)
    conn.receive_data(encode(PingReq()), 42.0)
    conn.send_publish(C2D, b"x", 1)
    assert conn.in_flight[1].sent_at == 42.0


def test_packet_ids_wrap_around_and_skip_in_flight() -> None:
    conn = connected()
    ids = [conn.send_publish(C2D, b"", 1) for _ in range(65_534)]
    assert ids == list(range(1, 65_535))
    conn.data_to_send()
    conn.receive_data(encode(PubAck(1)) + encode(PubAck(5)), 1.0)
    assert conn.send_publish(C2D, b"", 1) == 65_535
    assert conn.send_publish(C2D, b"", 1) == 1  # wrapped; 0 is never used
    assert conn.send_publish(C2D, b"", 1) == 5  # 2..4 are still in flight
    with pytest.raises(ProtocolError, match=r"^local_packet_ids_exhausted:"):
        conn.send_publish(C2D, b"", 1)
    conn.receive_data(encode(PubAck(40_000)), 2.0)
    assert conn.send_publish(C2D, b"", 1) == 40_000


def test_redelivery_sets_dup_and_restarts_the_timer() -> None:
    conn = connected()
    conn.send_publish(C2D, b"a", 1, now=0.0)
    conn.send_publish(C2D, b"b", 1, now=8.0)
    conn.data_to_send()
    assert conn.redeliver_due(5.0, timeout=10.0) == []
    resent = conn.redeliver_due(10.0, timeout=10.0)
    assert resent == [Publish(C2D, b"a", qos=1, dup=True, packet_id=1)]
    assert conn.data_to_send() == encode(resent[0])
    assert encode(resent[0])[0] == 0x3A  # PUBLISH, DUP, QoS 1
    assert conn.in_flight[1].sent_at == 10.0
    assert conn.redeliver_due(15.0, timeout=10.0) == []
    assert [p.packet_id for p in conn.redeliver_due(20.0, timeout=10.0)] == [1, 2]
    conn.receive_data(encode(PubAck(1)), 21.0)
    assert [p.packet_id for p in conn.redeliver_due(40.0, timeout=10.0)] == [2]


def test_no_redelivery_once_closed_but_in_flight_stays_readable() -> None:
    conn = connected()
    conn.send_publish(C2D, b"a", 1, now=0.0)
    conn.close()
    assert conn.redeliver_due(100.0, timeout=1.0) == []
    assert list(conn.in_flight) == [1]


def test_duplicate_incoming_publish_is_delivered_marked_dup() -> None:
    conn = connected()
    first = Publish(TELEMETRY, b"x", qos=1, packet_id=7)
    again_without_flag = Publish(TELEMETRY, b"x", qos=1, packet_id=7)
    again_with_flag = Publish(TELEMETRY, b"x", qos=1, dup=True, packet_id=7)
    assert conn.receive_data(encode(first), 1.0) == [first]
    assert conn.receive_data(encode(again_without_flag), 2.0) == [again_with_flag]
    assert conn.receive_data(encode(again_with_flag), 3.0) == [again_with_flag]
    conn.puback(7)
    # Acknowledged, so the id is free again: a new message, not a duplicate.
    assert conn.receive_data(encode(first), 4.0) == [first]


def test_gateway_misuse_raises_local_errors() -> None:
    conn = ServerConnection(now=0.0)
    calls: list[Callable[[], object]] = [
        conn.accept,
        lambda: conn.puback(1),
        lambda: conn.suback(1, [0]),
        lambda: conn.unsuback(1),
        lambda: conn.send_publish(C2D, b"", 1),
    ]
    for call in calls:
        with pytest.raises(ProtocolError, match=r"^local_state_error:"):
            call()
    live = connected()
    with pytest.raises(ProtocolError, match=r"^local_invalid_qos:"):
        live.send_publish(C2D, b"", 2)
    with pytest.raises(ProtocolError, match=r"^local_invalid_packet_id:"):
        live.puback(0)
    with pytest.raises(ProtocolError, match=r"^invalid_return_code:"):
        live.suback(1, [7])

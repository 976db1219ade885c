"""A real paho-mqtt 2.x client against a tiny loopback hub built on ``ServerConnection``.

paho's bytes must decode (in one piece and byte by byte), and paho must accept our
CONNACK, SUBACK, PUBACK, PINGRESP and QoS 1 PUBLISH. The hub is test-only: one thread,
one connection, blocking sockets, port 0 on 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from wellguard.core.mqtt import (
    Connect,
    Disconnect,
    Packet,
    PacketDecoder,
    PingReq,
    PubAck,
    Publish,
    ServerConnection,
    Subscribe,
    Unsubscribe,
    topic_matches,
)
from wellguard.errors import ProtocolError

DEVICE = "well-01"
TELEMETRY = f"devices/{DEVICE}/messages/events/a=1"
C2D_FILTER = f"devices/{DEVICE}/messages/devicebound/#"
C2D_TOPIC = f"devices/{DEVICE}/messages/devicebound/%24.mid=42"


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        time.sleep(0.01)


class MiniHub:
    """Accepts one connection and plays IoT Hub's part with ``ServerConnection``."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.raw = bytearray()
        self.events: list[Packet] = []
        self.errors: list[ProtocolError] = []
        self.c2d_acked = threading.Event()
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            with sock:
                self._run(sock)
            self.closed.set()
            return

    def _run(self, sock: socket.socket) -> None:
        sock.settimeout(0.05)
        conn = ServerConnection(now=time.monotonic())
        subscriptions: list[tuple[str, int]] = []
        while not self._stop.is_set():
            try:
                data = sock.recv(65_536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.raw += data
            try:
                events = conn.receive_data(data, time.monotonic())
            except ProtocolError as exc:
                self.errors.append(exc)
                sock.sendall(conn.data_to_send())
                return
            for event in events:
                self.events.append(event)
                self._handle(conn, event, subscriptions)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            if conn.state.value == "closed":
                return

    def _handle(
        self, conn: ServerConnection, event: Packet, subscriptions: list[tuple[str, int]]
    ) -> None:
        if isinstance(event, Connect):
            conn.accept(session_present=False)
        elif isinstance(event, Subscribe):
            # IoT Hub grants at most QoS 1.
            subscriptions.extend(event.subscriptions)
            conn.suback(event.packet_id, [min(qos, 1) for _, qos in event.subscriptions])
            if any(topic_matches(f, C2D_TOPIC) for f, _ in event.subscriptions):
                conn.send_publish(C2D_TOPIC, b"cloud-to-device", 1, now=time.monotonic())
        elif isinstance(event, Unsubscribe):
            conn.unsuback(event.packet_id)
        elif isinstance(event, Publish) and event.packet_id is not None:
            conn.puback(event.packet_id)
        elif isinstance(event, PubAck):
            self.c2d_acked.set()


@pytest.fixture
def hub() -> Iterator[MiniHub]:
    server = MiniHub()
    yield server
    server.stop()


def paho_client(
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311, **kwargs: Any
) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=protocol, **kwargs)


def test_paho_full_session(hub: MiniHub) -> None:
    client = paho_client()
    client.username_pw_set(f"hub.local/{DEVICE}/?api-version=2021-04-12", "SharedAccessSignature x")
    connected: list[Any] = []
    granted: list[Any] = []
    messages: list[mqtt.MQTTMessage] = []
    published: list[int] = []
    client.on_connect = lambda _c, _u, flags, rc, _p: connected.append((flags, rc))
    client.on_subscribe = lambda _c, _u, _mid, codes, _p: granted.extend(codes)
    client.on_message = lambda _c, _u, msg: messages.append(msg)
    client.on_publish = lambda _c, _u, mid, _rc, _p: published.append(mid)

    client.connect("127.0.0.1", hub.port, keepalive=1)
    client.loop_start()
    try:
        wait_for(lambda: bool(connected))
        flags, rc = connected[0]
        assert not rc.is_failure
        assert flags.session_present is False

        client.subscribe([(C2D_FILTER, 1), ("$iothub/twin/res/#", 2)])
        wait_for(lambda: len(granted) == 2)
        assert [code.value for code in granted] == [1, 1]

        wait_for(lambda: bool(messages))
        assert messages[0].topic == C2D_TOPIC
        assert messages[0].payload == b"cloud-to-device"
        assert messages[0].qos == 1
        assert hub.c2d_acked.wait(5)  # paho's PUBACK decoded and matched our in-flight id

        info = client.publish(TELEMETRY, b"\x01" * 200, qos=1)
        info.wait_for_publish(5)
        assert info.mid in published  # our PUBACK completed paho's QoS 1 flow
        client.publish(TELEMETRY, b"qos0", qos=0)

        # keepalive=1: paho pings every second and drops us if PINGRESP is missing.
        wait_for(lambda: sum(isinstance(e, PingReq) for e in decode(hub.raw)) >= 2)
        assert client.is_connected()

        client.unsubscribe(C2D_FILTER)
        wait_for(lambda: any(isinstance(e, Unsubscribe) for e in hub.events))
    finally:
        client.disconnect()
        client.loop_stop()
    assert hub.closed.wait(5)
    assert hub.errors == []

    packets = decode(hub.raw)
    assert decode(bytes(hub.raw), bytewise=True) == packets
    connect = packets[0]
    assert isinstance(connect, Connect)
    assert connect.client_id == DEVICE
    assert connect.keep_alive == 1
    assert connect.clean_session is True
    assert connect.password == b"SharedAccessSignature x"
    telemetry = [p for p in packets if isinstance(p, Publish)]
    assert [(p.topic, p.qos, len(p.payload)) for p in telemetry] == [
        (TELEMETRY, 1, 200),
        (TELEMETRY, 0, 4),
    ]
    assert isinstance(packets[-1], Disconnect)


def test_paho_will_and_persistent_session_decode(hub: MiniHub) -> None:
    client = paho_client(clean_session=False)
    client.will_set(f"devices/{DEVICE}/messages/events/", b"offline", qos=1, retain=True)
    client.username_pw_set("user-only")
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", hub.port, keepalive=30)
    client.loop_start()
    try:
        assert connected.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()
    assert hub.closed.wait(5)
    connect = hub.events[0]
    assert isinstance(connect, Connect)
    assert connect.clean_session is False
    assert connect.username == "user-only"
    assert connect.password is None
    assert connect.will is not None
    assert (connect.will.topic, connect.will.payload) == (
        f"devices/{DEVICE}/messages/events/",
        b"offline",
    )
    assert (connect.will.qos, connect.will.retain) == (1, True)


def test_paho_mqtt31_is_refused_with_connack_1(hub: MiniHub) -> None:
    client = paho_client(MQTTProtocolVersion.MQTTv31, reconnect_on_failure=False)
    results: list[Any] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: results.append(rc)
    client.connect("127.0.0.1", hub.port, keepalive=30)
    client.loop_start()
    try:
        wait_for(lambda: bool(results))
    finally:
        client.loop_stop()
        client.disconnect()
    # paho reports CONNACK return code 1 by its MQTT 5 name (reason code 132).
    assert str(results[0]) == "Unsupported protocol version"
    assert hub.errors[0].reason_code == 1
    assert str(hub.errors[0]).startswith("unsupported_protocol_version:")


def decode(data: bytes | bytearray, *, bytewise: bool = False) -> list[Packet]:
    decoder = PacketDecoder(1 << 20, server_side=True)
    raw = bytes(data)
    if not bytewise:
        return decoder.feed(raw)
    return [packet for i in range(len(raw)) for packet in decoder.feed(raw[i : i + 1])]

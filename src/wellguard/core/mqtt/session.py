"""The server side of one MQTT connection as a sans-IO state machine (after h11).

Theory of operation: the gateway owns the socket and the clock; this object owns the
protocol. The gateway hands every chunk it reads to ``receive_data(data, now)`` and gets
back the packets that need a decision (``Event``). It answers through methods that
queue bytes (``accept``, ``refuse``, ``puback``, ``suback``, ``unsuback``,
``send_publish``), and writes whatever ``data_to_send()`` returns, one write per drain.

States::

    AWAITING_CONNECT --CONNECT--> CONNECTING --accept()--> CONNECTED
           |                          |                        |
           +---- violation, refuse(), DISCONNECT, close() -----+--> CLOSED

CONNECTING is the time between receiving CONNECT and the gateway's decision. Clients
may send packets right behind CONNECT without waiting for CONNACK (spec 3.1.4), so
those are returned as events in order behind the ``Connect``; the gateway handles the
list in order and, after ``refuse()``, drops the rest (the state is then CLOSED).

Rules that are IoT Hub's rather than the spec's: a QoS 2 PUBLISH, or any of PUBREC,
PUBREL, PUBCOMP, is a violation (IoT Hub closes the connection), and the server
never sends QoS 2. PINGREQ is answered here and never surfaces (a ping pipelined
before ``accept()`` is answered right after the CONNACK, which must come first). A
PUBACK from the client completes one of our QoS 1 deliveries and is surfaced only if
it matches one in flight; an unknown or repeated one is ignored. A QoS 1 PUBLISH that
reuses the packet id of one the gateway has not acknowledged yet is surfaced again with
``dup=True`` (even if the client forgot the flag); deduplication is the gateway's job.

Any ``ProtocolError`` from ``receive_data`` moves the state to CLOSED; if it carries a
``reason_code`` while CONNECT is awaited, the matching CONNACK is already queued, so
the gateway flushes ``data_to_send()`` and closes. Calling a method in the wrong state
is the gateway's bug and raises ``ProtocolError`` with a ``local_`` reason.

Time: before CONNECT the deadline is ``connect_timeout`` after construction; after it,
``last packet received + 1.5 * keep-alive`` (keep-alive capped at ``max_keep_alive``,
0 meaning no deadline). Only a complete packet counts as activity, so a peer that
trickles bytes cannot keep a connection open forever.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import TypeAlias

from wellguard.core.mqtt._encode import encode, pack_ack
from wellguard.core.mqtt.codec import PacketDecoder
from wellguard.core.mqtt.packets import (
    ConnAck,
    ConnAckCode,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from wellguard.errors import ProtocolError

__all__ = ["ConnectionState", "Event", "InFlight", "ServerConnection"]

Event: TypeAlias = Connect | Publish | Subscribe | Unsubscribe | PubAck | Disconnect
"""A packet from the client that the gateway must act on."""

_PINGRESP = b"\xd0\x00"
_MAX_PACKET_ID = 0xFFFF


class ConnectionState(Enum):
    """Where a server connection is in its life."""

    AWAITING_CONNECT = "awaiting_connect"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class InFlight:
    """A QoS 1 PUBLISH sent to the client and not yet acknowledged, with when it was sent."""

    packet: Publish
    sent_at: float


class ServerConnection:
    """Server-side MQTT 3.1.1 protocol state of one client connection, in IoT Hub's dialect."""

    __slots__ = (
        "_connect",
        "_connect_deadline",
        "_decoder",
        "_held_pings",
        "_in_flight",
        "_keep_alive",
        "_last_received",
        "_max_keep_alive",
        "_next_packet_id",
        "_now",
        "_outgoing",
        "_state",
        "_unacked_incoming",
    )

    def __init__(
        self,
        *,
        max_packet_size: int = 262_144 + 1024,
        max_keep_alive: int = 1767,
        now: float,
        connect_timeout: float = 30.0,
    ) -> None:
        self._decoder = PacketDecoder(max_packet_size, server_side=True)
        self._max_keep_alive = max_keep_alive
        self._state = ConnectionState.AWAITING_CONNECT
        self._outgoing: list[bytes] = []
        self._connect: Connect | None = None
        self._keep_alive = 0
        self._connect_deadline = now + connect_timeout
        self._last_received = now
        self._now = now
        self._in_flight: dict[int, InFlight] = {}
        self._unacked_incoming: set[int] = set()
        self._next_packet_id = 1
        self._held_pings = 0

    # -- what the gateway reads -------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The current state."""
        return self._state

    @property
    def connect(self) -> Connect | None:
        """The client's CONNECT, once received."""
        return self._connect

    @property
    def keep_alive(self) -> int:
        """The keep-alive in force, in seconds, after capping; 0 means none."""
        return self._keep_alive

    @property
    def keep_alive_deadline(self) -> float | None:
        """When the connection expires unless a packet arrives; ``None`` if never."""
        if self._state is ConnectionState.CLOSED:
            return None
        if self._state is ConnectionState.AWAITING_CONNECT:
            return self._connect_deadline
        if not self._keep_alive:
            return None
        return self._last_received + 1.5 * self._keep_alive

    def is_expired(self, now: float) -> bool:
        """Whether the client has been silent past its deadline (spec 3.1.2.10)."""
        deadline = self.keep_alive_deadline
        return deadline is not None and now > deadline

    @property
    def in_flight(self) -> Mapping[int, InFlight]:
        """Our unacknowledged QoS 1 deliveries by packet id (read-only, live)."""
        return MappingProxyType(self._in_flight)

    def data_to_send(self) -> bytes:
        """Drain the queued outgoing bytes, concatenated for one write."""
        outgoing = self._outgoing
        if not outgoing:
            return b""
        data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
        outgoing.clear()
        return data

    # -- input --------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes read from the client; returns the packets needing a decision."""
        self._now = now
        if self._state is ConnectionState.CLOSED:
            return []
        try:
            packets = self._decoder.feed(data)
            if not packets:
                return []
            self._last_received = now
            return self._handle(packets)
        except ProtocolError as exc:
            if self._state is ConnectionState.AWAITING_CONNECT and exc.reason_code:
                self._outgoing.append(encode(ConnAck(False, exc.reason_code)))
            self._state = ConnectionState.CLOSED
            raise

    def _handle(self, packets: list[Packet]) -> list[Event]:
        events: list[Event] = []
        awaiting = self._state is ConnectionState.AWAITING_CONNECT
        for packet in packets:
            if awaiting and not isinstance(packet, Connect):
                name = type(packet).__name__
                raise ProtocolError(f"connect_expected: {name} before CONNECT")
            if isinstance(packet, Publish):
                events.append(self._incoming_publish(packet))
            elif isinstance(packet, PubAck):
                if self._in_flight.pop(packet.packet_id, None) is not None:
                    events.append(packet)
            elif isinstance(packet, PingReq):
                if self._state is ConnectionState.CONNECTED:
                    self._outgoing.append(_PINGRESP)
                else:
                    # CONNACK must be the server's first packet (spec 3.2.0).
                    self._held_pings += 1
            elif isinstance(packet, Connect):
                if not awaiting:
                    raise ProtocolError("duplicate_connect: second CONNECT on a connection")
                awaiting = False
                self._on_connect(packet)
                events.append(packet)
            elif isinstance(packet, Subscribe | Unsubscribe):
                events.append(packet)
            elif isinstance(packet, Disconnect):
                # Nothing may follow DISCONNECT; whatever did is ignored.
                self._state = ConnectionState.CLOSED
                events.append(packet)
                break
            else:
                name = type(packet).__name__
                raise ProtocolError(f"unsupported_packet: {name} (QoS 2 flow) is not supported")
        return events

    def _incoming_publish(self, packet: Publish) -> Publish:
        if packet.qos == 1:
            packet_id = packet.packet_id
            assert packet_id is not None
            if packet_id in self._unacked_incoming:
                if not packet.dup:
                    packet = dataclasses.replace(packet, dup=True)
            else:
                self._unacked_incoming.add(packet_id)
        elif packet.qos == 2:
            raise ProtocolError("qos2_not_supported: QoS 2 PUBLISH (IoT Hub closes)")
        return packet

    def _on_connect(self, packet: Connect) -> None:
        self._connect = packet
        self._keep_alive = min(packet.keep_alive, self._max_keep_alive)
        self._state = ConnectionState.CONNECTING

    # -- the gateway's answers ------------------------------------------------------------

    def _require(self, state: ConnectionState, action: str) -> None:
        if self._state is not state:
            raise ProtocolError(f"local_state_error: {action} in state {self._state.value}")

    def accept(self, session_present: bool = False) -> None:
        """Queue CONNACK 0 and enter CONNECTED."""
        self._require(ConnectionState.CONNECTING, "accept()")
        self._outgoing.append(encode(ConnAck(session_present, ConnAckCode.ACCEPTED)))
        self._outgoing.extend([_PINGRESP] * self._held_pings)
        self._held_pings = 0
        self._state = ConnectionState.CONNECTED

    def refuse(self, code: int) -> None:
        """Queue a CONNACK with non-zero ``code`` and close."""
        self._require(ConnectionState.CONNECTING, "refuse()")
        if code == ConnAckCode.ACCEPTED:
            raise ProtocolError("local_state_error: refuse() needs a non-zero return code")
        self._outgoing.append(encode(ConnAck(False, code)))
        self._state = ConnectionState.CLOSED

    def _answerable(self, action: str) -> bool:
        """False once the connection is closed (the client sent DISCONNECT after the packet
        being answered, or the stream failed): there is nobody left to answer, and what the
        client sent before is still carried out. Before CONNACK it is a local error."""
        if self._state is ConnectionState.CLOSED:
            return False
        self._require(ConnectionState.CONNECTED, action)
        return True

    def puback(self, packet_id: int) -> None:
        """Acknowledge the client's QoS 1 PUBLISH ``packet_id`` (dropped once closed)."""
        if not self._answerable("puback()"):
            return
        if not 0 < packet_id <= _MAX_PACKET_ID:
            raise ProtocolError(f"local_invalid_packet_id: {packet_id}")
        self._unacked_incoming.discard(packet_id)
        self._outgoing.append(pack_ack(0x40, 2, packet_id))

    def suback(self, packet_id: int, codes: Iterable[int]) -> None:
        """Answer SUBSCRIBE ``packet_id`` with one return code per filter (dropped once closed)."""
        if not self._answerable("suback()"):
            return
        self._outgoing.append(encode(SubAck(packet_id, tuple(codes))))

    def unsuback(self, packet_id: int) -> None:
        """Answer UNSUBSCRIBE ``packet_id`` (dropped once closed)."""
        if not self._answerable("unsuback()"):
            return
        self._outgoing.append(encode(UnsubAck(packet_id)))

    def send_publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        *,
        retain: bool = False,
        now: float | None = None,
    ) -> int | None:
        """Queue a PUBLISH to the client; returns its packet id for QoS 1, else ``None``.

        ``now`` is the send time recorded for redelivery; by default the ``now`` of the
        latest call that passed one.
        """
        self._require(ConnectionState.CONNECTED, "send_publish()")
        if qos == 0:
            self._outgoing.append(encode(Publish(topic, payload, 0, retain)))
            return None
        if qos != 1:
            raise ProtocolError(f"local_invalid_qos: cannot send QoS {qos} (IoT Hub uses 0/1)")
        if now is not None:
            self._now = now
        packet_id = self._allocate_packet_id()
        packet = Publish(topic, payload, 1, retain, False, packet_id)
        self._outgoing.append(encode(packet))
        self._in_flight[packet_id] = InFlight(packet, self._now)
        return packet_id

    def _allocate_packet_id(self) -> int:
        in_flight = self._in_flight
        if len(in_flight) >= _MAX_PACKET_ID:
            raise ProtocolError("local_packet_ids_exhausted: 65535 deliveries in flight")
        packet_id = self._next_packet_id
        while packet_id in in_flight:
            packet_id = packet_id % _MAX_PACKET_ID + 1
        self._next_packet_id = packet_id % _MAX_PACKET_ID + 1
        return packet_id

    def redeliver_due(self, now: float, timeout: float) -> list[Publish]:
        """Queue again, with DUP set, every in-flight PUBLISH older than ``timeout``."""
        self._now = now
        if self._state is not ConnectionState.CONNECTED:
            return []
        resent: list[Publish] = []
        for packet_id, entry in self._in_flight.items():
            if now - entry.sent_at >= timeout:
                packet = entry.packet
                if not packet.dup:
                    packet = dataclasses.replace(packet, dup=True)
                self._in_flight[packet_id] = InFlight(packet, now)
                self._outgoing.append(encode(packet))
                resent.append(packet)
        return resent

    def close(self) -> None:
        """Enter CLOSED; in-flight deliveries stay readable for requeueing elsewhere."""
        self._state = ConnectionState.CLOSED

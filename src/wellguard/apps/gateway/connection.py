"""One device connection: TCP → (IP filter) → TLS in memory → MQTT session → IoT Hub dialect.

asyncio only moves bytes here; protocol decisions come from ``wellguard.core.mqtt``
(session), ``wellguard.core.gateway`` (dialect, throttling) and the authenticator.
QoS 1 telemetry is acknowledged only after the ingest journal reports it durable, and
PUBACKs leave in the order the PUBLISHes came in (MQTT 3.1.1, 4.6), throttled ones
included: each publish takes a slot in a FIFO and acks drain from its head.

The bookkeeping around a message costs more than decoding it, so it is done once per
read where that means the same: telemetry PUBLISHes that arrive together (one read, no
other packet between them) are throttled, time-stamped and counted as one run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import orjson

from wellguard.adapters.tls import TlsSession
from wellguard.apps.gateway.auth import AuthenticatedDevice
from wellguard.core.gateway import (
    MAX_D2C_BYTES,
    ClaimedIdentity,
    CounterName,
    MethodResponse,
    PublishAction,
    SubscriptionKind,
    Telemetry,
    TopicDeniedError,
    TwinGet,
    TwinReportedPatch,
    classify_publish,
    classify_subscribe,
    twin_response_topic,
)
from wellguard.core.mqtt import (
    ConnAckCode,
    Connect,
    Disconnect,
    PubAck,
    Publish,
    ServerConnection,
    Subscribe,
    Unsubscribe,
)
from wellguard.errors import AuthError, InvalidInputError, ProtocolError, WellguardError
from wellguard.model.message import DeviceMessage, MessageSource

if TYPE_CHECKING:
    from wellguard.apps.gateway.server import GatewayServer

__all__ = ["DeviceConnection"]

_log = logging.getLogger("wellguard.gateway")
_HANDSHAKE_TIMEOUT = 10.0
_TELEMETRY = MessageSource.TELEMETRY


class _AckSlot:
    """A QoS 1 PUBLISH's place in the PUBACK order; ``not_before`` is its throttling hold
    (monotonic loop time, 0.0 for none) and ``started`` when it was read."""

    __slots__ = ("not_before", "packet_id", "ready", "started")

    def __init__(self, packet_id: int, started: float = 0.0, not_before: float = 0.0) -> None:
        self.packet_id = packet_id
        self.ready = False
        self.started = started
        self.not_before = not_before


class DeviceConnection(asyncio.Protocol):
    """asyncio protocol of one device connection.

    A hub holds tens of thousands of these, mostly idle: slots instead of a dict, and
    the PUBACK queue made at the first QoS 1 PUBLISH.
    """

    __slots__ = (
        "_acks",
        "_backlog",
        "_flush_soon",
        "_handshake_timer",
        "_plain_closer",
        "_plain_writer",
        "active",
        "auth",
        "c2d_in_flight",
        "claimed",
        "closed",
        "connected_at",
        "mqtt",
        "peer",
        "peer_ip",
        "server",
        "subscriptions",
        "tls",
        "transport",
    )

    def __init__(self, server: GatewayServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "unknown"
        self.peer_ip = ""
        self.tls: TlsSession | None = None
        self.mqtt: ServerConnection | None = None
        self.auth: AuthenticatedDevice | None = None
        self.claimed: ClaimedIdentity | None = None
        self.subscriptions: dict[SubscriptionKind, int] = {}
        self.closed = False
        self.connected_at = 0.0
        self.active = False  # sent anything since the last presence flush
        self._backlog: list[Any] | None = None
        self._acks: deque[_AckSlot] | None = None
        self._flush_soon = False
        self.c2d_in_flight: dict[int, Any] = {}  # packet id -> C2dMessage
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._plain_writer: Callable[[bytes], None] | None = None
        self._plain_closer: Callable[[], None] | None = None

    # -- transport events ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer_ip, self.peer = str(peer[0]), f"{peer[0]}:{peer[1]}"
        refusal = self.server.admit(self.peer_ip)
        if refusal is not None:
            self.server.security_event(
                "mqtt.connect", refusal, None, self.peer, "refused at accept"
            )
            self.closed = True
            self.transport.abort()
            return
        self.tls = self.server.new_tls_session()
        now = self.server.loop.time()
        self.mqtt = self.server.new_mqtt_session(now)
        self._handshake_timer = self.server.loop.call_later(
            _HANDSHAKE_TIMEOUT, self._handshake_expired
        )
        self.connected_at = now
        # Swept from now on: a client that finishes TLS and never sends CONNECT must not
        # hold its socket (and a file descriptor) for ever.
        self.server.connections.add(self)

    def _handshake_expired(self) -> None:
        if self.tls is not None and not self.tls.handshake_done and not self.closed:
            self.server.security_event("mqtt.connect", "tls_handshake_timeout", None, self.peer, "")
            self.abort()

    def start_plain(
        self,
        peer: tuple[str, int],
        writer: Callable[[bytes], None],
        closer: Callable[[], None],
    ) -> bool:
        """Use an already-secured byte stream (MQTT over WebSockets behind the HTTPS
        listener's TLS). False when the peer is refused."""
        self.peer_ip, self.peer = peer[0], f"{peer[0]}:{peer[1]}"
        refusal = self.server.admit(self.peer_ip)
        if refusal is not None:
            self.server.security_event(
                "mqtt.connect", refusal, None, self.peer, "websocket refused"
            )
            self.closed = True
            return False
        self._plain_writer = writer
        self._plain_closer = closer
        now = self.server.loop.time()
        self.mqtt = self.server.new_mqtt_session(now)
        self.connected_at = now
        self.server.connections.add(self)
        return True

    def data_received(self, data: bytes) -> None:
        if self.closed or self.mqtt is None:
            return
        try:
            if self.tls is not None:
                plain, out = self.tls.receive(data)
                if out:
                    self._write_raw(out)
                if self._handshake_timer is not None and self.tls.handshake_done:
                    self._handshake_timer.cancel()  # from here the MQTT deadlines apply
                    self._handshake_timer = None
            else:
                plain = data
            if plain:
                self.server.metrics.bytes_in.inc(len(plain))
                events = self.mqtt.receive_data(plain, self.server.loop.time())
                if events:
                    self._dispatch(events)
                self.flush()
        except ProtocolError as exc:
            self._violation(str(exc))
        except Exception:  # a bug must cost one connection, never the gateway
            _log.exception("connection %s failed", self.peer)
            self.abort()

    def eof_received(self) -> bool | None:
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self.server.connection_closed(self)

    # -- writing ------------------------------------------------------------------------

    def _write_raw(self, data: bytes) -> None:
        if self._plain_writer is not None:
            self._plain_writer(data)
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def flush(self) -> None:
        """Send whatever the MQTT session has queued."""
        if self.mqtt is None or self.closed:
            return
        data = self.mqtt.data_to_send()
        if data:
            self.server.metrics.bytes_out.inc(len(data))
            self._write_raw(self.tls.send(data) if self.tls is not None else data)

    def close(self) -> None:
        """Close politely (TLS close_notify), flushing what is queued."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        if self.mqtt is not None:
            self.mqtt.close()
        if self.tls is not None and self.tls.handshake_done:
            try:
                self._write_raw(self.tls.close())
            except ProtocolError:
                pass
        if self.transport is not None:
            self.transport.close()
        if self._plain_closer is not None:
            self._plain_closer()

    def abort(self) -> None:
        """Drop the connection at once."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        if self._plain_closer is not None:
            self._plain_closer()

    def _violation(self, reason: str) -> None:
        identity = self.claimed.key if self.claimed else None
        self.server.security_event(
            "mqtt.protocol", "protocol_violation", identity, self.peer, reason
        )
        self.server.admission_failure(self.peer_ip)
        self.abort()

    # -- MQTT events --------------------------------------------------------------------

    def _dispatch(self, events: list[Any]) -> None:
        run: list[tuple[Publish, Telemetry]] = []  # telemetry in a row, stored together
        for event in events:
            if self.closed:
                return
            if self._backlog is not None:
                self._backlog.append(event)
                continue
            action = None
            if isinstance(event, Publish):
                action = self._classify(event)
                if isinstance(action, Telemetry) and len(event.payload) <= MAX_D2C_BYTES:
                    run.append((event, action))
                    continue
            if run:
                # The telemetry read before this packet goes first: PUBACKs keep their order.
                self._ingest(run)
                run = []
                if self.closed:
                    return
            if isinstance(event, Publish):
                assert action is not None
                self._on_publish(event, action)
            elif isinstance(event, Connect):
                self._backlog = []
                self.server.loop.create_task(self._authenticate(event))
            elif isinstance(event, PubAck):
                self.server.c2d_delivery.acknowledged(self, event.packet_id)
            elif isinstance(event, Subscribe):
                self._on_subscribe(event)
            elif isinstance(event, Unsubscribe):
                self._on_unsubscribe(event)
            elif isinstance(event, Disconnect):
                self.close()
        if run and not self.closed:
            self._ingest(run)

    async def _authenticate(self, connect: Connect) -> None:
        assert self.mqtt is not None
        server = self.server
        try:
            claimed = server.authenticator.claim(connect.client_id, connect.username)
        except AuthError as exc:
            self._refuse(exc, None, ConnAckCode.IDENTIFIER_REJECTED)
            return
        self.claimed = claimed
        chain = self.tls.peer_chain() if self.tls is not None else []
        authenticator = server.authenticator
        # A change handled while this connect waited for the store found no session to
        # re-check; the connect notices the moved epoch and has itself re-checked.
        epoch = server.identity_epoch
        try:
            # Held records are checked right here; a first connect's are read in a batch
            # with the other connects of the moment, then checked here.
            auth = authenticator.try_authenticate(claimed, connect.password, chain)
            if auth is None:
                server.metrics.auth_reads.inc()
                await server.prefetch.submit(claimed)
                if self.closed:
                    return
                auth = authenticator.try_authenticate(claimed, connect.password, chain)
            if auth is None:  # a change voided or evicted the records meanwhile
                auth = await server.run_blocking(
                    authenticator.authenticate, claimed, connect.password, chain
                )
        except AuthError as exc:
            self._refuse(exc, claimed.key, ConnAckCode.NOT_AUTHORIZED)
            return
        if self.closed:
            return
        self.auth = auth
        session_present = server.register(self, connect.clean_session)
        if server.identity_epoch != epoch:
            server.recheck_soon(self)
        self.mqtt.accept(session_present=session_present)
        backlog, self._backlog = self._backlog or [], None
        self.flush()
        if backlog:
            self._dispatch(backlog)
            self.flush()

    def _refuse(self, exc: AuthError, identity: str | None, code: ConnAckCode) -> None:
        assert self.mqtt is not None
        self.server.security_event(
            "mqtt.connect", exc.reason.value, exc.identity or identity, self.peer, exc.detail
        )
        self.server.admission_failure(self.peer_ip)
        if identity:
            self.server.count(identity, CounterName.AUTH_FAILURES)
        self.mqtt.refuse(int(code))
        self.close()

    def _classify(self, packet: Publish) -> PublishAction | TopicDeniedError | InvalidInputError:
        """What a PUBLISH means, or why it is refused (handled in order by ``_on_publish``)."""
        assert self.auth is not None
        try:
            return classify_publish(packet.topic, self.auth.identity)
        except (TopicDeniedError, InvalidInputError) as exc:
            return exc

    def _on_publish(
        self, packet: Publish, action: PublishAction | TopicDeniedError | InvalidInputError
    ) -> None:
        """A PUBLISH other than storable telemetry: refuse it, or answer twin and methods."""
        assert self.auth is not None
        identity = self.auth.identity
        if isinstance(action, TopicDeniedError | InvalidInputError):
            reason = getattr(action, "reason", "topic_not_allowed")
            self.server.security_event(
                "mqtt.publish", str(reason), identity.key, self.peer, packet.topic[:200]
            )
            self.abort()
            return
        if isinstance(action, Telemetry):  # over the size limit, or it would be in a run
            self.server.security_event(
                "mqtt.publish",
                "message_too_large",
                identity.key,
                self.peer,
                str(len(packet.payload)),
            )
            self.abort()
            return
        if packet.qos == 1 and packet.packet_id is not None:
            self._ack_now(packet.packet_id)
        if isinstance(action, TwinGet):
            self.server.loop.create_task(self._twin_get(action.rid))
        elif isinstance(action, TwinReportedPatch):
            self.server.loop.create_task(self._twin_patch(action.rid, packet.payload))
        elif isinstance(action, MethodResponse):
            self.server.methods.response(action.rid, action.status, packet.payload)

    def _ingest(self, run: list[tuple[Publish, Telemetry]]) -> None:
        """Store telemetry PUBLISHes read together and PUBACK each QoS 1 one once durable.

        One throttle decision, clock reading and counter update serve the whole run; the
        messages and their PUBACKs are the same as one at a time (see ``admit_together``).
        """
        assert self.auth is not None
        server = self.server
        identity = self.auth.identity
        key = identity.key
        device_id, module_id = identity.device_id, identity.module_id
        decisions = server.throttle_together(key, len(run))
        enqueued_at = server.clock()
        started = server.loop.time()
        submit = server.journal.submit
        acks = self._acks
        if acks is None:
            acks = self._acks = deque()
        on_durable = self._on_durable
        counted = size = stored = held = 0
        refusal: tuple[str, str] | None = None
        for (packet, action), decision in zip(run, decisions, strict=False):
            if decision.disconnect:
                refusal = ("throttled", "sustained rate above limit")
                break
            payload = packet.payload
            counted += 1
            size += len(payload)
            message = DeviceMessage(
                device_id=device_id,
                module_id=module_id,
                enqueued_at=enqueued_at,
                source=_TELEMETRY,
                body=payload,
                system_properties=action.system,
                app_properties=action.app,
            )
            try:
                future = submit(message)
            except WellguardError as exc:
                # Overloaded store: no PUBACK; the device retries after reconnecting.
                refusal = ("hub_overloaded", str(exc))
                break
            stored += 1
            if packet.qos == 0 or packet.packet_id is None:
                future.add_done_callback(_consume)  # best effort: a failure is only counted
                continue
            slot = _AckSlot(packet.packet_id, started)
            if decision.delay > 0:
                slot.not_before = started + decision.delay
                held += 1
            acks.append(slot)
            future.add_done_callback(functools.partial(on_durable, slot))
        if counted:
            self.active = True
            server.count(key, CounterName.D2C, counted)
            server.count(key, CounterName.BYTES_IN, size)
        metrics = server.metrics
        if stored:
            metrics.messages_in.inc(stored)
        if held:
            metrics.throttled.inc(held)
        if refusal is not None:
            server.security_event("mqtt.publish", refusal[0], key, self.peer, refusal[1])
            self.abort()

    def _on_durable(self, slot: _AckSlot, done: asyncio.Future[int]) -> None:
        if done.cancelled() or done.exception() is not None:
            # Not durable: never acknowledge; the client will resend.
            self.server.metrics.journal_failures.inc()
            self.abort()
            return
        if slot.not_before:
            delay = slot.not_before - self.server.loop.time()
            if delay > 0:
                self.server.loop.call_later(delay, self._ack_ready, slot)
                return
        self._ack_ready(slot)

    def _ack_now(self, packet_id: int) -> None:
        slot = _AckSlot(packet_id)
        slot.ready = True
        if self._acks is None:
            self._acks = deque()
        self._acks.append(slot)
        self._drain_acks()

    def _ack_ready(self, slot: _AckSlot) -> None:
        slot.ready = True
        self.server.metrics.puback_latency.observe(self.server.loop.time() - slot.started)
        self._drain_acks()
        # A committed batch resolves its futures in one loop turn; send all of this
        # connection's PUBACKs after them as one TLS record and one write, not one each.
        if not self._flush_soon:
            self._flush_soon = True
            self.server.loop.call_soon(self._deferred_flush)

    def _deferred_flush(self) -> None:
        self._flush_soon = False
        self.flush()

    def _drain_acks(self) -> None:
        if self.closed or self.mqtt is None:
            return
        acks = self._acks
        while acks and acks[0].ready:
            self.mqtt.puback(acks.popleft().packet_id)

    def _on_subscribe(self, packet: Subscribe) -> None:
        assert self.auth is not None and self.mqtt is not None
        codes: list[int] = []
        kinds: list[SubscriptionKind] = []
        for topic_filter, qos in packet.subscriptions:
            try:
                kind = classify_subscribe(topic_filter, self.auth.identity)
            except (TopicDeniedError, InvalidInputError) as exc:
                reason = getattr(exc, "reason", "topic_not_allowed")
                self.server.security_event(
                    "mqtt.subscribe",
                    str(reason),
                    self.auth.identity.key,
                    self.peer,
                    topic_filter[:200],
                )
                self.abort()
                return
            granted = min(qos, 1)
            self.subscriptions[kind] = granted
            codes.append(granted)
            kinds.append(kind)
        self.mqtt.suback(packet.packet_id, codes)
        self.flush()
        self.server.subscribed(self, kinds)

    def _on_unsubscribe(self, packet: Unsubscribe) -> None:
        assert self.auth is not None and self.mqtt is not None
        for topic_filter in packet.topic_filters:
            try:
                kind = classify_subscribe(topic_filter, self.auth.identity)
            except (TopicDeniedError, InvalidInputError):
                continue
            self.subscriptions.pop(kind, None)
        self.mqtt.unsuback(packet.packet_id)
        self.server.subscriptions_changed(self)

    # -- twins ------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int) -> int | None:
        """Send a PUBLISH to the device (and flush)."""
        if self.closed or self.mqtt is None:
            return None
        packet_id = self.mqtt.send_publish(topic, payload, qos, now=self.server.loop.time())
        self.flush()
        return packet_id

    async def _twin_get(self, rid: str) -> None:
        assert self.auth is not None
        identity = self.auth.identity
        try:
            twin, _owner = await self.server.run_blocking(
                self.server.registry.get_twin, identity.device_id, identity.module_id
            )
        except WellguardError:
            self.publish(twin_response_topic(404, rid, None), b"", 0)
            return
        body = {
            "desired": {**twin.desired, "$version": twin.desired_version},
            "reported": {**twin.reported, "$version": twin.reported_version},
        }
        self.publish(twin_response_topic(200, rid, None), orjson.dumps(body), 0)

    async def _twin_patch(self, rid: str, payload: bytes) -> None:
        assert self.auth is not None
        identity = self.auth.identity
        try:
            patch = orjson.loads(payload)
            twin = await self.server.run_blocking(
                self.server.registry.apply_reported, identity.device_id, identity.module_id, patch
            )
        except (orjson.JSONDecodeError, InvalidInputError) as exc:
            self.server.security_event(
                "mqtt.twin", "invalid_reported_patch", identity.key, self.peer, str(exc)[:200]
            )
            self.publish(twin_response_topic(400, rid, None), b"", 0)
            return
        except WellguardError:
            self.publish(twin_response_topic(500, rid, None), b"", 0)
            return
        self.server.count(identity.key, CounterName.TWIN_UPDATES)
        self.publish(twin_response_topic(204, rid, twin.reported_version), b"", 0)
        self.server.twin_reported(identity, twin)


def _consume(future: asyncio.Future[int]) -> None:
    if not future.cancelled() and future.exception() is not None:
        _log.warning("a QoS 0 message was not stored: %s", future.exception())

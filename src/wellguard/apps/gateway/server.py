"""The MQTT gateway: listener, session table, live enforcement, C2D, twins and methods.

One ``GatewayServer`` runs in the hub's event loop beside the REST API. Blocking work
(registry lookups, SQL writes) goes to a small thread pool; registry changes arrive from
API threads through ``RegistryNotifier`` and are handed to the loop, where the affected
connections are re-checked with the same decision that admitted them (within one sweep).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import orjson

from wellguard.adapters.sql.hub_state import PresenceUpdate, SqlSessionStore
from wellguard.adapters.tls import TlsServerContext, TlsSession
from wellguard.apps.api.context import SecurityEventLog
from wellguard.apps.gateway.auth import DeviceAuthenticator
from wellguard.apps.gateway.c2ddelivery import C2dDelivery
from wellguard.apps.gateway.connection import DeviceConnection
from wellguard.apps.gateway.events import DeviceEvents
from wellguard.apps.gateway.grouped import GroupedCalls
from wellguard.apps.gateway.methods import DirectMethods
from wellguard.apps.gateway.metrics import GatewayMetrics
from wellguard.apps.gateway.peers import GatewayCluster
from wellguard.apps.gateway.presence import PresenceWriter
from wellguard.apps.gateway.sessions import PersistentSessions
from wellguard.config import MqttConfig
from wellguard.core.c2d import C2dService
from wellguard.core.gateway import (
    MAX_D2C_BYTES,
    AdmissionControl,
    ClaimedIdentity,
    CounterName,
    DeviceCounters,
    DeviceThrottle,
    HubThrottle,
    SubscriptionKind,
    ThrottleDecision,
    desired_patch_topic,
)
from wellguard.core.identity import IpFilterAction, evaluate_ip_filter
from wellguard.core.ingest.ports import IngestJournal
from wellguard.core.mqtt import ConnectionState, ServerConnection
from wellguard.core.registry import Registry
from wellguard.core.registry.events import ChangeKind, RegistryChange
from wellguard.errors import AuthError
from wellguard.model.message import MessageSource
from wellguard.model.security_event import HubSecurityEvent
from wellguard.model.twin import Twin

__all__ = ["GatewayServer"]

_log = logging.getLogger("wellguard.gateway")
T = TypeVar("T")
_SWEEP_SECONDS = 0.5
_C2D_REDELIVERY_SECONDS = 30.0


class GatewayServer:
    """Accepts device connections; ``methods`` serves direct methods to the API."""

    def __init__(
        self,
        *,
        config: MqttConfig,
        registry: Registry,
        journal: IngestJournal,
        c2d: C2dService,
        authenticator: DeviceAuthenticator,
        tls: TlsServerContext,
        security_log: SecurityEventLog,
        presence: PresenceWriter,
        ip_rules: Callable[[], list[Any]],
        ip_default: IpFilterAction,
        clock: Callable[[], datetime],
        metrics: GatewayMetrics,
        session_store: SqlSessionStore,
        routed_sources: Callable[[], Collection[MessageSource]] | None = None,
        rate_per_device: float = 100.0,
        hub_rate: float = 50_000.0,
    ) -> None:
        self.config = config
        self.registry = registry
        self.journal = journal
        self.c2d = c2d
        self.authenticator = authenticator
        self.security_log = security_log
        self.presence = presence
        self.clock = clock
        self.metrics = metrics
        self._tls = tls
        self._ip_rules_source = ip_rules
        self._ip_rules = ip_rules()
        self._ip_default = ip_default
        self._rate = rate_per_device
        self._hub_throttle = HubThrottle(rate_per_s=hub_rate, burst=hub_rate)
        self.loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="wg-gateway")
        self.events = DeviceEvents(journal, clock, routed_sources, self.run_blocking)
        """Connection-state and twin-change events, journaled for the routes taking them."""
        self.c2d_delivery = C2dDelivery(
            c2d,
            run_blocking=self.run_blocking,
            background=self._background,
            count=self.count,
            metrics=metrics,
        )
        """Connection-state and twin-change events, journaled for the routes taking them."""
        self.sessions: dict[str, DeviceConnection] = {}
        self._module_keys: dict[str, set[str]] = {}  # device id -> its modules' session keys
        self.connections: set[DeviceConnection] = set()
        self.persistent = PersistentSessions(
            session_store, background=self._background, clock=clock
        )
        self._throttles: dict[str, DeviceThrottle] = {}
        self._admission = AdmissionControl()
        self.counters = DeviceCounters()
        self.prefetch: GroupedCalls[ClaimedIdentity] = GroupedCalls(
            authenticator.prefetch,
            self.run_blocking,
            on_batch=lambda _size: metrics.auth_read_batches.inc(),
        )
        """Registry reads for connects whose records are not held, batched."""
        self.methods = DirectMethods(self.loop, self.sessions, self.count)
        """Direct methods for the API (``ApiContext.methods``) and device answers."""
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._cluster: GatewayCluster | None = None
        self.identity_epoch = 0
        """Counts registry changes that can affect who may stay connected, as the event
        loop handles them; a connect that saw it move while authenticating is re-checked."""
        registry.notifier.subscribe(self._change_from_thread)

    @property
    def cluster(self) -> GatewayCluster | None:
        """The hub's other gateway processes, when it runs gateway workers."""
        return self._cluster

    @cluster.setter
    def cluster(self, cluster: GatewayCluster | None) -> None:
        self._cluster = cluster
        self.methods.cluster = cluster
        self.persistent.cluster = cluster

    # -- lifecycle ----------------------------------------------------------------------

    async def start(
        self, *, listen: bool = True, port: int | None = None, primary: bool = True
    ) -> int:
        """Listen (unless ``listen`` is false: WebSockets only); returns the bound port.

        ``primary`` is false in gateway workers: the hub process has already marked every
        device disconnected at start. Workers share ``port`` (``SO_REUSEPORT``)."""
        if primary:
            await self.run_blocking(self.presence.reset, self.clock())
        await self.run_blocking(self.persistent.load)
        await self.events.reload()
        self._sweeper = self.loop.create_task(self._sweep_forever())
        if not listen:
            return 0
        self._server = await self.loop.create_server(
            lambda: DeviceConnection(self),
            host=self.config.bind,
            port=self.config.port if port is None else port,
            backlog=4096,
            reuse_address=True,
            reuse_port=not primary,
        )
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, close every connection, flush presence and counters."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.run_blocking(self._flush_state, True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (SQL) off the event loop."""
        return await self.loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _background(self, fn: Callable[..., Any], *args: Any) -> None:
        future = self.loop.run_in_executor(self._executor, functools.partial(fn, *args))
        future.add_done_callback(_log_failure)

    # -- admission ------------------------------------------------------------------------

    def admit(self, ip: str) -> str | None:
        """None when a new connection from ``ip`` may proceed to TLS, else the reason."""
        decision = evaluate_ip_filter(self._ip_rules, ip, self._ip_default)
        if not decision.accepted:
            return "ip_filtered"
        admission = self._admission.check(ip, time.monotonic())
        if not admission.allowed:
            self.metrics.refused.labels(reason=admission.reason or "refused").inc()
            return admission.reason or "refused"
        self.metrics.connects.inc()
        return None

    def admission_failure(self, ip: str) -> None:
        """An authentication failure or protocol violation from ``ip`` (ban accounting)."""
        self._admission.record_failure(ip, time.monotonic())
        if self.cluster is not None:
            self.cluster.admission(ip, False)

    def remote_admission(self, ip: str, flap: bool) -> None:
        """Another gateway process saw a failure (or a flap) from ``ip``: bans are
        hub-wide, whichever process the address's connections land on."""
        now = time.monotonic()
        if flap:
            self._admission.record_flap(ip, now)
        else:
            self._admission.record_failure(ip, now)

    def new_mqtt_session(self, now: float) -> ServerConnection:
        """MQTT state for a new connection (CONNECT due within the configured timeout)."""
        return ServerConnection(
            max_packet_size=MAX_D2C_BYTES + 8192,
            now=now,
            connect_timeout=self.config.connect_timeout_seconds,
        )

    def new_tls_session(self) -> TlsSession:
        """TLS state for a new connection."""
        return TlsSession(self._tls)

    def security_event(
        self, kind: str, reason: str, identity: str | None, source: str, detail: str
    ) -> None:
        """Record a hub security event (off the loop)."""
        self.metrics.refused.labels(reason=reason).inc()
        event = HubSecurityEvent(
            at=self.clock(),
            kind=kind,
            reason=reason,
            identity=identity,
            source=source,
            detail=detail,
        )
        self._background(self.security_log.record, event)

    def count(self, identity_key: str, name: CounterName, n: int = 1) -> None:
        """Add to a per-device counter."""
        self.counters.add(identity_key, name, n, time.time())

    def throttle(self, identity_key: str) -> ThrottleDecision:
        """Rate decision for one more publish from a device."""
        (decision,) = self.throttle_together(identity_key, 1)
        return decision

    def throttle_together(self, identity_key: str, n: int) -> list[ThrottleDecision]:
        """Rate decisions for ``n`` publishes a device sent together, in order, up to
        and including the first one that asks for a disconnect."""
        throttle = self._throttles.get(identity_key)
        if throttle is None:
            throttle = DeviceThrottle(rate_per_s=self._rate, burst=max(1.0, 2 * self._rate))
            self._throttles[identity_key] = throttle
        return throttle.admit_together(time.monotonic(), n, self._hub_throttle)

    # -- sessions -------------------------------------------------------------------------

    def register(self, conn: DeviceConnection, clean_session: bool) -> bool:
        """Make ``conn`` the identity's connection; returns MQTT session-present."""
        assert conn.auth is not None
        identity = conn.auth.identity
        key = identity.key
        previous = self.sessions.get(key)
        if previous is not None and previous is not conn:
            self.security_event(
                "mqtt.connect",
                "duplicate_client_id",
                key,
                previous.peer,
                f"replaced by a new connection from {conn.peer}",
            )
            previous.abort()
            # The session is the client id's, not the connection's: a device that comes
            # back before the hub noticed its old connection die keeps its subscriptions
            # (the device SDK never resubscribes on a clean_session=False reconnect).
            self._keep_session(previous)
        self.sessions[key] = conn
        if identity.module_id:
            self._module_keys.setdefault(identity.device_id, set()).add(key)
        self.connections.add(conn)
        self.metrics.connections.set(len(self.sessions))
        session_present = False
        kept = self.persistent.get(key)
        if clean_session:
            if kept is not None:
                self.persistent.remember(key, None)
        elif kept is not None:
            conn.subscriptions = dict(kept)
            session_present = True
        if self.cluster is not None:
            self.cluster.claimed(key, conn.subscriptions)
        self.count(key, CounterName.CONNECTION_ATTEMPTS)
        self.presence.record(
            PresenceUpdate(identity.device_id, identity.module_id, True, self.clock())
        )
        self.events.emit(
            identity.device_id,
            identity.module_id,
            MessageSource.CONNECTION_STATE,
            {"connectionState": "Connected"},
        )
        self.methods.arrived(key)
        if session_present and SubscriptionKind.C2D in conn.subscriptions:
            self.loop.create_task(self.c2d_delivery.deliver(conn))
        return session_present

    def connection_closed(self, conn: DeviceConnection) -> None:
        """Forget a connection that ended."""
        self.connections.discard(conn)
        if conn.auth is None:
            return
        identity = conn.auth.identity
        key = identity.key
        if self.sessions.get(key) is conn:
            self._forget_session(key)
            self._keep_session(conn)
            if self.cluster is not None:
                self.cluster.released(key)
            self.presence.record(
                PresenceUpdate(identity.device_id, identity.module_id, False, self.clock())
            )
            self.events.emit(
                identity.device_id,
                identity.module_id,
                MessageSource.CONNECTION_STATE,
                {"connectionState": "Disconnected"},
            )
        self.metrics.connections.set(len(self.sessions))
        self.count(key, CounterName.DISCONNECTS)
        if self.loop.time() - conn.connected_at < 10.0:
            self._admission.record_flap(conn.peer_ip, time.monotonic())
            if self.cluster is not None:
                self.cluster.admission(conn.peer_ip, True)

    def _keep_session(self, conn: DeviceConnection) -> None:
        """Remember the subscriptions of a clean_session=False connection that ended (a
        session without any is not kept: most devices only send telemetry)."""
        connect = conn.mqtt.connect if conn.mqtt is not None else None
        if conn.auth is None or connect is None or connect.clean_session:
            return
        self.persistent.remember(conn.auth.identity.key, dict(conn.subscriptions) or None)

    def evict(self, key: str, where: str) -> None:
        """``key`` connected in another gateway process: close its connection here,
        without announcing a disconnection (the device is still connected)."""
        conn = self.sessions.get(key)
        if conn is None:
            return
        self._forget_session(key)
        self.metrics.connections.set(len(self.sessions))
        self.security_event(
            "mqtt.connect",
            "duplicate_client_id",
            key,
            conn.peer,
            f"replaced by a new connection {where}",
        )
        conn.abort()

    def lost_elsewhere(self, key: str) -> None:
        """The worker process holding ``key`` died: the device is disconnected."""
        if key in self.sessions:
            return
        device_id, _, module = key.partition("/")
        module_id = module or None
        self.presence.record(PresenceUpdate(device_id, module_id, False, self.clock()))
        self.events.emit(
            device_id,
            module_id,
            MessageSource.CONNECTION_STATE,
            {"connectionState": "Disconnected"},
        )

    def _forget_session(self, key: str) -> None:
        del self.sessions[key]
        device_id, _, module_id = key.partition("/")
        if module_id:
            keys = self._module_keys.get(device_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._module_keys[device_id]

    def subscriptions_changed(self, conn: DeviceConnection) -> None:
        """A connection subscribed or unsubscribed: a persistent one stores its session
        now, so that it survives even a hub crash."""
        if conn.auth is None:
            return
        key = conn.auth.identity.key
        if self.cluster is not None and self.sessions.get(key) is conn:
            self.cluster.subscriptions(key, conn.subscriptions)
        connect = conn.mqtt.connect if conn.mqtt is not None else None
        if connect is not None and not connect.clean_session:
            self.persistent.remember(key, dict(conn.subscriptions) or None)

    def subscribed(self, conn: DeviceConnection, kinds: Iterable[SubscriptionKind]) -> None:
        """A connection subscribed: start C2D delivery when it asked for it."""
        self.subscriptions_changed(conn)
        if SubscriptionKind.C2D in kinds:
            self.loop.create_task(self.c2d_delivery.deliver(conn))
        if conn.auth is not None:
            self.methods.arrived(conn.auth.identity.key)

    # -- twins ------------------------------------------------------------------

    def twin_reported(self, identity: ClaimedIdentity, twin: Twin) -> None:
        """A device patched reported properties: emit a twin change event."""
        self.events.emit(
            identity.device_id,
            identity.module_id,
            MessageSource.TWIN_CHANGE,
            {
                "version": twin.version,
                "properties": {"reported": {**twin.reported, "$version": twin.reported_version}},
            },
        )

    def _push_desired(self, change: RegistryChange) -> None:
        if change.device_id is None or change.patch is None:
            return
        key = change.device_id + (f"/{change.module_id}" if change.module_id else "")
        conn = self.sessions.get(key)
        if conn is None or SubscriptionKind.TWIN_DESIRED not in conn.subscriptions:
            return
        version = int(change.patch.get("$version", 0))
        qos = conn.subscriptions[SubscriptionKind.TWIN_DESIRED]
        conn.publish(desired_patch_topic(version), orjson.dumps(change.patch), qos)

    # -- registry changes (live enforcement) ---------------------------------------------------

    def _change_from_thread(self, change: RegistryChange) -> None:
        self.loop.call_soon_threadsafe(self._on_change, change)

    def _on_change(self, change: RegistryChange) -> None:
        if change.kind is ChangeKind.DESIRED:
            self._push_desired(change)
            return
        if change.kind is ChangeKind.C2D_QUEUED:
            conn = self.sessions.get(change.device_id or "")
            if conn is not None and SubscriptionKind.C2D in conn.subscriptions:
                self.loop.create_task(self.c2d_delivery.deliver(conn))
            return
        if change.kind is ChangeKind.IP_FILTER:
            self.loop.create_task(self._reload_ip_filter())
            return
        self.identity_epoch += 1
        if change.device_id is None:
            return
        if change.module_id:
            keys = [f"{change.device_id}/{change.module_id}"]
        else:  # the device, and its modules (their credentials hang off the device)
            keys = [change.device_id, *self._module_keys.get(change.device_id, ())]
        for key in keys:
            conn = self.sessions.get(key)
            if conn is not None:
                self.recheck_soon(conn)

    def recheck_soon(self, conn: DeviceConnection) -> None:
        """Re-run a live connection's authentication against the store (live enforcement)."""
        self.loop.create_task(self._recheck(conn))

    async def _recheck(self, conn: DeviceConnection) -> None:
        if conn.auth is None or conn.closed:
            return
        try:
            await self.run_blocking(self.authenticator.recheck, conn.auth)
        except AuthError as exc:
            self.security_event(
                "mqtt.enforcement",
                exc.reason.value,
                conn.auth.identity.key,
                conn.peer,
                "live connection closed after a registry change",
            )
            conn.close()

    async def _reload_ip_filter(self) -> None:
        self._ip_rules = await self.run_blocking(self._ip_rules_source)
        for conn in list(self.connections):
            if not evaluate_ip_filter(self._ip_rules, conn.peer_ip, self._ip_default).accepted:
                identity = conn.auth.identity.key if conn.auth else None
                self.security_event(
                    "mqtt.enforcement", "ip_filtered", identity, conn.peer, "rule added"
                )
                conn.abort()

    def set_ip_default(self, action: IpFilterAction) -> None:
        """Change the default action (config reload)."""
        self._ip_default = action

    # -- periodic work --------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        last_flush = self.loop.time()
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            try:
                self._sweep()
                await self.events.reload()
                if self.loop.time() - last_flush >= 2.0:
                    last_flush = self.loop.time()
                    self._record_activity()
                    await self.run_blocking(self._flush_state, False)
            except Exception:
                _log.exception("gateway sweep failed")

    def _sweep(self) -> None:
        stats = getattr(self.journal, "stats", None)
        if stats is not None:
            self.metrics.journal_batch.set(stats.last_batch_size)
            self.metrics.journal_pending.set(stats.pending)
        if len(self._throttles) > 2 * len(self.sessions) + 1024:
            # Keep buckets of connected devices only: memory stays bounded by the fleet.
            self._throttles = {k: v for k, v in self._throttles.items() if k in self.sessions}
        now = self.loop.time()
        wall = time.time()
        for conn in list(self.connections):
            if conn.closed or conn.mqtt is None:
                continue
            if conn.mqtt.is_expired(now):
                reason = "keepalive_timeout"
                if conn.mqtt.state is ConnectionState.AWAITING_CONNECT:
                    shaking = conn.tls is not None and not conn.tls.handshake_done
                    reason = "tls_handshake_timeout" if shaking else "connect_timeout"
                identity = conn.auth.identity.key if conn.auth else None
                self.security_event("mqtt.connect", reason, identity, conn.peer, "")
                conn.abort()
                continue
            auth = conn.auth
            if auth is not None and auth.token_expiry is not None and auth.token_expiry < wall:
                self.security_event(
                    "mqtt.connect",
                    "expired_token",
                    auth.identity.key,
                    conn.peer,
                    "SAS token expired on a live connection",
                )
                conn.close()
                continue
            if conn.c2d_in_flight:
                for publish in conn.mqtt.redeliver_due(now, _C2D_REDELIVERY_SECONDS):
                    _log.debug("redelivering C2D %s to %s", publish.packet_id, conn.peer)
                conn.flush()

    def _record_activity(self) -> None:
        now = self.clock()
        for conn in self.sessions.values():
            if conn.active and conn.auth is not None:
                conn.active = False
                identity = conn.auth.identity
                self.presence.record(
                    PresenceUpdate(identity.device_id, identity.module_id, None, now)
                )

    def _flush_state(self, everything: bool) -> None:
        self.presence.flush()
        samples = self.counters.drain_all() if everything else self.counters.drain(time.time())
        self.presence.write_counters(samples)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        _log.error("background task failed", exc_info=future.exception())

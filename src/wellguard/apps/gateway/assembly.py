"""Wiring a ``GatewayServer`` to a hub's store, PKI and journal (hub process and workers
build it the same way)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from wellguard.adapters.routing.store import RoutingStore
from wellguard.adapters.sql.c2d_store import SqlC2dStore
from wellguard.adapters.sql.hub_state import (
    SqlCounterStore,
    SqlIpFilterStore,
    SqlPresenceStore,
    SqlSessionStore,
)
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.adapters.tls import TlsServerContext
from wellguard.apps.gateway.auth import DeviceAuthenticator
from wellguard.apps.gateway.metrics import GatewayMetrics
from wellguard.apps.gateway.presence import PresenceWriter
from wellguard.apps.gateway.server import GatewayServer
from wellguard.apps.hub import Hub
from wellguard.core.c2d import C2dService
from wellguard.core.identity import IpFilterAction
from wellguard.core.ingest.ports import IngestJournal
from wellguard.core.registry.events import ChangeKind, RegistryChange

__all__ = ["RevokedSerials", "build_c2d", "build_gateway", "hub_hosts_for"]


class RevokedSerials:
    """Revoked certificate serials, reloaded when a revocation is announced."""

    def __init__(self, load: Callable[[], set[int]]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._serials = load()

    def __call__(self) -> set[int]:
        with self._lock:
            return self._serials

    def on_change(self, change: RegistryChange) -> None:
        """Reload after a revocation."""
        if change.kind is ChangeKind.CERTIFICATE_REVOKED:
            fresh = self._load()
            with self._lock:
                self._serials = fresh


def hub_hosts_for(hostname: str, names: Sequence[str], api_port: int) -> tuple[str, ...]:
    """Every host name a SAS token's resource may carry (with and without the API port)."""
    every = {hostname, *names}
    return tuple(sorted(every | {f"{n}:{api_port}" for n in every}))


def build_c2d(hub: Hub) -> C2dService:
    """The C2D service on the hub's store."""
    store = hub.context.registry.store
    assert isinstance(store, SqlRegistryStore)
    return C2dService(
        SqlC2dStore(store.engine),
        hub.clock,
        hub.context.registry.notifier,
        device_exists=lambda device_id: store.get_device(device_id) is not None,
    )


def build_gateway(
    hub: Hub,
    *,
    journal: IngestJournal,
    c2d: C2dService,
    hub_hosts: Sequence[str],
    metrics: GatewayMetrics,
) -> GatewayServer:
    """A gateway for ``hub`` (call in the event loop that will run it)."""
    config = hub.config
    registry = hub.context.registry
    store = registry.store
    assert isinstance(store, SqlRegistryStore)
    engine = store.engine
    revoked = RevokedSerials(lambda: {c.serial for c in store.revoked_certificates()})
    registry.notifier.subscribe(revoked.on_change)
    tls_files = hub.data.hub_tls(hub.box)
    authenticator = DeviceAuthenticator(
        registry,
        trusted_cas=hub.context.certificates.authority.full_chain,
        revoked_serials=revoked,
        hub_hosts=hub_hosts,
        clock=hub.clock,
        max_ttl_seconds=config.security.sas_max_ttl_seconds,
        clock_skew_seconds=config.security.clock_skew_seconds,
    )
    ip_store = SqlIpFilterStore(engine)
    return GatewayServer(
        config=config.mqtt,
        registry=registry,
        journal=journal,
        c2d=c2d,
        authenticator=authenticator,
        tls=TlsServerContext(tls_files.cert_file, tls_files.key_file, tls_files.key_password),
        security_log=hub.context.security_log,
        presence=PresenceWriter(SqlPresenceStore(engine), SqlCounterStore(engine)),
        ip_rules=ip_store.rules,
        ip_default=IpFilterAction(config.security.ip_filter_default_action),
        clock=hub.clock,
        metrics=metrics,
        session_store=SqlSessionStore(engine),
        routed_sources=RoutingStore(engine).routed_sources,
        rate_per_device=config.mqtt.rate_per_device,
        hub_rate=config.mqtt.hub_rate / max(1, config.mqtt.workers),
    )

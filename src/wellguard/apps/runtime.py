"""``wellguard up``: the hub's listeners and workers in one event loop.

Order of start: durable journal → routing worker → MQTT gateway → HTTPS (REST API,
MQTT over WebSockets, metrics). Stop runs the other way, so nothing acknowledged is
left behind: the gateway stops taking messages before the journal flushes and closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import uvicorn

from wellguard.adapters.journal import JournalRetention, SqliteJournal
from wellguard.adapters.routing import DeliveryContext, EndpointSet, RoutingStore, RoutingWorker
from wellguard.adapters.sql.c2d_store import SqlC2dStore
from wellguard.adapters.sql.hub_state import (
    SqlCounterStore,
    SqlIpFilterStore,
    SqlPresenceStore,
    SqlSessionStore,
)
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.adapters.sql.telemetry_store import TelemetryStore
from wellguard.adapters.tls import TlsServerContext
from wellguard.apps.api import create_app
from wellguard.apps.api.deviceplane import DevicePlane
from wellguard.apps.gateway.auth import DeviceAuthenticator
from wellguard.apps.gateway.metrics import GatewayMetrics
from wellguard.apps.gateway.presence import PresenceWriter
from wellguard.apps.gateway.server import GatewayServer
from wellguard.apps.hub import Hub, bind_https, hub_ssl_context, utcnow
from wellguard.core.c2d import C2dService
from wellguard.core.identity import IpFilterAction
from wellguard.core.registry.events import ChangeKind, RegistryChange
from wellguard.errors import WellguardError

__all__ = ["run", "serve"]

_log = logging.getLogger("wellguard.hub")
_COMPACT_SECONDS = 60.0


class _RevokedSerials:
    """Revoked certificate serials, reloaded when a revocation is announced."""

    def __init__(self, load: Callable[[], set[int]]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._serials = load()

    def __call__(self) -> set[int]:
        with self._lock:
            return self._serials

    def on_change(self, change: RegistryChange) -> None:
        if change.kind is ChangeKind.CERTIFICATE_REVOKED:
            fresh = self._load()
            with self._lock:
                self._serials = fresh


async def serve(hub: Hub, *, announce: Callable[[str], None] = print) -> None:
    """Run the hub until SIGINT/SIGTERM."""
    config = hub.config
    ctx = hub.context
    registry = ctx.registry
    store = registry.store
    assert isinstance(store, SqlRegistryStore)
    engine = store.engine
    https_sock = bind_https(config.api)
    api_port = https_sock.getsockname()[1]
    names = {config.hostname, *ctx.hub_hosts}
    hub_hosts = tuple(sorted(names | {f"{n}:{api_port}" for n in names}))
    ctx = replace(ctx, hub_hosts=hub_hosts)

    journal = SqliteJournal(
        hub.data.root / "journal.db",
        max_batch=config.ingest.max_batch,
        max_delay_s=config.ingest.max_delay_ms / 1000,
        synchronous=config.ingest.synchronous,  # type: ignore[arg-type]
        # Routing must have passed an entry before it goes; the newest 100,000 stay for
        # inspection and replay.
        retention=JournalRetention(keep_last=100_000, consumers=("routing",)),
    )
    await journal.start()
    telemetry = TelemetryStore(engine)
    routing_store = RoutingStore(engine, box=hub.box)
    http = httpx.AsyncClient(timeout=10)
    endpoints = EndpointSet(
        DeliveryContext(
            telemetry=telemetry,
            security_inbox=routing_store,
            http=http,
            export_root=hub.data.root / "exports",
        )
    )
    worker = RoutingWorker(journal, routing_store, endpoints, dead_letters=routing_store)
    worker.start()

    async def compact_forever() -> None:
        while True:
            await asyncio.sleep(_COMPACT_SECONDS)
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, journal.compact, journal.last_seq()
                )
            except WellguardError:
                _log.exception("journal compaction failed")

    compactor = asyncio.get_running_loop().create_task(compact_forever())

    metrics = GatewayMetrics()
    gateway: GatewayServer | None = None
    c2d = C2dService(
        SqlC2dStore(engine),
        hub.clock,
        registry.notifier,
        device_exists=lambda device_id: store.get_device(device_id) is not None,
    )
    ip_store = SqlIpFilterStore(engine)
    if config.mqtt.enabled:
        revoked = _RevokedSerials(lambda: {c.serial for c in store.revoked_certificates()})
        registry.notifier.subscribe(revoked.on_change)
        tls_files = hub.data.hub_tls(hub.box)
        authenticator = DeviceAuthenticator(
            registry,
            trusted_cas=ctx.certificates.authority.full_chain,
            revoked_serials=revoked,
            hub_hosts=hub_hosts,
            clock=hub.clock,
            max_ttl_seconds=config.security.sas_max_ttl_seconds,
            clock_skew_seconds=config.security.clock_skew_seconds,
        )
        gateway = GatewayServer(
            config=config.mqtt,
            registry=registry,
            journal=journal,
            c2d=c2d,
            authenticator=authenticator,
            tls=TlsServerContext(tls_files.cert_file, tls_files.key_file, tls_files.key_password),
            security_log=ctx.security_log,
            presence=PresenceWriter(SqlPresenceStore(engine), SqlCounterStore(engine)),
            ip_rules=ip_store.rules,
            ip_default=IpFilterAction(config.security.ip_filter_default_action),
            clock=hub.clock,
            metrics=metrics,
            session_store=SqlSessionStore(engine),
            rate_per_device=config.mqtt.rate_per_device,
            hub_rate=config.mqtt.hub_rate,
        )
        mqtt_port = await gateway.start()
        ctx = replace(ctx, methods=gateway)
    hub.context = ctx

    def throttle(device_id: str) -> Any:
        assert gateway is not None
        return gateway.throttle(device_id)

    def count(device_id: str, name: Any, n: int = 1) -> None:
        if gateway is not None:
            gateway.count(device_id, name, n)

    def status() -> dict[str, Any]:
        stats = journal.stats
        return {
            "connections": len(gateway.sessions) if gateway else 0,
            "journal": {"lastSeq": journal.last_seq(), "pending": stats.pending},
            "routing": {"lag": worker.stats.lag, "deadLettered": worker.stats.dead_lettered},
        }

    app = create_app(ctx)
    app.state.gateway = gateway
    app.state.routing_store = routing_store
    app.state.routing_worker = worker
    app.state.device_plane = DevicePlane(
        c2d=c2d,
        journal=journal,
        telemetry=telemetry,
        ip_filter=ip_store,
        metrics=metrics.registry,
        throttle=throttle,
        count=count,
        status=status,
    )
    tls = hub.data.hub_tls(hub.box)
    uv_config = uvicorn.Config(
        app,
        ssl_certfile=str(tls.cert_file),
        ssl_keyfile=str(tls.key_file),
        ssl_keyfile_password=tls.key_password,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
        timeout_keep_alive=30,
        ws="wsproto",
        ws_max_size=300 * 1024,
    )
    uv_config.load()
    uv_config.ssl = hub_ssl_context(hub)
    server = uvicorn.Server(uv_config)
    bind = config.api.bind if ":" not in config.api.bind else f"[{config.api.bind}]"
    api_url = f"https://{bind}:{api_port}"
    run_info: dict[str, Any] = {
        "pid": os.getpid(),
        "apiUrl": api_url,
        "apiPort": api_port,
        "bind": config.api.bind,
        "hostname": config.hostname,
        "startedAt": utcnow().isoformat(),
    }
    if gateway is not None:
        run_info["mqttPort"] = mqtt_port
        run_info["mqttBind"] = config.mqtt.bind
    hub.data.write_run_info(run_info)
    announce(f"wellguard hub {config.hostname} is up")
    announce(f"  REST API   {api_url}  (OpenAPI: {api_url}/openapi.json)")
    if gateway is not None:
        announce(
            f"  MQTT/TLS   {config.mqtt.bind}:{mqtt_port}"
            f"  (and WebSockets: {api_url}/$iothub/websocket)"
        )
    announce(f"  trust      {hub.data.root_ca_file}")
    announce(f"  connect    wellguard policy connection-string iothubowner --data {hub.data.root}")
    try:
        await server.serve(sockets=[https_sock])
    finally:
        hub.data.clear_run_info()
        if gateway is not None:
            await gateway.stop()
        compactor.cancel()
        await worker.stop()
        await journal.close()
        await http.aclose()
        hub.close()


def run(hub: Hub) -> None:
    """Run ``serve`` on uvloop when it is installed."""
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    try:
        runner(serve(hub, announce=lambda line: print(line, flush=True)))
    except KeyboardInterrupt:
        sys.exit(0)

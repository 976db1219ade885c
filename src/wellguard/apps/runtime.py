"""``wellguard up``: the hub's listeners and workers in one event loop.

Order of start: durable journal → routing worker → MQTT gateway → HTTPS (REST API,
MQTT over WebSockets, metrics). Stop runs the other way, so nothing acknowledged is
left behind: the gateway stops taking messages before the journal flushes and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import uvicorn
from prometheus_client import CollectorRegistry

from wellguard.adapters.journal import JournalRetention, SqliteJournal
from wellguard.adapters.routing import DeliveryContext, EndpointSet, RoutingStore, RoutingWorker
from wellguard.adapters.sql.hub_state import SqlIpFilterStore
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.adapters.sql.telemetry_store import TelemetryStore
from wellguard.apps.api import create_app
from wellguard.apps.api.deviceplane import DevicePlane
from wellguard.apps.gateway.assembly import build_c2d, build_gateway, hub_hosts_for
from wellguard.apps.gateway.cluster import ClusterHub
from wellguard.apps.gateway.metrics import GatewayMetrics
from wellguard.apps.gateway.pool import WorkerPool, reserve_port
from wellguard.apps.gateway.server import GatewayServer
from wellguard.apps.hub import Hub, bind_https, freeze_startup_objects, hub_ssl_context, utcnow
from wellguard.errors import WellguardError

__all__ = ["run", "serve"]

_log = logging.getLogger("wellguard.hub")
_COMPACT_SECONDS = 60.0


class _HubServer(uvicorn.Server):
    """uvicorn's server, stopped by the hub's own signal handlers.

    uvicorn's handlers re-raise the signal once the server has stopped, which ends the
    process before ``serve`` can stop the gateway (and its workers), routing and the
    journal; here the signal only asks the server to stop, and ``serve`` returns."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop_soon(self) -> None:
        """First signal: stop gracefully; a second one: stop without waiting."""
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


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
    hub_hosts = hub_hosts_for(config.hostname, ctx.hub_hosts, api_port)
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
    served_metrics = metrics.registry
    gateway: GatewayServer | None = None
    cluster: ClusterHub | None = None
    pool: WorkerPool | None = None
    reserved: socket.socket | None = None
    c2d = build_c2d(hub)
    ip_store = SqlIpFilterStore(engine)
    if config.mqtt.enabled:
        gateway = build_gateway(hub, journal=journal, c2d=c2d, hub_hosts=hub_hosts, metrics=metrics)
        if config.mqtt.workers > 1:
            # Workers serve MQTT/TLS; this process keeps MQTT over WebSockets.
            reserved = reserve_port(config.mqtt.bind, config.mqtt.port)
            mqtt_port = reserved.getsockname()[1]
            cluster = ClusterHub(gateway, registry.notifier)
            gateway.cluster = cluster
            await cluster.start()
            await gateway.start(listen=False)
            pool = WorkerPool(
                count=config.mqtt.workers,
                data_dir=hub.data.root,
                cluster=cluster,
                port=mqtt_port,
                api_port=api_port,
                log_level=logging.getLevelName(logging.getLogger("wellguard").getEffectiveLevel()),
            )
            await pool.start()
            served_metrics = CollectorRegistry()
            served_metrics.register(cluster.collector(metrics.registry))
        else:
            mqtt_port = await gateway.start()
        ctx = replace(ctx, methods=gateway.methods)
    hub.context = ctx

    def throttle(device_id: str) -> Any:
        assert gateway is not None
        return gateway.throttle(device_id)

    def count(device_id: str, name: Any, n: int = 1) -> None:
        if gateway is not None:
            gateway.count(device_id, name, n)

    def status() -> dict[str, Any]:
        stats = journal.stats
        connections = len(gateway.sessions) if gateway else 0
        return {
            "connections": connections + (cluster.remote_connections if cluster else 0),
            "gatewayWorkers": len(cluster.workers) if cluster else 0,
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
        metrics=served_metrics,
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
    server = _HubServer(uv_config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.stop_soon)
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
    if pool is not None:
        run_info["gatewayWorkers"] = pool.pids
    freeze_startup_objects()
    hub.data.write_run_info(run_info)
    announce(f"wellguard hub {config.hostname} is up")
    announce(f"  REST API   {api_url}  (OpenAPI: {api_url}/openapi.json)")
    if gateway is not None:
        workers = f", {config.mqtt.workers} worker processes" if pool is not None else ""
        announce(
            f"  MQTT/TLS   {config.mqtt.bind}:{mqtt_port}{workers}"
            f"  (and WebSockets: {api_url}/$iothub/websocket)"
        )
    announce(f"  trust      {hub.data.root_ca_file}")
    announce(f"  connect    wellguard policy connection-string iothubowner --data {hub.data.root}")
    try:
        await server.serve(sockets=[https_sock])
    finally:
        hub.data.clear_run_info()
        if pool is not None:
            await pool.stop()
        if cluster is not None:
            await cluster.stop()
        if reserved is not None:
            reserved.close()
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

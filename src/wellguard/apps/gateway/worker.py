"""A gateway worker process (``mqtt.workers`` > 1): MQTT/TLS device connections for the
hub process that started it. See ``wellguard.apps.gateway.cluster``.

Started by the hub as ``python -m wellguard.apps.gateway.worker --data DIR --index I
--control ADDRESS --port P --api-port A``; it reads the same data folder, configuration
and environment as the hub, listens on the hub's MQTT port with ``SO_REUSEPORT``, and
ends when the hub closes the control channel or sends SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from wellguard.adapters.journal import SqliteJournal
from wellguard.apps.gateway.assembly import build_c2d, build_gateway, hub_hosts_for
from wellguard.apps.gateway.cluster import ClusterClient
from wellguard.apps.gateway.metrics import GatewayMetrics
from wellguard.apps.hub import Hub, freeze_startup_objects, open_hub
from wellguard.apps.logsetup import configure_logging
from wellguard.errors import WellguardError

__all__ = ["main", "serve_worker"]

_log = logging.getLogger("wellguard.worker")


async def serve_worker(hub: Hub, *, index: int, control: str, port: int, api_port: int) -> None:
    """Serve device connections until the hub process lets go."""
    config = hub.config
    journal = SqliteJournal(
        hub.data.root / "journal.db",
        max_batch=config.ingest.max_batch,
        max_delay_s=config.ingest.max_delay_ms / 1000,
        synchronous=config.ingest.synchronous,  # type: ignore[arg-type]
    )
    await journal.start()
    metrics = GatewayMetrics()
    gateway = build_gateway(
        hub,
        journal=journal,
        c2d=build_c2d(hub),
        hub_hosts=hub_hosts_for(config.hostname, hub.context.hub_hosts, api_port),
        metrics=metrics,
    )
    cluster = ClusterClient(
        gateway,
        hub.context.registry.notifier,
        index=index,
        address=control,
        metrics=metrics.registry,
    )
    await cluster.connect()
    gateway.cluster = cluster
    loop = asyncio.get_running_loop()
    channel = loop.create_task(cluster.run())
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, channel.cancel)
    try:
        await gateway.start(port=port, primary=False)
        freeze_startup_objects()
        cluster.ready()
        with contextlib.suppress(asyncio.CancelledError):
            await channel
    finally:
        await gateway.stop()
        cluster.close()
        await journal.close()
        hub.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of a worker process."""
    parser = argparse.ArgumentParser(prog="wellguard-gateway-worker")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        hub = open_hub(args.data, environ=os.environ)
    except WellguardError as exc:
        print(f"gateway worker {args.index}: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(
            serve_worker(
                hub,
                index=args.index,
                control="\0" + args.control.removeprefix("@"),
                port=args.port,
                api_port=args.api_port,
            )
        )


if __name__ == "__main__":
    main()

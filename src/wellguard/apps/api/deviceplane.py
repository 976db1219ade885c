"""What the REST API needs from the device side of the hub (present when the gateway runs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from wellguard.adapters.sql.hub_state import SqlIpFilterStore
from wellguard.adapters.sql.telemetry_store import TelemetryStore
from wellguard.core.c2d import C2dService
from wellguard.core.gateway import ThrottleDecision
from wellguard.core.ingest.ports import IngestJournal

__all__ = ["DevicePlane"]


@dataclass(frozen=True)
class DevicePlane:
    """Device messaging services of a running hub."""

    c2d: C2dService
    journal: IngestJournal
    telemetry: TelemetryStore
    ip_filter: SqlIpFilterStore
    metrics: CollectorRegistry
    throttle: Callable[[str], ThrottleDecision]
    count: Callable[..., None]
    status: Callable[[], dict[str, Any]]

"""Message routing adapters: endpoint deliveries, the routing worker and the SQL store.

Wiring (the hub process)::

    store = RoutingStore(engine, box=box)
    endpoints = EndpointSet(DeliveryContext(
        telemetry=TelemetryStore(engine), security_inbox=store,
        http=httpx.AsyncClient(timeout=10), export_root=data_dir / "exports"))
    worker = RoutingWorker(journal, store, endpoints, dead_letters=store)
    worker.start()          # ... await worker.stop() on shutdown
"""

from __future__ import annotations

from .endpoints import (
    ENDPOINT_KINDS,
    BuiltinEndpoint,
    DeliveryContext,
    DeliveryFailedError,
    EndpointDelivery,
    EndpointFactory,
    EndpointSet,
    JsonLinesEndpoint,
    SecurityInbox,
    SecurityInboxEndpoint,
    TelemetrySink,
    WebhookEndpoint,
    register_endpoint_kind,
)
from .records import encode_body, message_record
from .retry import RetryPolicy
from .store import DeadLetter, RoutingStore
from .worker import (
    CheckpointedJournal,
    DeadLetterSink,
    RoutingStats,
    RoutingTableSource,
    RoutingWorker,
    WorkerConfig,
)

__all__ = [
    "ENDPOINT_KINDS",
    "BuiltinEndpoint",
    "CheckpointedJournal",
    "DeadLetter",
    "DeadLetterSink",
    "DeliveryContext",
    "DeliveryFailedError",
    "EndpointDelivery",
    "EndpointFactory",
    "EndpointSet",
    "JsonLinesEndpoint",
    "RetryPolicy",
    "RoutingStats",
    "RoutingStore",
    "RoutingTableSource",
    "RoutingWorker",
    "SecurityInbox",
    "SecurityInboxEndpoint",
    "TelemetrySink",
    "WebhookEndpoint",
    "WorkerConfig",
    "encode_body",
    "message_record",
    "register_endpoint_kind",
]

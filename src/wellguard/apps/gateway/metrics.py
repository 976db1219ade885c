"""Prometheus metrics of the gateway (served at ``/metrics`` on the HTTPS port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """The gateway's metric families, in their own registry (one per hub process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "wellguard_connections", "Authenticated device connections", registry=r
        )
        self.connects = Counter(
            "wellguard_connects_total", "TCP connections admitted to TLS", registry=r
        )
        self.refused = Counter(
            "wellguard_refusals_total",
            "Refused or closed connections and denied operations",
            ["reason"],
            registry=r,
        )
        self.messages_in = Counter(
            "wellguard_messages_in_total", "Device-to-cloud messages", registry=r
        )
        self.messages_out = Counter(
            "wellguard_messages_out_total", "Cloud-to-device messages sent", registry=r
        )
        self.bytes_in = Counter("wellguard_mqtt_bytes_in_total", "MQTT bytes received", registry=r)
        self.bytes_out = Counter("wellguard_mqtt_bytes_out_total", "MQTT bytes sent", registry=r)
        self.throttled = Counter(
            "wellguard_throttled_total", "PUBACKs held back by throttling", registry=r
        )
        self.journal_failures = Counter(
            "wellguard_journal_failures_total", "Messages not acknowledged: not durable", registry=r
        )
        self.puback_latency = Histogram(
            "wellguard_puback_latency_seconds",
            "Time from PUBLISH to PUBACK (QoS 1)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.journal_batch = Gauge(
            "wellguard_journal_last_batch_size", "Messages in the last commit", registry=r
        )
        self.journal_pending = Gauge(
            "wellguard_journal_pending", "Messages waiting for commit", registry=r
        )

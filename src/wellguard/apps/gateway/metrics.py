"""Prometheus metrics of the gateway (served at ``/metrics`` on the HTTPS port)."""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections.abc import Iterator, Sequence

import prometheus_client.metrics
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["GatewayMetrics", "LoopHistogram"]


class LoopHistogram(Collector):
    """A histogram observed from the event loop only, exposed like prometheus_client's.

    ``Histogram.observe`` takes two locks per observation, which shows in the gateway's
    profile when every PUBACK is observed. Here an observation is a bisect into the bucket
    bounds and two additions, with no lock: call ``observe`` from one thread. ``collect``
    (any thread) yields what a ``Histogram`` with the same name and buckets would: the
    cumulative ``_bucket`` samples up to ``+Inf``, ``_count``, ``_sum`` and ``_created``.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("buckets not in sorted order")
        if bounds and bounds[-1] == math.inf:
            bounds.pop()
        if not bounds:
            raise ValueError("at least one finite bucket is needed")
        self.name = name
        self.documentation = documentation
        self._bounds = tuple(bounds)
        # The ``le`` labels exactly as prometheus_client writes them (untyped helper).
        self._le = [floatToGoString(b) for b in bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        # _counts[i] holds observations in (bounds[i-1], bounds[i]]; the last one is +Inf.
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._created = time.time()

    def observe(self, amount: float) -> None:
        """Count one observation (event-loop thread only)."""
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The histogram as prometheus_client's ``Histogram`` exposes it."""
        # One copy of the counts, so that _count always equals the +Inf bucket; _sum may
        # lag by an observation, as it may with prometheus_client's own histogram.
        counts = list(self._counts)
        family = HistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=list(zip(self._le, map(float, itertools.accumulate(counts)), strict=True)),
            sum_value=self._sum,
        )
        # prometheus_client's switch (PROMETHEUS_DISABLE_CREATED_SERIES) for its own metrics.
        if prometheus_client.metrics._use_created:
            family.add_sample(self.name + "_created", {}, self._created)
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        """The family without samples (for the registry's name-clash check)."""
        yield HistogramMetricFamily(self.name, self.documentation)


class GatewayMetrics:
    """The gateway's metric families, in their own registry (one per hub process).

    The event loop adds to the counters once per read or flush rather than once per
    message, and the PUBACK latency histogram is a ``LoopHistogram`` (no lock)."""

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
        self.puback_latency = LoopHistogram(
            "wellguard_puback_latency_seconds",
            "Time from PUBLISH to PUBACK (QoS 1)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        r.register(self.puback_latency)
        self.auth_reads = Counter(
            "wellguard_auth_registry_reads_total",
            "Connects whose device records were not held in memory and were read",
            registry=r,
        )
        self.auth_read_batches = Counter(
            "wellguard_auth_registry_read_batches_total",
            "Batched registry reads serving those connects",
            registry=r,
        )
        self.journal_batch = Gauge(
            "wellguard_journal_last_batch_size", "Messages in the last commit", registry=r
        )
        self.journal_pending = Gauge(
            "wellguard_journal_pending", "Messages waiting for commit", registry=r
        )

"""The gateway's metrics expose what prometheus_client's own metric types would."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from wellguard.apps.gateway.metrics import GatewayMetrics, LoopHistogram

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
OBSERVED = [0.0, 1e-9, 0.0004, 0.0005, 0.00051, 0.003, 0.02, 0.7, 1, 2.5, 2.6, 40.0]


def _puback_lines(text: str) -> list[str]:
    # The _created timestamps differ by when each object was made.
    text = re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", text)
    return [line for line in text.splitlines() if "wellguard_puback_latency_seconds" in line]


def test_loop_histogram_exposes_like_prometheus_histogram() -> None:
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "wellguard_puback_latency_seconds",
        "Time from PUBLISH to PUBACK (QoS 1)",
        buckets=BUCKETS,
        registry=reference_registry,
    )
    metrics = GatewayMetrics()
    for value in OBSERVED * 3:
        reference.observe(value)
        metrics.puback_latency.observe(value)
    for generate in (generate_latest, generate_openmetrics):
        expected = _puback_lines(generate(reference_registry).decode())
        assert _puback_lines(generate(metrics.registry).decode()) == expected
    assert (
        'wellguard_puback_latency_seconds_bucket{le="+Inf"} 36.0'
        in generate_latest(metrics.registry).decode()
    )


def test_loop_histogram_clashes_like_a_histogram() -> None:
    registry = CollectorRegistry()
    registry.register(LoopHistogram("latency_seconds", "doc", [1.0, math.inf]))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Histogram("latency_seconds", "doc", registry=registry)


def test_loop_histogram_rejects_unsorted_buckets() -> None:
    with pytest.raises(ValueError, match="sorted"):
        LoopHistogram("x_seconds", "doc", [2.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        LoopHistogram("x_seconds", "doc", [math.inf])


def test_every_metric_family_is_documented_in_the_api_reference() -> None:
    reference = (Path(__file__).parents[4] / "docs" / "api.md").read_text()
    families = {metric.name for metric in GatewayMetrics().registry.collect()}
    assert families
    undocumented = sorted(name for name in families if f"`{name}" not in reference)
    assert undocumented == []

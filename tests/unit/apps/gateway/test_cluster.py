"""The gateway workers' control channel: framing, changes, summed metrics."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from wellguard.apps.gateway.cluster import (
    MAX_FRAME_BYTES,
    decode_change,
    encode_change,
    metrics_snapshot,
    read_frame,
    summed_metrics,
)
from wellguard.core.registry.events import ChangeKind, RegistryChange
from wellguard.errors import InvalidInputError


def _read(data: bytes, frames: int = 1) -> list[dict[str, Any] | None]:
    async def scenario() -> list[dict[str, Any] | None]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return [await read_frame(reader) for _ in range(frames)]

    return asyncio.run(scenario())


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def test_frames_follow_each_other_and_end_cleanly() -> None:
    data = _frame(b'{"op": "claim", "key": "d1"}') + _frame(b'{"op": "ready"}')
    assert _read(data, 3) == [{"op": "claim", "key": "d1"}, {"op": "ready"}, None]


def test_a_truncated_frame_is_end_of_stream() -> None:
    assert _read(_frame(b'{"op": "ready"}')[:-3]) == [None]
    assert _read(b"\x00\x00") == [None]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (struct.pack(">I", MAX_FRAME_BYTES + 1), "over the limit"),
        (_frame(b"not json"), "not JSON"),
        (_frame(b"[1, 2]"), "no op"),
        (_frame(b'{"op": 7}'), "no op"),
    ],
)
def test_malformed_frames_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _read(data)


def test_registry_changes_cross_without_the_twin() -> None:
    change = RegistryChange(
        ChangeKind.DESIRED, device_id="d1", module_id="m1", patch={"a": 1, "$version": 4}
    )
    frame = encode_change(change)
    assert decode_change(frame) == change
    identity = RegistryChange(ChangeKind.IDENTITY, device_id="d2")
    assert decode_change(encode_change(identity)) == identity
    with pytest.raises(ValueError, match="nonsense"):
        decode_change({"op": "change", "kind": "nonsense"})
    with pytest.raises(InvalidInputError):
        decode_change({"op": "change", "kind": "identity", "device": 5})


def _family(text: str, name: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name):
            sample, _, value = line.rpartition(" ")
            values[sample] = float(value)
    return values


def test_metrics_of_workers_are_summed_with_the_hub_process() -> None:
    def registry() -> tuple[CollectorRegistry, Counter, Gauge]:
        r = CollectorRegistry()
        refused = Counter("wg_refusals", "refusals", ["reason"], registry=r)
        connections = Gauge("wg_connections", "connections", registry=r)
        return r, refused, connections

    local, refused, connections = registry()
    refused.labels(reason="bad_signature").inc(2)
    connections.set(3)
    worker, worker_refused, worker_connections = registry()
    worker_refused.labels(reason="bad_signature").inc(5)
    worker_refused.labels(reason="banned").inc(1)  # a label set only a worker has seen
    worker_connections.set(10)
    snapshots: list[list[dict[str, Any]]] = [metrics_snapshot(worker)]

    served = CollectorRegistry()
    served.register(summed_metrics(local, lambda: snapshots))
    text = generate_latest(served).decode()
    assert _family(text, "wg_connections") == {"wg_connections": 13.0}
    refusals = _family(text, "wg_refusals_total")
    assert refusals == {
        'wg_refusals_total{reason="bad_signature"}': 7.0,
        'wg_refusals_total{reason="banned"}': 1.0,
    }

"""Per-device counters in time buckets, drained by closed bucket."""

from __future__ import annotations

import pytest

from wellguard.core.gateway import CounterName, CounterSample, DeviceCounters
from wellguard.errors import InvalidInputError

C = CounterName


def test_counter_names() -> None:
    assert [n.value for n in C] == [
        "d2c",
        "c2d",
        "c2d_rejected",
        "twin_updates",
        "method_invokes",
        "connection_attempts",
        "disconnects",
        "auth_failures",
        "bytes_in",
        "bytes_out",
    ]


def test_buckets_and_drain_of_closed_buckets_only() -> None:
    counters = DeviceCounters()
    counters.add("b", C.D2C, 1, 1000.0)
    counters.add("a", C.D2C, 2, 1019.5)
    counters.add("a", C.D2C, 3, 1079.9)
    counters.add("a", C.BYTES_IN, 512, 1080.0)
    counters.add("a", C.D2C, 0, 1141.0)
    assert counters.drain(before=1019.9) == []  # bucket [960, 1020) closes at 1020
    assert counters.drain(before=1020.0) == [
        CounterSample("a", 960.0, C.D2C, 2),
        CounterSample("b", 960.0, C.D2C, 1),
    ]
    assert counters.drain(before=1080.0) == [CounterSample("a", 1020.0, C.D2C, 3)]
    assert counters.drain(before=1080.0) == []
    assert counters.drain_all() == [
        CounterSample("a", 1080.0, C.BYTES_IN, 512),
        CounterSample("a", 1140.0, C.D2C, 0),
    ]
    assert counters.drain_all() == []


def test_string_names_and_custom_bucket_size() -> None:
    counters = DeviceCounters(bucket_seconds=10)
    counters.add("d", "auth_failures", 1, 25.0)  # type: ignore[arg-type]
    counters.add("d", C.AUTH_FAILURES, 1, 29.99)
    assert counters.drain(before=30.0) == [CounterSample("d", 20.0, C.AUTH_FAILURES, 2)]
    assert counters.bucket_start(-0.5) == -10.0
    assert type(counters.bucket_start(25)) is float


def test_series_cap_drops_new_series_until_drained() -> None:
    counters = DeviceCounters(bucket_seconds=60, max_series=3)
    for i in range(5):
        counters.add(f"claimed-{i}", C.AUTH_FAILURES, 1, 0.0)
    counters.add("claimed-0", C.AUTH_FAILURES, 1, 0.0)  # existing series still counts
    assert counters.dropped == 2
    assert [s.value for s in counters.drain(before=60.0)] == [2, 1, 1]
    counters.add("claimed-4", C.AUTH_FAILURES, 1, 60.0)
    assert counters.dropped == 2
    assert len(counters.drain_all()) == 1


def test_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        DeviceCounters(bucket_seconds=0)
    with pytest.raises(InvalidInputError):
        DeviceCounters(max_series=0)
    with pytest.raises(InvalidInputError):
        DeviceCounters().add("d", C.D2C, -1, 0.0)

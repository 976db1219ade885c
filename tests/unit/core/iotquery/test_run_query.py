"""Twin queries end to end over documents shaped like IoT Hub's twins."""

from __future__ import annotations

from typing import Any

import pytest

from wellguard.core.iotquery import parse_condition, parse_query, run_query
from wellguard.core.iotquery.evaluate import evaluate_condition
from wellguard.core.iotquery.resolvers import document_resolver


def twin(device_id: str, site: str | None, fw: str | None, **extra: Any) -> dict[str, Any]:
    tags = {} if site is None else {"site": site}
    reported: dict[str, Any] = {"$version": 3} if fw is None else {"fw": fw, "$version": 3}
    document: dict[str, Any] = {
        "deviceId": device_id,
        "etag": "AAAAAAAAAAE=",
        "version": 4,
        "status": "enabled",
        "connectionState": "Disconnected",
        "lastActivityTime": "2024-05-01T10:00:00Z",
        "tags": tags,
        "properties": {"desired": {"interval": 30, "$version": 2}, "reported": reported},
    }
    document.update(extra)
    return document


TWINS = [
    twin("w1", "permian", "1.0.7", pressure=510),
    twin("w2", "bakken", "1.0.7", pressure=490),
    twin("w3", "permian", "1.0.6", pressure=530),
    twin("w4", None, None, status="disabled"),
    twin("w5", "permian", "1.0.7", pressure="high"),
]


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["deviceId"] for row in rows]


def query(text: str, documents: list[dict[str, Any]] = TWINS) -> list[dict[str, Any]]:
    return run_query(parse_query(text), documents)


def test_star_with_where_returns_matching_documents_in_input_order() -> None:
    rows = query(
        "SELECT * FROM devices WHERE tags.site = 'permian' AND properties.reported.fw = '1.0.7'"
    )
    assert ids(rows) == ["w1", "w5"]
    assert rows[0] == TWINS[0]
    assert rows[0] is not TWINS[0]


def test_star_without_where_returns_everything() -> None:
    assert ids(query("SELECT * FROM devices")) == ["w1", "w2", "w3", "w4", "w5"]


def test_projection_uses_alias_or_last_part_and_skips_undefined() -> None:
    assert query("SELECT deviceId, tags.site AS site FROM devices WHERE status = 'enabled'") == [
        {"deviceId": "w1", "site": "permian"},
        {"deviceId": "w2", "site": "bakken"},
        {"deviceId": "w3", "site": "permian"},
        {"deviceId": "w5", "site": "permian"},
    ]
    assert query("SELECT properties.reported.fw FROM devices WHERE deviceId = 'w4'") == [{}]
    assert query("SELECT properties.desired FROM devices WHERE deviceId = 'w1'") == [
        {"desired": {"interval": 30, "$version": 2}}
    ]


def test_count_group_by_in_order_of_first_appearance() -> None:
    assert query("SELECT COUNT() AS n, tags.site FROM devices GROUP BY tags.site") == [
        {"n": 3, "site": "permian"},
        {"n": 1, "site": "bakken"},
        {"n": 1},  # devices without the tag form their own group, with no site field
    ]
    assert query("SELECT COUNT() AS n FROM devices GROUP BY tags.site") == [
        {"n": 3},
        {"n": 1},
        {"n": 1},
    ]


def test_group_by_several_paths_with_aliases() -> None:
    rows = query(
        "SELECT tags.site AS site, properties.reported.fw AS fw, COUNT() AS n FROM devices"
        " WHERE IS_DEFINED(tags.site) GROUP BY tags.site, properties.reported.fw"
    )
    assert rows == [
        {"site": "permian", "fw": "1.0.7", "n": 2},
        {"site": "bakken", "fw": "1.0.7", "n": 1},
        {"site": "permian", "fw": "1.0.6", "n": 1},
    ]


def test_count_without_group_by_is_one_row_even_when_nothing_matches() -> None:
    assert query("SELECT COUNT() AS n FROM devices") == [{"n": 5}]
    assert query("SELECT COUNT() AS n FROM devices WHERE tags.site = 'nowhere'") == [{"n": 0}]
    assert query("SELECT COUNT() FROM devices", []) == [{"$1": 0}]


def test_numeric_and_ordering_aggregates() -> None:
    rows = query(
        "SELECT SUM(pressure) AS total, AVG(pressure) AS mean, MIN(pressure) AS low,"
        " MAX(deviceId) AS last, COUNT() AS n FROM devices WHERE IS_NUMBER(pressure)"
    )
    assert rows == [{"total": 1530, "mean": 510.0, "low": 490, "last": "w3", "n": 3}]
    # a non-number makes SUM/AVG undefined, mixed types make MIN/MAX undefined
    assert query("SELECT SUM(pressure) AS s, MIN(pressure) AS m, COUNT() AS n FROM devices") == [
        {"n": 5}
    ]
    # of no values: SUM is 0, AVG/MIN/MAX undefined
    assert query("SELECT SUM(nothing) AS s, AVG(nothing) AS a, MAX(nothing) AS m FROM devices") == [
        {"s": 0}
    ]


def test_groups_by_value_not_by_python_type() -> None:
    docs: list[dict[str, Any]] = [
        {"v": 1},
        {"v": 1.0},
        {"v": True},
        {"v": {"a": [1]}},
        {"v": {"a": [1]}},
        {"v": None},
    ]
    assert query("SELECT v, COUNT() AS n FROM devices GROUP BY v", docs) == [
        {"v": 1, "n": 2},
        {"v": True, "n": 1},
        {"v": {"a": [1]}, "n": 2},
        {"v": None, "n": 1},
    ]


def test_top_limits_rows() -> None:
    assert ids(query("SELECT TOP 2 * FROM devices WHERE status = 'enabled'")) == ["w1", "w2"]
    assert query("SELECT TOP 0 deviceId FROM devices") == []
    assert query("SELECT TOP 1 COUNT() AS n, tags.site FROM devices GROUP BY tags.site") == [
        {"n": 3, "site": "permian"}
    ]


def test_modules_query() -> None:
    modules = [
        {"deviceId": "w1", "moduleId": "SecurityAgent", "properties": {"reported": {}}},
        {"deviceId": "w1", "moduleId": "modbus", "properties": {"reported": {}}},
        {"deviceId": "w2", "moduleId": "SecurityAgent", "properties": {"reported": {}}},
    ]
    rows = query(
        "SELECT deviceId FROM devices.modules WHERE moduleId = 'SecurityAgent'"
        " AND deviceId IN ['w1', 'w2']",
        modules,
    )
    assert rows == [{"deviceId": "w1"}, {"deviceId": "w2"}]


def test_jobs_query_may_prefix_paths_with_the_collection() -> None:
    jobs = [
        {"deviceId": "w1", "jobId": "j1", "status": "completed"},
        {"deviceId": "w2", "jobId": "j1", "status": "failed"},
    ]
    rows = query(
        "SELECT devices.jobs.jobId, status FROM devices.jobs WHERE devices.jobs.deviceId = 'w2'",
        jobs,
    )
    assert rows == [{"jobId": "j1", "status": "failed"}]


def test_documents_may_be_any_iterable() -> None:
    assert len(run_query(parse_query("SELECT * FROM devices"), iter(TWINS))) == 5


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("tags.site='permian' AND properties.reported.fw < '1.0.7'", ["w3"]),
        ("*", ["w1", "w2", "w3", "w4", "w5"]),
        ("", ["w1", "w2", "w3", "w4", "w5"]),
        ("status = 'disabled'", ["w4"]),
        (
            "properties.reported.$version = 3 AND properties.desired.interval >= 30",
            ["w1", "w2", "w3", "w4", "w5"],
        ),
        ("NOT IS_DEFINED(properties.reported.fw)", ["w4"]),
        ("STARTSWITH(deviceId, 'w') AND tags.site NIN ['permian']", ["w2"]),
    ],
)
def test_configuration_target_conditions(condition: str, expected: list[str]) -> None:
    expr = parse_condition(condition)
    targeted = [t["deviceId"] for t in TWINS if evaluate_condition(expr, document_resolver(t))]
    assert targeted == expected

"""Condition semantics: three-valued logic, typed comparisons, IN/NIN, arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from wellguard.core.iotquery import (
    FUNCTIONS,
    UNDEFINED,
    FunctionCall,
    QueryFunction,
    UntypedString,
    document_resolver,
    evaluate_condition,
    evaluate_expression,
    parse_condition,
)
from wellguard.errors import QueryError

DOC: dict[str, Any] = {
    "deviceId": "w1",
    "n": 5,
    "f": 5.0,
    "s": "abc",
    "t": True,
    "z": None,
    "o": {"x": 1, "y": [1, "a"]},
    "a": [1, 2, 3],
}


def value_of(text: str, doc: dict[str, Any] = DOC) -> Any:
    return evaluate_expression(parse_condition(text), document_resolver(doc))


def matches(text: str, doc: dict[str, Any] = DOC) -> bool:
    return evaluate_condition(parse_condition(text), document_resolver(doc))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # comparisons with an undefined property are undefined
        ("missing = 1", UNDEFINED),
        ("missing != 1", UNDEFINED),
        ("missing = missing", UNDEFINED),
        # ... and undefined propagates through NOT, AND and OR like SQL UNKNOWN
        ("NOT missing = 1", UNDEFINED),
        ("missing = 1 AND n = 5", UNDEFINED),
        ("missing = 1 AND n = 4", False),
        ("missing = 1 OR n = 5", True),
        ("missing = 1 OR n = 4", UNDEFINED),
        ("NOT (missing = 1 OR n = 4)", UNDEFINED),
        ("NOT (missing = 1 AND n = 4)", True),
        # non-boolean operands of logic are undefined too
        ("s AND true", UNDEFINED),
        ("NOT n", UNDEFINED),
        ("t AND true", True),
        ("NOT t", False),
    ],
)
def test_three_valued_logic(text: str, expected: Any) -> None:
    assert value_of(text) is expected
    assert matches(text) is (expected is True)


def test_neither_a_comparison_nor_its_negation_matches_a_missing_property() -> None:
    assert not matches("tags.site = 'permian'", {"deviceId": "w9"})
    assert not matches("NOT tags.site = 'permian'", {"deviceId": "w9"})
    assert not matches("tags.site != 'permian'", {"deviceId": "w9"})
    assert matches("NOT IS_DEFINED(tags.site)", {"deviceId": "w9"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n = 5", True),
        ("n = 5.0", True),
        ("f = 5", True),
        ("n != 6", True),
        ("n < 5.5", True),
        ("n >= 5", True),
        ("n <> 5", False),
        ("s = 'abc'", True),
        ("s < 'abd'", True),
        ("s > 'ab'", True),
        ("'B' < 'a'", True),  # code-point order, case-sensitive
        ("'10' < '9'", True),  # strings never compare as numbers
        ("t = true", True),
        ("t != false", True),
        ("z = null", True),
        ("o = o", True),
        ("a = a", True),
        ("o.y = o.y", True),
    ],
)
def test_same_type_comparisons(text: str, expected: bool) -> None:
    assert value_of(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "n = '5'",  # number vs string
        "s != 5",
        "t = 1",  # booleans are not numbers
        "z != 'x'",  # null only equals null
        "s = null",
        "t < true",  # booleans, null, objects and arrays have no order
        "z <= null",
        "o < o",
        "a > a",
        "o = a",
    ],
)
def test_different_types_or_unordered_types_are_undefined(text: str) -> None:
    assert value_of(text) is UNDEFINED
    assert not matches(text)


def test_objects_and_arrays_compare_deeply_and_strictly() -> None:
    doc = {"p": {"a": [1, {"b": True}]}, "q": {"a": [1, {"b": True}]}, "r": {"a": [1, {"b": 1}]}}
    assert value_of("p = q", doc) is True
    assert value_of("p = r", doc) is False  # true is not 1, even nested


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s IN ['x', 'abc']", True),
        ("s IN ['x', 1, null]", False),  # other types simply do not match
        ("n IN [5.0]", True),
        ("n IN []", False),
        ("s NIN ['x', 'y']", True),
        ("s NIN ['abc']", False),
        ("s NOT IN ['abc']", False),
        ("missing IN ['x']", UNDEFINED),
        ("missing NIN ['x']", UNDEFINED),  # so NIN does not match a missing property
        ("NOT missing IN ['x']", UNDEFINED),
        ("n + 1 IN [6, 7]", True),
        ("o IN [o]", True),
    ],
)
def test_in_and_nin(text: str, expected: Any) -> None:
    assert value_of(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n + 1", 6),
        ("n - 7", -2),
        ("n * 2.5", 12.5),
        ("n / 2", 2.5),
        ("n % 3", 2),
        ("-n % 3", -2),  # the sign follows the dividend, as in JavaScript
        ("7.5 % 2", 1.5),
        ("-n", -5),
        ("n / 0", UNDEFINED),
        ("n % 0", UNDEFINED),
        ("s + 1", UNDEFINED),
        ("missing + 1", UNDEFINED),
        ("t + 1", UNDEFINED),
        ("1e300 * 1e300", UNDEFINED),
    ],
)
def test_arithmetic(text: str, expected: Any) -> None:
    result = value_of(text)
    assert result == expected if expected is not UNDEFINED else result is UNDEFINED


def test_untyped_strings_read_as_numbers_or_booleans_when_compared_with_them() -> None:
    def resolve(parts: tuple[str, ...], /) -> Any:
        return {"temp": UntypedString("72.5"), "on": UntypedString("True")}.get(parts[0], UNDEFINED)

    def check(text: str) -> Any:
        return evaluate_expression(parse_condition(text), resolve)

    assert check("temp > 50") is True
    assert check("temp = 72.5") is True
    assert check("temp = '72.5'") is True
    assert check("temp > '8'") is False  # string against string stays a string comparison
    assert check("temp + 0.5 = 73") is True
    assert check("on = true") is True
    assert check("on = 1") is UNDEFINED  # 'True' is not a number
    assert check("ABS(temp)") == 72.5
    assert check("temp IN [72.5]") is True


def test_a_literal_condition() -> None:
    assert matches("true")
    assert not matches("false")
    assert not matches("'yes'")
    assert matches("*")


def test_evaluating_a_function_missing_from_the_registry_is_a_query_error() -> None:
    registry = dict(FUNCTIONS)
    registry["ANSWER"] = QueryFunction("ANSWER", 0, 0, lambda: 42)
    expr = parse_condition("\n  ANSWER() = 42", functions=registry)
    assert evaluate_condition(expr, document_resolver({}), functions=registry)
    with pytest.raises(QueryError) as caught:
        evaluate_condition(expr, document_resolver({}))
    assert (caught.value.detail, caught.value.line, caught.value.column) == (
        "unknown function ANSWER",
        2,
        3,
    )
    with pytest.raises(QueryError, match="IS_NULL takes 1 argument"):
        evaluate_condition(FunctionCall("IS_NULL", ()), document_resolver({}))

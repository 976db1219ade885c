"""Every built-in function, undefined propagation, and the extension registry."""

from __future__ import annotations

from typing import Any

import pytest

from wellguard.core.iotquery import (
    FUNCTIONS,
    UNDEFINED,
    QueryFunction,
    document_resolver,
    evaluate_condition,
    evaluate_expression,
    parse_condition,
    register_function,
)

DOC: dict[str, Any] = {
    "s": "Well-Permian",
    "n": -2.5,
    "i": 7,
    "b": True,
    "z": None,
    "o": {"k": 1},
    "a": [1, 2],
}


def value_of(text: str) -> Any:
    return evaluate_expression(parse_condition(text), document_resolver(DOC))


TYPE_CHECKS = {
    # name: the document fields for which it is true (the rest and 'missing' are false)
    "IS_DEFINED": {"s", "n", "i", "b", "z", "o", "a"},
    "IS_NULL": {"z"},
    "IS_BOOL": {"b"},
    "IS_NUMBER": {"n", "i"},
    "IS_STRING": {"s"},
    "IS_OBJECT": {"o"},
    "IS_ARRAY": {"a"},
    "IS_PRIMITIVE": {"s", "n", "i", "b", "z"},
}


@pytest.mark.parametrize("name", sorted(TYPE_CHECKS))
def test_type_checks_are_never_undefined(name: str) -> None:
    for field in [*DOC, "missing"]:
        assert value_of(f"{name}({field})") is (field in TYPE_CHECKS[name]), field


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STARTSWITH(s, 'Well-')", True),
        ("STARTS_WITH(s, 'well-')", False),
        ("ENDSWITH(s, 'mian')", True),
        ("ENDS_WITH(s, 'x')", False),
        ("CONTAINS(s, '-Per')", True),
        ("CONTAINS(s, 'per')", False),
        ("LOWER(s)", "well-permian"),
        ("UPPER(s)", "WELL-PERMIAN"),
        ("LENGTH(s)", 12),
        ("LENGTH('')", 0),
        ("CONCAT(s, '/', 'x')", "Well-Permian/x"),
        ("SUBSTRING(s, 5)", "Permian"),
        ("SUBSTRING(s, 0, 4)", "Well"),
        ("SUBSTRING(s, -3, 2)", "We"),
        ("SUBSTRING(s, 5, -1)", ""),
        ("SUBSTRING(s, 2.0, 100)", "ll-Permian"),
        ("INDEX_OF(s, 'P')", 5),
        ("INDEX_OF(s, 'q')", -1),
        ("ABS(n)", 2.5),
        ("ABS(i)", 7),
        ("CEILING(n)", -2),
        ("FLOOR(n)", -3),
        ("ROUND(n)", -3.0),
        ("ROUND(2.5)", 3.0),
        ("ROUND(2.4)", 2.0),
        ("ROUND(i)", 7),
        ("SQUARE(i)", 49),
        ("SQRT(16)", 4.0),
        ("EXP(0)", 1.0),
        ("POWER(2, 10)", 1024.0),
        ("SIGN(n)", -1),
        ("SIGN(0)", 0),
        ("SIGN(i)", 1),
    ],
)
def test_function_results(text: str, expected: Any) -> None:
    result = value_of(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "text",
    [
        "STARTSWITH(i, 'x')",
        "STARTSWITH(missing, 'x')",
        "CONTAINS(s, 1)",
        "LOWER(i)",
        "LENGTH(a)",
        "CONCAT(s, i)",
        "SUBSTRING(s, 1.5)",
        "SUBSTRING(s, 'a')",
        "SUBSTRING(i, 1)",
        "INDEX_OF(z, 'a')",
        "ABS(s)",
        "ABS(missing)",
        "CEILING(b)",
        "SQRT(-1)",
        "EXP(100000)",
        "POWER(10, 400)",
        "POWER(-8, 0.5)",
        "SQUARE(1e200)",
    ],
)
def test_wrong_types_or_domains_are_undefined(text: str) -> None:
    assert value_of(text) is UNDEFINED


def test_a_registered_function_is_usable_like_a_builtin() -> None:
    registry = dict(FUNCTIONS)
    register_function(
        QueryFunction("IS_WELL", 1, 1, lambda v: isinstance(v, str) and v.startswith("Well")),
        registry=registry,
    )
    expr = parse_condition("is_well(s) AND NOT IS_WELL(i)", functions=registry)
    assert evaluate_condition(expr, document_resolver(DOC), functions=registry)
    assert "IS_WELL" not in FUNCTIONS


def test_a_function_that_raises_arithmetic_errors_yields_undefined() -> None:
    registry = dict(FUNCTIONS)
    register_function(QueryFunction("BOOM", 0, 0, lambda: 1 // 0), registry=registry)
    expr = parse_condition("BOOM()", functions=registry)
    assert evaluate_expression(expr, document_resolver({}), functions=registry) is UNDEFINED


@pytest.mark.parametrize("name", ["lower_case", "COUNT", "MAX", "9LIVES", "BAD-NAME", ""])
def test_register_function_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match=r"function name|aggregate"):
        register_function(QueryFunction(name, 0, 0, lambda: 1), registry={})


def test_both_spellings_of_prefix_functions_exist() -> None:
    assert {"STARTSWITH", "STARTS_WITH", "ENDSWITH", "ENDS_WITH"} <= FUNCTIONS.keys()

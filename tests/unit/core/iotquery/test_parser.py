"""Parser: precedence, paths, match-all, limits, queries and error positions."""

from __future__ import annotations

import inspect
import sys

import pytest

from wellguard.core.iotquery import (
    FUNCTIONS,
    MAX_NESTING,
    Aggregate,
    And,
    Arithmetic,
    ArithmeticOp,
    Comparison,
    ComparisonOp,
    FunctionCall,
    InList,
    Literal,
    Not,
    Or,
    Path,
    Position,
    Projection,
    Query,
    QueryFunction,
    QuerySource,
    Selection,
    document_resolver,
    evaluate_expression,
    parse_condition,
    parse_query,
    render,
)
from wellguard.errors import QueryError


def p(dotted: str) -> Path:
    return Path(tuple(dotted.split(".")))


def eq(path: str, value: object) -> Comparison:
    return Comparison(ComparisonOp.EQ, p(path), Literal(value))  # type: ignore[arg-type]


def error_of(text: str, *, query: bool = False) -> tuple[str, int, int]:
    with pytest.raises(QueryError) as caught:
        (parse_query if query else parse_condition)(text)
    return caught.value.detail, caught.value.line, caught.value.column


# -- conditions -----------------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    assert parse_condition("a = 1 OR b = 2 AND c = 3") == Or(
        (eq("a", 1), And((eq("b", 2), eq("c", 3))))
    )


def test_not_applies_to_the_whole_comparison_and_binds_tighter_than_and() -> None:
    assert parse_condition("NOT a = 1 AND b = 2") == And((Not(eq("a", 1)), eq("b", 2)))
    assert parse_condition("not not a") == Not(Not(p("a")))


def test_parentheses_override_precedence() -> None:
    assert parse_condition("(a = 1 OR b = 2) AND c = 3") == And(
        (Or((eq("a", 1), eq("b", 2))), eq("c", 3))
    )


def test_flat_chains_are_one_n_ary_node() -> None:
    assert parse_condition("a = 1 AND b = 2 AND c = 3") == And((eq("a", 1), eq("b", 2), eq("c", 3)))
    assert parse_condition("a OR b OR c") == Or((p("a"), p("b"), p("c")))
    assert parse_condition("a AND (b AND c)") == And((p("a"), And((p("b"), p("c")))))


def test_arithmetic_precedence_and_left_associativity() -> None:
    add, sub, mul = ArithmeticOp.ADD, ArithmeticOp.SUB, ArithmeticOp.MUL
    assert parse_condition("a + b * c") == Arithmetic(add, p("a"), Arithmetic(mul, p("b"), p("c")))
    assert parse_condition("a - b - c") == Arithmetic(sub, Arithmetic(sub, p("a"), p("b")), p("c"))
    assert parse_condition("$body.p * 2 > 500 + x % 3") == Comparison(
        ComparisonOp.GT,
        Arithmetic(mul, p("$body.p"), Literal(2)),
        Arithmetic(add, Literal(500), Arithmetic(ArithmeticOp.MOD, p("x"), Literal(3))),
    )


def test_unary_minus_folds_into_number_literals() -> None:
    assert parse_condition("x > -5") == Comparison(ComparisonOp.GT, p("x"), Literal(-5))
    assert parse_condition("x > - -2.5") == Comparison(ComparisonOp.GT, p("x"), Literal(2.5))
    assert parse_condition("x > +3") == Comparison(ComparisonOp.GT, p("x"), Literal(3))
    assert parse_condition("-x") == Arithmetic(ArithmeticOp.SUB, Literal(0), p("x"))
    assert parse_condition("a -1") == Arithmetic(ArithmeticOp.SUB, p("a"), Literal(1))


@pytest.mark.parametrize(
    ("text", "op"),
    [("=", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), (">", ">"), ("<=", "<="), (">=", ">=")],
)
def test_comparison_operators(text: str, op: str) -> None:
    assert parse_condition(f"a {text} 1") == Comparison(ComparisonOp(op), p("a"), Literal(1))


def test_literals() -> None:
    assert parse_condition("x = TRUE OR x = false OR x = Null") == Or(
        (eq("x", True), eq("x", False), eq("x", None))
    )
    assert parse_condition('x = "double"') == eq("x", "double")


def test_in_and_nin() -> None:
    items = (Literal("wired"), Literal("wifi"), Literal(-1))
    assert parse_condition("c IN ['wired', 'wifi', -1]") == InList(p("c"), items)
    assert parse_condition("c nin ['wired', 'wifi', -1]") == InList(p("c"), items, negated=True)
    assert parse_condition("c NOT IN ('wired', 'wifi', -1)") == InList(p("c"), items, negated=True)
    assert parse_condition("c IN []") == InList(p("c"), ())


def test_paths() -> None:
    assert parse_condition("properties.reported.$metadata.$lastUpdated") == p(
        "properties.reported.$metadata.$lastUpdated"
    )
    assert parse_condition("tags['my key'][0].and") == Path(("tags", "my key", "0", "and"))
    assert parse_condition('tags ["x"] . y') == Path(("tags", "x", "y"))


def test_function_names_are_case_insensitive() -> None:
    assert parse_condition("is_defined($body.alarm)") == FunctionCall(
        "IS_DEFINED", (p("$body.alarm"),)
    )
    assert parse_condition("StartsWith(deviceId, 'well-')") == FunctionCall(
        "STARTSWITH", (p("deviceId"), Literal("well-"))
    )


@pytest.mark.parametrize("text", ["", "   ", "*", " * ", "\n*\n"])
def test_empty_or_star_condition_matches_all(text: str) -> None:
    assert parse_condition(text) == Literal(True)


def test_configuration_target_condition() -> None:
    assert parse_condition(
        "tags.environment='prod' AND properties.reported.agentVersion < '2.0'"
    ) == (
        And(
            (
                eq("tags.environment", "prod"),
                Comparison(ComparisonOp.LT, p("properties.reported.agentVersion"), Literal("2.0")),
            )
        )
    )


def test_nodes_carry_positions() -> None:
    expr = parse_condition("a = 1 AND\n  STARTSWITH(b, 'x')")
    assert isinstance(expr, And)
    first, second = expr.operands
    assert isinstance(first, Comparison)
    assert isinstance(second, FunctionCall)
    assert first.right.position == Position(1, 5)
    assert second.position == Position(2, 3)
    assert second.args[1].position == Position(2, 17)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a =", ("expected a value, a property path or '(', found end of text", 1, 4)),
        ("a = 1 b", ("expected AND, OR or the end of the condition, found identifier 'b'", 1, 7)),
        ("(a = 1", ("expected ')', found end of text", 1, 7)),
        ("a = 1)", ("expected AND, OR or the end of the condition, found ')'", 1, 6)),
        ("a = 1 = 2", ("comparisons cannot be chained; combine them with AND", 1, 7)),
        ("a IN 'x'", ("expected '[' to start the list, found string \"'x'\"", 1, 6)),
        ("a IN [1, 2", ("expected ',' or ']' in the list, found end of text", 1, 11)),
        ("a. = 1", ("expected a property name after '.', found operator '='", 1, 4)),
        (
            "a[b] = 1",
            (
                "expected a quoted property name or an index inside '[ ]', found identifier 'b'",
                1,
                3,
            ),
        ),
        ("x AND foo(1)", ("unknown function foo", 1, 7)),
        ("STARTSWITH(a)", ("STARTSWITH takes 2 argument(s), not 1", 1, 1)),
        ("  substring('a')", ("SUBSTRING takes 2 to 3 argument(s), not 1", 1, 3)),
        ("CONCAT('a')", ("CONCAT takes at least 2 argument(s), not 1", 1, 1)),
        ("COUNT() > 1", ("aggregate COUNT() is only allowed in SELECT", 1, 1)),
        ("AND a", ("expected a value, a property path or '(', found keyword 'AND'", 1, 1)),
    ],
)
def test_condition_errors(text: str, expected: tuple[str, int, int]) -> None:
    assert error_of(text) == expected


def test_nesting_limit_is_a_query_error_not_a_recursion_error() -> None:
    ok = "(" * MAX_NESTING + "a = 1" + ")" * MAX_NESTING
    assert parse_condition(ok) == eq("a", 1)
    too_deep = "(" * (MAX_NESTING + 1) + "a = 1" + ")" * (MAX_NESTING + 1)
    assert error_of(too_deep) == (
        "expression is nested more than 64 levels deep",
        1,
        MAX_NESTING + 1,
    )
    for text in ("NOT " * 2000 + "a", "-" * 4000 + "1", "LOWER(" * 1000 + "a" + ")" * 1000):
        with pytest.raises(QueryError, match="nested more than 64"):
            parse_condition(text)


def test_long_flat_chains_are_fine_but_deep_arithmetic_is_refused() -> None:
    clauses = " OR ".join(f"deviceId = 'w{i}'" for i in range(350))
    expr = parse_condition(clauses)
    assert isinstance(expr, Or)
    assert len(expr.operands) == 350
    with pytest.raises(QueryError, match="more than 128 operations deep"):
        parse_condition("x = " + " + ".join(["1"] * 200))


def test_custom_function_registry() -> None:
    registry = dict(FUNCTIONS)
    registry["TWICE"] = QueryFunction("TWICE", 1, 1, lambda x: x * 2)
    assert parse_condition("twice(a) = 2", functions=registry) == Comparison(
        ComparisonOp.EQ, FunctionCall("TWICE", (p("a"),)), Literal(2)
    )
    with pytest.raises(QueryError, match="unknown function twice"):
        parse_condition("twice(a) = 2")


def test_non_text_is_refused() -> None:
    with pytest.raises(QueryError):
        parse_condition(None)  # type: ignore[arg-type]
    with pytest.raises(QueryError):
        parse_query(42)  # type: ignore[arg-type]


# -- queries --------------------------------------------------------------------------


def test_star_query_with_where() -> None:
    query = parse_query(
        "SELECT * FROM devices WHERE tags.site = 'permian' AND properties.reported.fw = '1.0.7'"
    )
    assert query == Query(
        Selection(),
        QuerySource.DEVICES,
        And((eq("tags.site", "permian"), eq("properties.reported.fw", "1.0.7"))),
    )
    assert query.select.is_star


def test_projection_query() -> None:
    query = parse_query("SELECT deviceId, tags.site AS site FROM devices")
    assert query.select == Selection(
        (Projection(p("deviceId")), Projection(p("tags.site"), alias="site"))
    )
    assert query.select.output_names() == ("deviceId", "site")


def test_group_by_query() -> None:
    query = parse_query("select count() as n, tags.site from Devices group by tags.site")
    assert query == Query(
        Selection((Projection(Aggregate("COUNT"), "n"), Projection(p("tags.site")))),
        QuerySource.DEVICES,
        group_by=(p("tags.site"),),
    )


def test_aggregates_and_unnamed_columns() -> None:
    query = parse_query("SELECT COUNT(), AVG(properties.reported.p) AS avg, MAX(x.y) FROM devices")
    assert [proj.expr for proj in query.select.projections] == [
        Aggregate("COUNT"),
        Aggregate("AVG", p("properties.reported.p")),
        Aggregate("MAX", p("x.y")),
    ]
    assert query.select.output_names() == ("$1", "avg", "$2")


def test_modules_and_jobs_and_top() -> None:
    modules = parse_query("SELECT * FROM devices.modules WHERE moduleId = 'SecurityAgent'")
    assert modules.source is QuerySource.MODULES
    jobs = parse_query("SELECT TOP 5 * FROM devices.jobs WHERE devices.jobs.deviceId = 'w1'")
    assert (jobs.source, jobs.top) == (QuerySource.JOBS, 5)
    assert jobs.where == eq("devices.jobs.deviceId", "w1")
    top_path = parse_query("SELECT top FROM devices")  # TOP without a number is a path
    assert top_path.select.projections == (Projection(p("top")),)


def test_where_may_use_clause_words_as_property_names() -> None:
    query = parse_query("SELECT * FROM devices WHERE tags.group = 'a' AND select = 1")
    assert query.where == And((eq("tags.group", "a"), eq("select", 1)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("expected SELECT, found end of text", 1, 1)),
        ("SELECT * devices", ("expected FROM, found identifier 'devices'", 1, 10)),
        ("SELECT * FROM things", ("FROM must be devices, devices.modules or devices.jobs", 1, 15)),
        (
            "SELECT * FROM devices.twins",
            ("FROM must be devices, devices.modules or devices.jobs", 1, 15),
        ),
        (
            "SELECT * FROM devices WHERE",
            ("expected a value, a property path or '(', found end of text", 1, 28),
        ),
        (
            "SELECT * FROM devices ORDER BY x",
            ("expected WHERE, GROUP BY or the end of the query, found identifier 'ORDER'", 1, 23),
        ),
        ("SELECT * FROM devices GROUP tags.x", ("expected BY, found identifier 'tags'", 1, 29)),
        (
            "SELECT * FROM devices GROUP BY tags.x",
            ("SELECT * cannot be combined with GROUP BY", 1, 23),
        ),
        (
            "SELECT deviceId, COUNT() FROM devices",
            ("deviceId must be an aggregate or appear in GROUP BY", 1, 8),
        ),
        (
            "SELECT tags.a, COUNT() FROM devices GROUP BY tags.b",
            ("tags.a must be an aggregate or appear in GROUP BY", 1, 8),
        ),
        ("SELECT a.x, b.x FROM devices", ("two SELECT items are both named 'x'; use AS", 1, 17)),
        (
            "SELECT LOWER(x) FROM devices",
            ("SELECT takes property paths or aggregates, not LOWER()", 1, 8),
        ),
        ("SELECT COUNT(x) FROM devices", ("expected ')', found identifier 'x'", 1, 14)),
        ("SELECT SUM() FROM devices", ("expected a property name, found ')'", 1, 12)),
        ("SELECT TOP 1.5 * FROM devices", ("TOP needs a whole number", 1, 12)),
        ("SELECT x AS FROM devices", ("expected FROM, found identifier 'devices'", 1, 18)),
        (
            "SELECT * FROM devices WHERE COUNT() > 1",
            ("aggregate COUNT() is only allowed in SELECT", 1, 29),
        ),
    ],
)
def test_query_errors(text: str, expected: tuple[str, int, int]) -> None:
    assert error_of(text, query=True) == expected


def test_the_deepest_allowed_text_needs_few_stack_frames() -> None:
    text = "LOWER(" * MAX_NESTING + "a" + ")" * MAX_NESTING
    here = len(inspect.stack(0))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(here + 400)  # the parser uses about 5 frames per level
    try:
        expr = parse_condition(text)
        assert parse_condition(render(expr)) == expr
        assert evaluate_expression(expr, document_resolver({"a": "X"})) == "x"
    finally:
        sys.setrecursionlimit(limit)


def test_the_length_limit_applies_to_match_all_text_too() -> None:
    with pytest.raises(QueryError, match="longer than 8192 bytes"):
        parse_condition(" " * 9000 + "*")
    with pytest.raises(QueryError, match="longer than 8192 bytes"):
        parse_query("SELECT * FROM devices WHERE " + "a = 1 OR " * 1000 + "a = 2")

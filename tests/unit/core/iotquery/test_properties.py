"""Properties: hostile text only ever raises QueryError; render and parse round-trip."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wellguard.core.iotquery import (
    And,
    Arithmetic,
    ArithmeticOp,
    Comparison,
    ComparisonOp,
    Expr,
    FunctionCall,
    InList,
    Literal,
    Not,
    Or,
    Path,
    evaluate_condition,
    parse_condition,
    parse_query,
    render,
    run_query,
)
from wellguard.core.iotquery.lexer import KEYWORDS
from wellguard.core.iotquery.render import render_query
from wellguard.core.iotquery.resolvers import document_resolver
from wellguard.errors import QueryError

_SYMBOLS = ["(", ")", "[", "]", ",", ".", "*", "=", "!=", "<>", "<", ">=", "+", "-", "/", "%"]
_VALUES = ["a", "tags", "site", "$body", "$", "'x'", "'", '"', "\\", "1", "2.5e3", "1e999", "\n"]
_WORDS = ["AND", "or", "NOT", "IN", "NIN", "true", "null", "SELECT", "FROM", "devices", "modules"]
_CLAUSES = ["WHERE", "GROUP", "BY", "AS", "TOP", "COUNT", "SUM", "IS_DEFINED", "STARTSWITH"]
FRAGMENTS = [*_SYMBOLS, *_VALUES, *_WORDS, *_CLAUSES]


def parse_either(text: str) -> None:
    for parse in (parse_condition, parse_query):
        with contextlib.suppress(QueryError):
            parse(text)


@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_query_error(text: str) -> None:
    parse_either(text)


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40), st.sampled_from([" ", ""]))
def test_token_soup_raises_only_query_error(pieces: list[str], glue: str) -> None:
    parse_either(glue.join(pieces))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=4000),
    st.sampled_from(["(", "NOT ", "-", "LOWER(", "x IN [", "ABS(-(", "NOT ("]),
    st.sampled_from(["a", "a = 1", ""]),
)
def test_deep_nesting_raises_query_error_not_recursion_error(
    depth: int, opener: str, core: str
) -> None:
    closer = "".join({"(": ")", "[": "]"}.get(c, "") for c in reversed(opener))
    parse_either("SELECT * FROM devices WHERE " + opener * depth + core + closer * depth)
    parse_either(opener * depth + core + closer * depth)


# -- round trip -----------------------------------------------------------------------

FIRST_PARTS = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
    st.from_regex(r"\$[a-z]{1,5}(-[a-z]{1,4})?", fullmatch=True),
).filter(lambda name: name.upper() not in KEYWORDS)
LATER_PARTS = st.one_of(
    st.from_regex(r"[A-Za-z_$][A-Za-z0-9_]{0,6}", fullmatch=True),
    st.sampled_from(["and", "IN", "null", "0", "12", "my key", "", "it's", "a\\b"]),
    st.text(max_size=4),
)
PATHS = st.builds(
    lambda first, rest: Path((first, *rest)), FIRST_PARTS, st.lists(LATER_PARTS, max_size=3)
)
LITERALS = st.builds(
    Literal,
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    ),
)
CALLS = [("IS_DEFINED", 1), ("STARTSWITH", 2), ("CONCAT", 3), ("SUBSTRING", 3), ("LOWER", 1)]


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    many = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(
        st.builds(Comparison, st.sampled_from(list(ComparisonOp)), children, children),
        st.builds(InList, children, st.lists(children, max_size=3).map(tuple), st.booleans()),
        st.builds(And, many),
        st.builds(Or, many),
        st.builds(Not, children),
        st.builds(Arithmetic, st.sampled_from(list(ArithmeticOp)), children, children),
        st.sampled_from(CALLS).flatmap(
            lambda call: st.builds(
                FunctionCall,
                st.just(call[0]),
                st.lists(children, min_size=call[1], max_size=call[1]).map(tuple),
            )
        ),
    )


EXPRESSIONS = st.recursive(st.one_of(LITERALS, PATHS), _extend, max_leaves=12)

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
DOCUMENTS = st.dictionaries(st.one_of(FIRST_PARTS, st.text(max_size=4)), JSON, max_size=5)


@given(EXPRESSIONS)
def test_rendered_conditions_parse_back_to_the_same_tree(expr: Expr) -> None:
    text = render(expr)
    assert parse_condition(text) == expr, text


@given(EXPRESSIONS, DOCUMENTS)
def test_evaluation_never_raises(expr: Expr, document: dict[str, Any]) -> None:
    assert evaluate_condition(expr, document_resolver(document)) in (True, False)


@given(
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    st.lists(st.builds(lambda path, alias: (path, alias), PATHS, st.none()), max_size=3),
    st.one_of(st.none(), EXPRESSIONS),
    st.lists(DOCUMENTS, max_size=4),
)
def test_rendered_queries_parse_back_and_run(
    top: int | None,
    columns: list[tuple[Path, None]],
    where: Expr | None,
    documents: list[dict[str, Any]],
) -> None:
    from wellguard.core.iotquery import Projection, Query, Selection

    names = [path.parts[-1] for path, _ in columns]
    projections = tuple(
        Projection(path, None if names.count(path.parts[-1]) == 1 else f"c{i}")
        for i, (path, _) in enumerate(columns)
    )
    query = Query(Selection(projections), where=where, top=top)
    assert parse_query(render_query(query)) == query
    rows = run_query(query, documents)
    assert len(rows) <= len(documents)

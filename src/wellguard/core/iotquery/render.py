"""Render syntax trees back to query text.

Theory of operation: ``render`` writes the canonical spelling of an expression —
upper-case keywords and function names, single-quoted strings, ``!=`` for ``<>``,
``NIN`` for ``NOT IN`` and only the parentheses the precedence needs — such that
``parse_condition(render(e)) == e`` for any tree the parser can produce. Path parts that
are not plain identifiers are written as ``['key']``; the first part of a path must be
an identifier that is not a reserved word, since the grammar has no other way to write it.
A negative number is written ``-5``, which the parser folds back into the same literal.
"""

from __future__ import annotations

from .ast import (
    And,
    Arithmetic,
    ArithmeticOp,
    Comparison,
    Expr,
    FunctionCall,
    InList,
    Literal,
    Not,
    Or,
    Path,
    Query,
    QuerySource,
)
from .lexer import IDENTIFIER, KEYWORDS

__all__ = ["render", "render_query"]

# Binding strength: a child binding more loosely than its slot requires gets parentheses.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _PRIMARY = range(7)
_ARITHMETIC = {
    ArithmeticOp.ADD: _SUM,
    ArithmeticOp.SUB: _SUM,
    ArithmeticOp.MUL: _PRODUCT,
    ArithmeticOp.DIV: _PRODUCT,
    ArithmeticOp.MOD: _PRODUCT,
}


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if text in ("inf", "-inf", "nan"):
            raise ValueError(f"{value} cannot be written in a query")
        return text if any(c in text for c in ".e") else text + ".0"
    raise TypeError(f"not a literal value: {value!r}")


def _path(path: Path) -> str:
    first, *rest = path.parts
    if not IDENTIFIER.fullmatch(first) or first.upper() in KEYWORDS:
        raise ValueError(f"path cannot start with {first!r}")
    pieces = [first]
    for part in rest:
        pieces.append("." + part if IDENTIFIER.fullmatch(part) else f"[{_string(part)}]")
    return "".join(pieces)


def _strength(expr: Expr) -> int:
    match expr:
        case Or():
            return _OR
        case And():
            return _AND
        case Not():
            return _NOT
        case Comparison() | InList():
            return _COMPARE
        case Arithmetic(op):
            return _ARITHMETIC[op]
    return _PRIMARY


def _child(expr: Expr, at_least: int) -> str:
    text = render(expr)
    return f"({text})" if _strength(expr) < at_least else text


def render(expr: Expr) -> str:
    """The canonical query text of ``expr``."""
    match expr:
        case Literal(value):
            return _literal(value)
        case Path():
            return _path(expr)
        case Or(operands):
            return " OR ".join(_child(operand, _AND) for operand in operands)
        case And(operands):
            return " AND ".join(_child(operand, _NOT) for operand in operands)
        case Not(operand):
            return "NOT " + _child(operand, _NOT)
        case Comparison(op, left, right):
            return f"{_child(left, _SUM)} {op.value} {_child(right, _SUM)}"
        case InList(value, items, negated):
            listed = ", ".join(_child(item, _SUM) for item in items)
            return f"{_child(value, _SUM)} {'NIN' if negated else 'IN'} [{listed}]"
        case Arithmetic(op, left, right):
            strength = _ARITHMETIC[op]
            return f"{_child(left, strength)} {op.value} {_child(right, strength + 1)}"
        case FunctionCall(name, args):
            return f"{name}({', '.join(render(arg) for arg in args)})"
    raise TypeError(f"not an expression: {expr!r}")


def render_query(query: Query) -> str:
    """The canonical text of a twin query."""
    words = ["SELECT"]
    if query.top is not None:
        words.append(f"TOP {query.top}")
    if query.select.is_star:
        words.append("*")
    else:
        items = []
        for projection in query.select.projections:
            expr = projection.expr
            if isinstance(expr, Path):
                item = _path(expr)
            else:
                item = f"{expr.name}({'' if expr.arg is None else _path(expr.arg)})"
            if projection.alias is not None:
                item += f" AS {projection.alias}"
            items.append(item)
        words.append(", ".join(items))
    words.append(f"FROM {QuerySource(query.source).value}")
    if query.where is not None:
        words.append(f"WHERE {render(query.where)}")
    if query.group_by:
        words.append("GROUP BY " + ", ".join(_path(path) for path in query.group_by))
    return " ".join(words)

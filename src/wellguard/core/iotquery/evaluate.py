"""Evaluate a parsed condition against one document or message.

Theory of operation: evaluation is a pure walk of the tree. Property paths are looked up
through a ``Resolver``, a callable from path parts to a value or ``UNDEFINED`` (see
``resolvers``), so the same tree evaluates against a twin document, a routed message or
anything else. Values follow ``values``: comparisons between different JSON types, or
with an undefined property, are undefined.

Logic is three-valued, like SQL's UNKNOWN: ``AND`` is false if any operand is false, true
if all are true, else undefined; ``OR`` dually; ``NOT undefined`` is undefined. A
non-boolean operand of ``AND``/``OR``/``NOT`` counts as undefined. ``evaluate_condition``
is true only when the result is exactly ``true`` — so neither ``a = 1`` nor
``NOT (a = 1)`` matches a document without ``a``.

``x IN [...]`` is true if ``x`` equals an item, false if it equals none (items of another
type simply do not match) and undefined only when ``x`` itself is undefined; ``NIN`` is its
negation, so ``NIN`` also does not match a document lacking the property. Arithmetic
needs two numbers; division or modulo by zero, overflow and non-numbers are undefined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

from wellguard.errors import QueryError

from .ast import (
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
)
from .functions import FUNCTIONS, QueryFunction
from .values import UNDEFINED, Undefined, as_number, compare_values, values_equal

__all__ = ["Resolver", "evaluate_condition", "evaluate_expression"]


class Resolver(Protocol):
    """Looks up a property path; returns ``UNDEFINED`` when there is no such property."""

    def __call__(self, parts: tuple[str, ...], /) -> Any:
        """The value at ``parts``, or ``UNDEFINED``."""


_ORDERINGS = {
    ComparisonOp.LT: lambda c: c < 0,
    ComparisonOp.GT: lambda c: c > 0,
    ComparisonOp.LE: lambda c: c <= 0,
    ComparisonOp.GE: lambda c: c >= 0,
}


def _truth(value: Any) -> bool | Undefined:
    return value if isinstance(value, bool) else UNDEFINED


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return UNDEFINED
    return value


def _arithmetic(op: ArithmeticOp, left: Any, right: Any) -> Any:
    a, b = as_number(left), as_number(right)
    if a is None or b is None:
        return UNDEFINED
    try:
        if op is ArithmeticOp.ADD:
            return _finite(a + b)
        if op is ArithmeticOp.SUB:
            return _finite(a - b)
        if op is ArithmeticOp.MUL:
            return _finite(a * b)
        if b == 0:
            return UNDEFINED
        if op is ArithmeticOp.DIV:
            return _finite(a / b)
        remainder = abs(a) % abs(b)  # the sign follows the dividend, as in JavaScript
        return _finite(-remainder if a < 0 else remainder)
    except ArithmeticError:
        return UNDEFINED


class _Evaluator:
    def __init__(self, resolver: Resolver, functions: Mapping[str, QueryFunction]) -> None:
        self.resolve = resolver
        self.functions = functions

    def value(self, expr: Expr) -> Any:
        match expr:
            case Literal(value):
                return value
            case Path(parts):
                return self.resolve(parts)
            case Comparison(op, left, right):
                return self.comparison(op, self.value(left), self.value(right))
            case And(operands):
                result: bool | Undefined = True
                for operand in operands:
                    truth = _truth(self.value(operand))
                    if truth is False:
                        return False
                    if truth is UNDEFINED:
                        result = UNDEFINED
                return result
            case Or(operands):
                result = False
                for operand in operands:
                    truth = _truth(self.value(operand))
                    if truth is True:
                        return True
                    if truth is UNDEFINED:
                        result = UNDEFINED
                return result
            case Not(operand):
                truth = _truth(self.value(operand))
                return UNDEFINED if truth is UNDEFINED else not truth
            case InList(value_expr, items, negated):
                value = self.value(value_expr)
                if value is UNDEFINED:
                    return UNDEFINED
                found = any(values_equal(value, self.value(item)) is True for item in items)
                return found != negated
            case Arithmetic(op, left, right):
                return _arithmetic(op, self.value(left), self.value(right))
            case FunctionCall():
                return self.call(expr)
        raise TypeError(f"not an expression: {expr!r}")

    @staticmethod
    def comparison(op: ComparisonOp, left: Any, right: Any) -> bool | Undefined:
        if op in (ComparisonOp.EQ, ComparisonOp.NE):
            equal = values_equal(left, right)
            if equal is UNDEFINED:
                return UNDEFINED
            return equal if op is ComparisonOp.EQ else not equal
        order = compare_values(left, right)
        if order is UNDEFINED:
            return UNDEFINED
        return bool(_ORDERINGS[op](order))

    def call(self, expr: FunctionCall) -> Any:
        function = self.functions.get(expr.name)
        position = expr.position
        if function is None:
            raise QueryError(
                f"unknown function {expr.name}", line=position.line, column=position.column
            )
        if not function.accepts(len(expr.args)):
            raise QueryError(
                f"{expr.name} takes {function.arity()} argument(s), not {len(expr.args)}",
                line=position.line,
                column=position.column,
            )
        args = [self.value(arg) for arg in expr.args]
        try:
            return _finite(function.call(*args))
        except (ArithmeticError, ValueError):
            return UNDEFINED


def evaluate_expression(
    expr: Expr, resolver: Resolver, *, functions: Mapping[str, QueryFunction] = FUNCTIONS
) -> Any:
    """The value of ``expr`` (possibly ``UNDEFINED``) with paths looked up by ``resolver``."""
    return _Evaluator(resolver, functions).value(expr)


def evaluate_condition(
    expr: Expr, resolver: Resolver, *, functions: Mapping[str, QueryFunction] = FUNCTIONS
) -> bool:
    """True only when ``expr`` evaluates to ``true`` (undefined and false both fail)."""
    return evaluate_expression(expr, resolver, functions=functions) is True

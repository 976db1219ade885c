"""The registry of scalar functions callable from query and condition text.

Theory of operation: ``FUNCTIONS`` maps an upper-case name to a ``QueryFunction`` (its
arity and a plain callable). The parser consults the registry to reject unknown names and
wrong argument counts with the call's position; the evaluator calls ``call`` with the
already-evaluated arguments, any of which may be ``UNDEFINED``. Built-ins are registered
through ``register_function`` exactly as an extension would be.

A function returns ``UNDEFINED`` when an argument has the wrong type (so the condition does
not match) rather than raising; the evaluator also maps ``ArithmeticError``/``ValueError``
and non-finite float results to ``UNDEFINED``. Only the ``IS_*`` type checks look at
undefined arguments; every other built-in returns ``UNDEFINED`` if given one.

Names follow IoT Hub: twin queries spell ``STARTSWITH``/``ENDSWITH``, message routing
``STARTS_WITH``/``ENDS_WITH``; both spellings are registered. ``SUBSTRING`` and
``INDEX_OF`` count from zero, as in Cosmos DB.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from .ast import AGGREGATES
from .values import UNDEFINED, as_number, is_number, json_type

__all__ = ["FUNCTIONS", "QueryFunction", "register_function"]


@dataclass(frozen=True)
class QueryFunction:
    """A named function with ``min_args``..``max_args`` arguments (``None``: no upper bound)."""

    name: str
    min_args: int
    max_args: int | None
    call: Callable[..., Any]

    def accepts(self, count: int) -> bool:
        """True if the function can be called with ``count`` arguments."""
        return count >= self.min_args and (self.max_args is None or count <= self.max_args)

    def arity(self) -> str:
        """The accepted argument count, in words, for error messages."""
        if self.max_args is None:
            return f"at least {self.min_args}"
        if self.max_args == self.min_args:
            return str(self.min_args)
        return f"{self.min_args} to {self.max_args}"


FUNCTIONS: dict[str, QueryFunction] = {}
_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def register_function(
    function: QueryFunction, *, registry: MutableMapping[str, QueryFunction] = FUNCTIONS
) -> QueryFunction:
    """Add ``function`` to ``registry`` (the global one by default) under its name."""
    name = function.name
    if not _NAME.fullmatch(name):
        raise ValueError(f"function name {name!r} must be an upper-case identifier")
    if name in AGGREGATES:
        raise ValueError(f"{name} is an aggregate and cannot be a scalar function")
    registry[name] = function
    return function


def _type_check(name: str, predicate: Callable[[Any], bool]) -> None:
    register_function(QueryFunction(name, 1, 1, predicate))


_type_check("IS_DEFINED", lambda v: v is not UNDEFINED)
_type_check("IS_NULL", lambda v: v is None)
_type_check("IS_BOOL", lambda v: isinstance(v, bool))
_type_check("IS_NUMBER", is_number)
_type_check("IS_STRING", lambda v: isinstance(v, str))
_type_check("IS_OBJECT", lambda v: isinstance(v, Mapping))
_type_check("IS_ARRAY", lambda v: json_type(v) == "array")
_type_check("IS_PRIMITIVE", lambda v: json_type(v) in ("null", "boolean", "number", "string"))


def _on_strings(name: str, count: int | None, body: Callable[..., Any]) -> None:
    """Register ``body`` called with ``str`` arguments only; anything else is undefined."""

    def call(*args: Any) -> Any:
        if not all(isinstance(arg, str) for arg in args):
            return UNDEFINED
        return body(*(str(arg) for arg in args))

    minimum = count if count is not None else 2
    register_function(QueryFunction(name, minimum, count, call))


for _name in ("STARTSWITH", "STARTS_WITH"):
    _on_strings(_name, 2, str.startswith)
for _name in ("ENDSWITH", "ENDS_WITH"):
    _on_strings(_name, 2, str.endswith)
_on_strings("CONTAINS", 2, lambda s, sub: sub in s)
_on_strings("LOWER", 1, str.lower)
_on_strings("UPPER", 1, str.upper)
_on_strings("LENGTH", 1, len)
_on_strings("INDEX_OF", 2, str.find)
_on_strings("CONCAT", None, lambda *parts: "".join(parts))


def _integral(value: Any) -> int | None:
    number = as_number(value)
    if number is None or (isinstance(number, float) and not number.is_integer()):
        return None
    return int(number)


def _substring(text: Any, start: Any, length: Any = None) -> Any:
    """``SUBSTRING(s, start[, length])``; a negative start counts as 0."""
    begin = _integral(start)
    size = None if length is None else _integral(length)
    if not isinstance(text, str) or begin is None or (length is not None and size is None):
        return UNDEFINED
    begin = max(begin, 0)
    if size is None:
        return str(text)[begin:]
    return str(text)[begin : begin + max(size, 0)]


register_function(QueryFunction("SUBSTRING", 2, 3, _substring))


def _on_numbers(name: str, count: int, body: Callable[..., Any]) -> None:
    """Register ``body`` called with numbers only; anything else is undefined."""

    def call(*args: Any) -> Any:
        numbers: Sequence[int | float | None] = [as_number(arg) for arg in args]
        if any(number is None for number in numbers):
            return UNDEFINED
        return body(*numbers)

    register_function(QueryFunction(name, count, count, call))


def _round_half_away(number: float) -> int | float:
    if isinstance(number, int):
        return number
    return math.copysign(math.floor(abs(number) + 0.5), number)


_on_numbers("ABS", 1, abs)
_on_numbers("CEILING", 1, math.ceil)
_on_numbers("FLOOR", 1, math.floor)
_on_numbers("ROUND", 1, _round_half_away)
_on_numbers("SQUARE", 1, lambda x: x * x)
_on_numbers("SQRT", 1, math.sqrt)
_on_numbers("EXP", 1, math.exp)
_on_numbers("POWER", 2, math.pow)
_on_numbers("SIGN", 1, lambda x: (x > 0) - (x < 0))

"""Value semantics of the query language: undefined, JSON types, equality and ordering.

Theory of operation: IoT Hub evaluates queries like Cosmos DB. A property that is absent
is *undefined* (``UNDEFINED``), which is different from JSON ``null``. Values have a JSON
type (null, boolean, number, string, object, array); ``=``/``!=`` and ordering only ever
compare values of the same type, and anything else (including any comparison with
undefined) is undefined, which makes the whole condition fail to match. Numbers compare
numerically (``1 = 1.0``), strings by code point, booleans and null only by equality,
objects and arrays by deep, type-strict equality.

The one coercion: an ``UntypedString`` is a string from a source that has no types (message
application and system properties, which travel as text). Where a number or boolean is
expected — comparing with a number or boolean, arithmetic, numeric functions — it is read
as one (``'42'`` → 42, ``'TRUE'`` → true); if it does not read, the result is undefined.
Compared with a string, it is just a string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Final

__all__ = [
    "UNDEFINED",
    "Undefined",
    "UntypedString",
    "as_number",
    "compare_values",
    "is_number",
    "json_type",
    "values_equal",
]


class Undefined(Enum):
    """Type of the ``UNDEFINED`` sentinel: the value of a property that is not there."""

    UNDEFINED = "undefined"

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = Undefined.UNDEFINED


class UntypedString(str):
    """A string with no declared type (a message property) that may be read as a number."""

    __slots__ = ()


_NUMERIC_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def is_number(value: object) -> bool:
    """True for an ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_type(value: object) -> str:
    """The JSON type name of ``value``: undefined, null, boolean, number, string, ...."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "array"
    return "other"


def as_number(value: object) -> int | float | None:
    """``value`` as a number if it is one or an ``UntypedString`` that reads as one."""
    if is_number(value):
        return value  # type: ignore[return-value]
    if isinstance(value, UntypedString) and len(value) <= 100 and _NUMERIC_TEXT.fullmatch(value):
        number = float(value) if any(c in value for c in ".eE") else int(value)
        return number if number - number == 0 else None  # rejects inf/nan from '1e999'
    return None


def _as_boolean(value: UntypedString) -> bool | None:
    lowered = value.lower()
    return True if lowered == "true" else False if lowered == "false" else None


def _coerce(left: Any, right: Any) -> tuple[Any, Any]:
    """Read an ``UntypedString`` as the type of the other side, or ``UNDEFINED``."""
    for untyped, other, flip in ((left, right, False), (right, left, True)):
        if isinstance(untyped, UntypedString) and not isinstance(other, str):
            if isinstance(other, bool):
                read: Any = _as_boolean(untyped)
            elif is_number(other):
                read = as_number(untyped)
            else:
                continue
            read = UNDEFINED if read is None else read
            return (other, read) if flip else (read, other)
    return left, right


def values_equal(left: Any, right: Any) -> bool | Undefined:
    """``left = right`` with query semantics: undefined unless both have one JSON type."""
    left, right = _coerce(left, right)
    kind = json_type(left)
    if kind in ("undefined", "other") or kind != json_type(right):
        return UNDEFINED
    return _deep_equal(left, right)


def _deep_equal(left: Any, right: Any) -> bool:
    kind = json_type(left)
    if kind != json_type(right):
        return False
    if kind == "object":
        return left.keys() == right.keys() and all(_deep_equal(left[k], right[k]) for k in left)
    if kind == "array":
        return len(left) == len(right) and all(map(_deep_equal, left, right))
    return bool(left == right)


def compare_values(left: Any, right: Any) -> int | Undefined:
    """-1, 0 or 1 ordering two numbers or two strings; ``UNDEFINED`` for anything else."""
    left, right = _coerce(left, right)
    kind = json_type(left)
    if kind not in ("number", "string") or kind != json_type(right):
        return UNDEFINED
    return -1 if left < right else 1 if left > right else 0

"""The syntax tree of IoT Hub's query language and condition grammar.

Theory of operation: the parser turns text into these frozen dataclasses and nothing else
ever produces text-dependent state, so a condition can be parsed once (when a route or a
configuration is saved) and evaluated many times. Every node carries the ``Position`` of
the token it starts at, for error messages; positions are excluded from equality so that
two parses of equivalent text (see ``render``) compare equal.

``And`` and ``Or`` are n-ary (a flat ``a AND b AND c`` is one node with three operands), so
long chains of clauses do not make the tree deep. ``Arithmetic`` is binary and
left-associative. Unary minus on a number literal is folded into the literal; on anything
else it is ``0 - operand``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "AGGREGATES",
    "Aggregate",
    "And",
    "Arithmetic",
    "ArithmeticOp",
    "Comparison",
    "ComparisonOp",
    "Expr",
    "FunctionCall",
    "InList",
    "Literal",
    "Not",
    "Or",
    "Path",
    "Position",
    "Projection",
    "Query",
    "QuerySource",
    "Selection",
]

AGGREGATES = frozenset({"COUNT", "SUM", "AVG", "MIN", "MAX"})


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in the query text."""

    line: int = 1
    column: int = 1


_NOWHERE = Position()


class ComparisonOp(StrEnum):
    """Comparison operators (``<>`` is read as ``!=``)."""

    EQ = "="
    NE = "!="
    LT = "<"
    GT = ">"
    LE = "<="
    GE = ">="


class ArithmeticOp(StrEnum):
    """Arithmetic operators, as message routing supports them."""

    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MOD = "%"


class QuerySource(StrEnum):
    """The collections a twin query can read (``FROM ...``)."""

    DEVICES = "devices"
    MODULES = "devices.modules"
    JOBS = "devices.jobs"


@dataclass(frozen=True)
class Literal:
    """A string, number, ``true``/``false`` or ``null`` written in the text."""

    value: str | int | float | bool | None
    position: Position = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Path:
    """A property reference such as ``properties.reported.fw`` or ``$body.pressure``."""

    parts: tuple[str, ...]
    position: Position = field(default=_NOWHERE, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("a path needs at least one part")


@dataclass(frozen=True)
class Comparison:
    """``left op right``."""

    op: ComparisonOp
    left: Expr
    right: Expr
    position: Position = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class InList:
    """``value IN [items]``, or ``value NIN [items]`` when ``negated``."""

    value: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    position: Position = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class And:
    """Conjunction of two or more operands."""

    operands: tuple[Expr, ...]
    position: Position = field(default=_NOWHERE, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.operands) < 2:
            raise ValueError("AND needs at least two operands")


@dataclass(frozen=True)
class Or:
    """Disjunction of two or more operands."""

    operands: tuple[Expr, ...]
    position: Position = field(default=_NOWHERE, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.operands) < 2:
            raise ValueError("OR needs at least two operands")


@dataclass(frozen=True)
class Not:
    """Logical negation."""

    operand: Expr
    position: Position = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Arithmetic:
    """``left op right`` on numbers."""

    op: ArithmeticOp
    left: Expr
    right: Expr
    position: Position = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class FunctionCall:
    """A scalar function such as ``IS_DEFINED(x)``; ``name`` is upper-case."""

    name: str
    args: tuple[Expr, ...]
    position: Position = field(default=_NOWHERE, compare=False, repr=False)


Expr = Literal | Path | Comparison | InList | And | Or | Not | Arithmetic | FunctionCall


@dataclass(frozen=True)
class Aggregate:
    """``COUNT()``, ``SUM(path)``, ``AVG(path)``, ``MIN(path)`` or ``MAX(path)`` in a SELECT."""

    name: str
    arg: Path | None = None
    position: Position = field(default=_NOWHERE, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.name not in AGGREGATES:
            raise ValueError(f"unknown aggregate {self.name!r}")
        if (self.name == "COUNT") != (self.arg is None):
            raise ValueError("COUNT takes no argument; the other aggregates take one path")


@dataclass(frozen=True)
class Projection:
    """One item of a SELECT list, with its optional ``AS`` alias."""

    expr: Path | Aggregate
    alias: str | None = None


@dataclass(frozen=True)
class Selection:
    """What a query returns: ``*`` when ``projections`` is empty, else those projections."""

    projections: tuple[Projection, ...] = ()

    @property
    def is_star(self) -> bool:
        """True for ``SELECT *``."""
        return not self.projections

    @property
    def has_aggregates(self) -> bool:
        """True when any projection is an aggregate."""
        return any(isinstance(p.expr, Aggregate) for p in self.projections)

    def output_names(self) -> tuple[str, ...]:
        """Result field names: alias, else last path part, else ``$1``, ``$2``... in order."""
        names: list[str] = []
        unnamed = 0
        for projection in self.projections:
            if projection.alias is not None:
                names.append(projection.alias)
            elif isinstance(projection.expr, Path):
                names.append(projection.expr.parts[-1])
            else:
                unnamed += 1
                names.append(f"${unnamed}")
        return tuple(names)


@dataclass(frozen=True)
class Query:
    """``SELECT [TOP n] selection FROM source [WHERE condition] [GROUP BY paths]``."""

    select: Selection
    source: QuerySource = QuerySource.DEVICES
    where: Expr | None = None
    group_by: tuple[Path, ...] = ()
    top: int | None = None

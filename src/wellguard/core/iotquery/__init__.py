"""IoT Hub's query language: twin queries, message-routing and configuration conditions.

One grammar serves three features: ``POST /devices/query`` (``parse_query`` +
``run_query``), message routes (``parse_condition`` + ``message_resolver``) and the target
conditions of automatic device configurations (``parse_condition`` +
``document_resolver``; empty text or ``*`` targets every device). Everything here is pure:
text in, trees out, trees plus values in, booleans or rows out. Errors in user text are
``QueryError`` with line and column.
"""

from __future__ import annotations

from .ast import (
    Aggregate,
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
    Position,
    Projection,
    Query,
    QuerySource,
    Selection,
)
from .evaluate import Resolver, evaluate_condition, evaluate_expression
from .execute import run_query
from .functions import FUNCTIONS, QueryFunction, register_function
from .lexer import MAX_QUERY_BYTES
from .parser import MAX_NESTING, MAX_TREE_DEPTH, parse_condition, parse_query
from .render import render, render_query
from .resolvers import document_resolver, message_resolver
from .values import UNDEFINED, Undefined, UntypedString

__all__ = [
    "FUNCTIONS",
    "MAX_NESTING",
    "MAX_QUERY_BYTES",
    "MAX_TREE_DEPTH",
    "UNDEFINED",
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
    "QueryFunction",
    "QuerySource",
    "Resolver",
    "Selection",
    "Undefined",
    "UntypedString",
    "document_resolver",
    "evaluate_condition",
    "evaluate_expression",
    "message_resolver",
    "parse_condition",
    "parse_query",
    "register_function",
    "render",
    "render_query",
    "run_query",
]

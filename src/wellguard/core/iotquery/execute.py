"""Run a parsed twin query over documents in memory.

Theory of operation: ``run_query`` is the reference implementation of a query — the store
adapter may translate queries to SQL, but results must equal this function's. Steps:

1. Filter: keep documents whose WHERE condition is exactly true (see ``evaluate``).
   A path may repeat the collection name, as job queries do
   (``devices.jobs.deviceId`` in ``FROM devices.jobs``); that prefix is dropped.
2. Without aggregates: ``SELECT *`` yields a shallow copy of each document; a projection
   list yields ``{name: value}`` with names from ``Selection.output_names`` (alias, else the
   last path part) and undefined values left out. Order is input order.
3. With aggregates or GROUP BY: documents are grouped by the GROUP BY values (undefined is
   a group of its own; ``1`` and ``1.0`` are one group), groups in order of first
   appearance. Without GROUP BY there is exactly one group, even over no documents. Each
   row holds the group's key values and the aggregates: ``COUNT()`` counts documents;
   ``SUM``/``AVG`` use the numbers (undefined values are skipped, any other type makes
   the result undefined; ``SUM`` of nothing is 0, ``AVG`` of nothing undefined);
   ``MIN``/``MAX`` need all values to be numbers or all strings. Undefined results are
   left out of the row.
4. ``TOP n`` keeps the first n rows. Paging is the caller's business.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from .ast import Aggregate, Path, Query, Selection
from .evaluate import Resolver, evaluate_condition
from .functions import FUNCTIONS, QueryFunction
from .resolvers import walk_document
from .values import UNDEFINED, is_number, json_type

__all__ = ["run_query"]


def _source_resolver(document: Mapping[str, Any], prefix: tuple[str, ...]) -> Resolver:
    def resolve(parts: tuple[str, ...], /) -> Any:
        if len(parts) > len(prefix) and parts[: len(prefix)] == prefix:
            parts = parts[len(prefix) :]
        return walk_document(document, parts)

    return resolve


def _group_key(value: Any) -> Hashable:
    """A hashable stand-in for a JSON value, equal exactly when the values group together."""
    kind = json_type(value)
    if kind == "object":
        return (kind, tuple(sorted((str(k), _group_key(v)) for k, v in value.items())))
    if kind == "array":
        return (kind, tuple(_group_key(v) for v in value))
    if kind in ("undefined", "null"):
        return (kind,)
    if kind == "other":
        return (kind, id(value))
    return (kind, value)


def _aggregate(aggregate: Aggregate, resolvers: list[Resolver]) -> Any:
    if aggregate.arg is None:  # COUNT()
        return len(resolvers)
    values = [resolve(aggregate.arg.parts) for resolve in resolvers]
    values = [value for value in values if value is not UNDEFINED]
    name = aggregate.name
    if name in ("SUM", "AVG"):
        if not all(is_number(value) for value in values):
            return UNDEFINED
        if name == "SUM":
            return sum(values)
        return sum(values) / len(values) if values else UNDEFINED
    kinds = {json_type(value) for value in values}
    if len(kinds) != 1 or kinds - {"number", "string"}:
        return UNDEFINED
    return min(values) if name == "MIN" else max(values)


def _project(selection: Selection, resolve: Resolver) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, projection in zip(selection.output_names(), selection.projections, strict=True):
        assert isinstance(projection.expr, Path)  # aggregates go through _grouped_rows
        value = resolve(projection.expr.parts)
        if value is not UNDEFINED:
            row[name] = value
    return row


def _grouped_rows(query: Query, resolvers: list[Resolver]) -> list[dict[str, Any]]:
    groups: dict[tuple[Hashable, ...], list[Resolver]] = {}
    keys: dict[tuple[Hashable, ...], tuple[Any, ...]] = {}
    for resolve in resolvers:
        values = tuple(resolve(path.parts) for path in query.group_by)
        key = tuple(_group_key(value) for value in values)
        groups.setdefault(key, []).append(resolve)
        keys.setdefault(key, values)
    if not query.group_by and not groups:
        groups[()] = []
        keys[()] = ()
    selection = query.select
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = {}
        for name, projection in zip(selection.output_names(), selection.projections, strict=True):
            expr = projection.expr
            if isinstance(expr, Aggregate):
                value = _aggregate(expr, members)
            else:
                value = keys[key][query.group_by.index(expr)]
            if value is not UNDEFINED:
                row[name] = value
        rows.append(row)
    return rows


def run_query(
    query: Query,
    documents: Iterable[Mapping[str, Any]],
    *,
    functions: Mapping[str, QueryFunction] = FUNCTIONS,
) -> list[dict[str, Any]]:
    """Filter, project, group and limit ``documents`` as ``query`` says; order is stable."""
    prefix = tuple(query.source.value.split("."))
    matched: list[tuple[Mapping[str, Any], Resolver]] = []
    grouped = query.select.has_aggregates or bool(query.group_by)
    streaming_top = None if grouped else query.top
    for document in documents:
        resolve = _source_resolver(document, prefix)
        if query.where is None or evaluate_condition(query.where, resolve, functions=functions):
            matched.append((document, resolve))
            if streaming_top is not None and len(matched) >= streaming_top:
                break
    selection = query.select
    if grouped:
        rows = _grouped_rows(query, [resolve for _, resolve in matched])
    elif selection.is_star:
        rows = [dict(document) for document, _ in matched]
    else:
        rows = [_project(selection, resolve) for _, resolve in matched]
    return rows if query.top is None else rows[: query.top]

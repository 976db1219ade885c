"""Printing command results: stable JSON for scripts, rich tables for people."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

__all__ = ["emit"]


def emit(
    data: Any,
    fmt: str,
    *,
    columns: Sequence[tuple[str, str]] | None = None,
    title: str | None = None,
) -> None:
    """Print ``data`` as JSON or as a table of ``columns`` (key, heading)."""
    if fmt == "json":
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    rows = data if isinstance(data, list) else [data]
    if columns is None:
        keys = [k for k in (rows[0] if rows else {}) if not isinstance(rows[0][k], dict | list)]
        columns = [(k, k) for k in keys]
    table = Table(title=title, show_lines=False)
    for _key, heading in columns:
        table.add_column(heading, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(_dig(row, key)) for key, _ in columns])
    Console(soft_wrap=False, width=160).print(table)


def _dig(row: Any, key: str) -> Any:
    value = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)

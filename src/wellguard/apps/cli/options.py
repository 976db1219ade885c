"""Options shared by every command: the data folder and the output format."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from wellguard.adapters.datadir import DataDir
from wellguard.apps.cli.client import HubClient

__all__ = ["data_option", "format_option", "hub_client", "with_client"]

F = TypeVar("F", bound=Callable[..., Any])


def data_option(func: F) -> F:
    """``--data DIR`` (or ``WELLGUARD_DATA``; default ``./wg-data``)."""
    return click.option(
        "--data",
        "data_dir",
        envvar="WELLGUARD_DATA",
        default="./wg-data",
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Data folder of the hub (env WELLGUARD_DATA).",
    )(func)


def format_option(func: F) -> F:
    """``--format json|table``."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["json", "table"]),
        default="table",
        show_default=True,
        help="Output format; json is stable for scripts.",
    )(func)


def hub_client(data_dir: Path) -> HubClient:
    """A client for the running hub of ``data_dir``."""
    return HubClient(DataDir(data_dir))


def with_client(func: Callable[..., Any]) -> Callable[..., Any]:
    """Replace ``data_dir`` by a connected ``client`` argument, closed afterwards."""

    @functools.wraps(func)
    def wrapper(*args: Any, data_dir: Path, **kwargs: Any) -> Any:
        client = hub_client(data_dir)
        try:
            return func(*args, client=client, **kwargs)
        finally:
            client.close()

    return wrapper

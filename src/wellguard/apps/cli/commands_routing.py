"""Message routing commands: endpoints, routes, fallback, condition tests, dead letters
(all through the hub's REST API, ``/routing/...``)."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from wellguard.apps.cli.client import HubClient
from wellguard.apps.cli.options import data_option, format_option, with_client
from wellguard.apps.cli.output import emit
from wellguard.model.message import MessageSource

__all__ = ["COMMANDS"]

ENDPOINT_COLUMNS = [("name", "endpoint"), ("kind", "kind"), ("url", "url"), ("path", "path")]
ROUTE_COLUMNS = [
    ("name", "route"),
    ("source", "source"),
    ("condition", "condition"),
    ("endpointNames", "endpoints"),
    ("isEnabled", "enabled"),
]
DEAD_LETTER_COLUMNS = [
    ("id", "id"),
    ("at", "at"),
    ("endpoint", "endpoint"),
    ("seq", "seq"),
    ("message.deviceId", "device"),
    ("reason", "reason"),
]
SOURCES = [s.value for s in MessageSource]
JSON_UTF8 = {"contentType": "application/json", "contentEncoding": "utf-8"}


def _pairs(values: tuple[str, ...], sep: str, option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise click.BadParameter(f"expected KEY{sep}VALUE, got {item!r}", param_hint=option)
        result[key.strip()] = value.strip() if sep == ":" else value
    return result


@click.group()
def route() -> None:
    """Message routing: send device messages to webhooks, files or the built-in store."""


# -- endpoints --------------------------------------------------------------------------


@route.group("endpoint")
def endpoint() -> None:
    """Where routed messages go."""


@endpoint.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(["webhook", "jsonl"]), required=True)
@click.option("--url", help="Webhook URL (https; http only to loopback with --allow-http).")
@click.option("--header", "headers", multiple=True, metavar="K:V", help="Webhook header.")
@click.option(
    "--header-env",
    "header_envs",
    multiple=True,
    metavar="K:ENVVAR",
    help="Webhook header whose value is read from an environment variable "
    "(keeps secrets out of the command line).",
)
@click.option("--allow-http", is_flag=True, help="Permit http:// to a loopback host (testing).")
@click.option("--path", help="JSON Lines file, relative to the hub's export folder.")
@data_option
@format_option
@with_client
def endpoint_add(
    client: HubClient,
    name: str,
    kind: str,
    url: str | None,
    headers: tuple[str, ...],
    header_envs: tuple[str, ...],
    allow_http: bool,
    path: str | None,
    fmt: str,
) -> None:
    """Create or replace an endpoint."""
    body: dict[str, Any] = {"kind": kind}
    if kind == "webhook":
        if url is None or path is not None:
            raise click.UsageError("a webhook endpoint needs --url (and no --path)")
        values = _pairs(headers, ":", "--header")
        for key, variable in _pairs(header_envs, ":", "--header-env").items():
            if variable not in os.environ:
                raise click.BadParameter(f"{variable} is not set", param_hint="--header-env")
            values[key] = os.environ[variable]
        body |= {"url": url, "headers": values, "allowHttp": allow_http}
    else:
        if path is None or url is not None or headers or header_envs or allow_http:
            raise click.UsageError("a jsonl endpoint needs --path (and no webhook options)")
        body["path"] = path
    doc = client.json("PUT", client.path("routing", "endpoints", name), json=body)
    emit(doc, fmt, columns=ENDPOINT_COLUMNS)


@endpoint.command("list")
@data_option
@format_option
@with_client
def endpoint_list(client: HubClient, fmt: str) -> None:
    """List endpoints (header values are never shown)."""
    emit(client.json("GET", "/routing/endpoints"), fmt, columns=ENDPOINT_COLUMNS)


@endpoint.command("remove")
@click.argument("name")
@data_option
@with_client
def endpoint_remove(client: HubClient, name: str) -> None:
    """Delete an endpoint that no route uses."""
    client.request("DELETE", client.path("routing", "endpoints", name))
    click.echo(f"endpoint {name} removed")


# -- routes ---------------------------------------------------------------------------


@route.command("add")
@click.argument("name")
@click.option("--source", type=click.Choice(SOURCES), default="DeviceMessages", show_default=True)
@click.option("--condition", default="true", show_default=True, help="IoT Hub routing query.")
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    required=True,
    help="Endpoint name (repeat for several; 'builtin' is the hub's telemetry store).",
)
@click.option("--disabled", is_flag=True, help="Store the route switched off.")
@data_option
@format_option
@with_client
def route_add(
    client: HubClient,
    name: str,
    source: str,
    condition: str,
    endpoints: tuple[str, ...],
    disabled: bool,
    fmt: str,
) -> None:
    """Create or replace a route."""
    body = {
        "source": source,
        "condition": condition,
        "endpointNames": list(endpoints),
        "isEnabled": not disabled,
    }
    doc = client.json("PUT", client.path("routing", "routes", name), json=body)
    emit(doc, fmt, columns=ROUTE_COLUMNS)


@route.command("list")
@data_option
@format_option
@with_client
def route_list(client: HubClient, fmt: str) -> None:
    """List routes."""
    emit(client.json("GET", "/routing/routes"), fmt, columns=ROUTE_COLUMNS)


@route.command("remove")
@click.argument("name")
@data_option
@with_client
def route_remove(client: HubClient, name: str) -> None:
    """Delete a route."""
    client.request("DELETE", client.path("routing", "routes", name))
    click.echo(f"route {name} removed")


@route.command("fallback")
@click.argument("state", type=click.Choice(["on", "off"]), required=False)
@data_option
@format_option
@with_client
def route_fallback(client: HubClient, state: str | None, fmt: str) -> None:
    """Show, or turn on/off, the fallback route (unmatched telemetry to 'builtin')."""
    if state is None:
        doc = client.json("GET", "/routing/fallback")
    else:
        doc = client.json("PUT", "/routing/fallback", json={"isEnabled": state == "on"})
    emit(doc, fmt, columns=ROUTE_COLUMNS)


@route.command("test")
@click.option("--condition", help="Also evaluate this (unsaved) condition.")
@click.option("--body", "body_text", help="Message body as JSON.")
@click.option("--prop", "props", multiple=True, metavar="K=V", help="Application property.")
@click.option("--sys", "sys_props", multiple=True, metavar="K=V", help="System property.")
@click.option("--device", "device_id", default="test-device", show_default=True)
@click.option("--module", "module_id")
@click.option("--source", type=click.Choice(SOURCES), default="DeviceMessages", show_default=True)
@data_option
@format_option
@with_client
def route_test(
    client: HubClient,
    condition: str | None,
    body_text: str | None,
    props: tuple[str, ...],
    sys_props: tuple[str, ...],
    device_id: str,
    module_id: str | None,
    source: str,
    fmt: str,
) -> None:
    """Show where a sample message would go. With --body, contentType/contentEncoding
    default to application/json and utf-8 (override with --sys); real devices must set
    them for $body conditions to work."""
    sample: dict[str, Any] = {
        "source": source,
        "deviceId": device_id,
        "appProperties": _pairs(props, "=", "--prop"),
        "systemProperties": _pairs(sys_props, "=", "--sys"),
    }
    if module_id is not None:
        sample["moduleId"] = module_id
    if body_text is not None:
        try:
            sample["body"] = json.loads(body_text)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--body") from None
        sample["systemProperties"] = {**JSON_UTF8, **sample["systemProperties"]}
    if condition is not None:
        sample["condition"] = condition
    answer = client.json("POST", "/routing/test", json=sample)
    if fmt == "json":
        emit(answer, fmt)
        return
    target = ", ".join(answer["endpoints"]) or "nowhere (dropped)"
    note = " (fallback)" if answer["fallback"] else " (security)" if answer["security"] else ""
    if answer["routes"]:
        emit(
            answer["routes"],
            fmt,
            columns=[("name", "route"), ("matched", "matched"), ("reason", "why")],
        )
    click.echo(f"goes to: {target}{note}")
    if "condition" in answer:
        click.echo(f"condition matches: {'yes' if answer['condition']['matched'] else 'no'}")
    for warning in answer["warnings"]:
        click.echo(f"warning: {warning}", err=True)


@route.command("deadletters")
@click.option("--top", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", type=int, help="Continue after this dead-letter id.")
@data_option
@format_option
@with_client
def route_deadletters(client: HubClient, top: int, after: int | None, fmt: str) -> None:
    """Messages endpoints refused or could not take, oldest first."""
    rows = client.json("GET", "/routing/deadletters", params={"top": top, "after": after})
    emit(rows, fmt, columns=DEAD_LETTER_COLUMNS)


@route.command("stats")
@data_option
@format_option
@with_client
def route_stats(client: HubClient, fmt: str) -> None:
    """Delivered and dead-lettered counts per endpoint, and the routing lag."""
    emit(client.json("GET", "/routing/stats"), fmt)


COMMANDS = [route]

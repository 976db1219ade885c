"""Messaging commands: c2d, method, telemetry, ipfilter, status."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from wellguard.apps.cli.client import HubClient
from wellguard.apps.cli.options import data_option, format_option, with_client
from wellguard.apps.cli.output import emit

__all__ = ["COMMANDS"]


def _json_value(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None


@click.group()
def c2d() -> None:
    """Cloud-to-device messages."""


@c2d.command("send")
@click.argument("device_id")
@click.argument("body")
@click.option(
    "--ttl", type=click.IntRange(1, 48 * 3600), help="Seconds before it expires (default 3600)."
)
@click.option(
    "--ack",
    type=click.Choice(["none", "positive", "negative", "full"]),
    default="none",
    show_default=True,
)
@click.option("--message-id", help="Message id (default: generated).")
@click.option(
    "--prop", "props", multiple=True, metavar="K=V", help="Application property (repeatable)."
)
@data_option
@format_option
@with_client
def c2d_send(
    client: HubClient,
    device_id: str,
    body: str,
    ttl: int | None,
    ack: str,
    message_id: str | None,
    props: tuple[str, ...],
    fmt: str,
) -> None:
    """Queue BODY (text) for DEVICE_ID; delivered when it is subscribed."""
    properties = {}
    for prop in props:
        key, sep, value = prop.partition("=")
        if not sep or not key:
            raise click.BadParameter("use K=V", param_hint="--prop")
        properties[key] = value
    doc = {
        "body": body,
        "ack": ack,
        "properties": properties,
        "messageId": message_id,
        "ttlSeconds": ttl,
    }
    result = client.json(
        "POST", client.path("devices", device_id, "messages", "deviceBound"), json=doc
    )
    emit(
        result,
        fmt,
        columns=[("deviceId", "device"), ("messageId", "message id"), ("expiryTimeUtc", "expires")],
    )


@c2d.command("purge")
@click.argument("device_id")
@data_option
@format_option
@with_client
def c2d_purge(client: HubClient, device_id: str, fmt: str) -> None:
    """Drop every queued message of a device."""
    emit(client.json("DELETE", client.path("devices", device_id, "commands")), fmt)


@c2d.command("feedback")
@click.option("--after", type=int)
@data_option
@format_option
@with_client
def c2d_feedback(client: HubClient, after: int | None, fmt: str) -> None:
    """Delivery feedback (for messages sent with --ack)."""
    rows = client.json("GET", "/messages/deviceBound/feedback", params={"after": after})
    emit(
        rows,
        fmt,
        columns=[
            ("id", "id"),
            ("deviceId", "device"),
            ("originalMessageId", "message id"),
            ("statusCode", "status"),
            ("enqueuedTimeUtc", "at"),
        ],
    )


@click.group()
def method() -> None:
    """Direct methods."""


@method.command("invoke")
@click.argument("device_id")
@click.argument("name")
@click.option("--payload", default="null", show_default=True, help="JSON payload.")
@click.option("--module", "module_id", help="Invoke on a module.")
@click.option(
    "--timeout",
    type=click.IntRange(5, 300),
    default=30,
    show_default=True,
    help="Seconds to wait for the answer.",
)
@click.option(
    "--connect-timeout",
    type=click.IntRange(0, 300),
    default=0,
    show_default=True,
    help="Seconds to wait for the device to connect.",
)
@data_option
@format_option
@with_client
def method_invoke(
    client: HubClient,
    device_id: str,
    name: str,
    payload: str,
    module_id: str | None,
    timeout: int,
    connect_timeout: int,
    fmt: str,
) -> None:
    """Invoke NAME on a connected device and print its status and payload."""
    body = {
        "methodName": name,
        "payload": _json_value(payload, "--payload"),
        "responseTimeoutInSeconds": timeout,
        "connectTimeoutInSeconds": connect_timeout,
    }
    parts = ("twins", device_id, *(("modules", module_id) if module_id else ()), "methods")
    emit(client.json("POST", client.path(*parts), json=body), fmt)


@click.group()
def telemetry() -> None:
    """Stored device telemetry."""


def _telemetry_page(
    client: HubClient, device_id: str, after: int | None, top: int
) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"top": top, "after": after}
    rows: list[dict[str, Any]] = client.json(
        "GET", client.path("devices", device_id, "telemetry"), params=params
    )
    return rows


@telemetry.command("show")
@click.argument("device_id")
@click.option("--top", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", type=int, help="Continue after this seq.")
@data_option
@format_option
@with_client
def telemetry_show(
    client: HubClient, device_id: str, top: int, after: int | None, fmt: str
) -> None:
    """Print stored messages of a device, oldest first."""
    emit(_telemetry_page(client, device_id, after, top), fmt, columns=_TELEMETRY_COLUMNS)


_TELEMETRY_COLUMNS = [
    ("seq", "seq"),
    ("enqueuedTimeUtc", "enqueued"),
    ("properties", "properties"),
    ("body", "body"),
]


@telemetry.command("tail")
@click.argument("device_id")
@click.option("--from-start", is_flag=True, help="Print stored messages first.")
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="Poll interval, seconds."
)
@click.option("--count", type=int, help="Stop after this many messages.")
@data_option
@with_client
def telemetry_tail(
    client: HubClient, device_id: str, from_start: bool, interval: float, count: int | None
) -> None:
    """Follow a device's telemetry live (one JSON object per line)."""
    after: int | None = None
    if not from_start:
        last: int | None = None
        while True:
            page = _telemetry_page(client, device_id, last, 1000)
            if not page:
                break
            last = page[-1]["seq"]
        after = last
    printed = 0
    while count is None or printed < count:
        page = _telemetry_page(client, device_id, after, 1000)
        for row in page:
            click.echo(json.dumps(row))
            printed += 1
            if count is not None and printed >= count:
                return
        if page:
            after = page[-1]["seq"]
        else:
            time.sleep(interval)


@click.group()
def ipfilter() -> None:
    """IP filter rules (first match wins)."""


@ipfilter.command("list")
@data_option
@format_option
@with_client
def ipfilter_list(client: HubClient, fmt: str) -> None:
    """Show the rules and the default action."""
    doc = client.json("GET", "/ipfilter")
    if fmt == "json":
        emit(doc, fmt)
    else:
        click.echo(f"default action: {doc['defaultAction']}")
        emit(
            doc["ipFilterRules"],
            fmt,
            columns=[("filterName", "name"), ("ipMask", "CIDR"), ("action", "action")],
        )


def _put_rules(client: HubClient, rules: list[dict[str, str]], fmt: str) -> None:
    doc = client.json("PUT", "/ipfilter", json={"ipFilterRules": rules})
    emit(
        doc if fmt == "json" else doc["ipFilterRules"],
        fmt,
        columns=[("filterName", "name"), ("ipMask", "CIDR"), ("action", "action")],
    )


@ipfilter.command("add")
@click.argument("name")
@click.argument("cidr")
@click.option("--action", type=click.Choice(["accept", "reject"]), required=True)
@click.option("--position", type=int, help="Insert at this position (0 = first); default last.")
@data_option
@format_option
@with_client
def ipfilter_add(
    client: HubClient, name: str, cidr: str, action: str, position: int | None, fmt: str
) -> None:
    """Add a rule; live connections it now rejects are closed."""
    rules = client.json("GET", "/ipfilter")["ipFilterRules"]
    rule = {"filterName": name, "ipMask": cidr, "action": action.capitalize()}
    rules.insert(len(rules) if position is None else position, rule)
    _put_rules(client, rules, fmt)


@ipfilter.command("remove")
@click.argument("name")
@data_option
@format_option
@with_client
def ipfilter_remove(client: HubClient, name: str, fmt: str) -> None:
    """Remove the rule called NAME."""
    rules = client.json("GET", "/ipfilter")["ipFilterRules"]
    kept = [r for r in rules if r["filterName"] != name]
    if len(kept) == len(rules):
        raise click.ClickException(f"no rule named {name!r}")
    _put_rules(client, kept, fmt)


@click.command()
@data_option
@format_option
@with_client
def status(client: HubClient, fmt: str) -> None:
    """The hub at a glance: connections, messages, journal, devices."""
    doc = client.json("GET", "/status")
    if fmt == "json":
        emit(doc, fmt)
        return
    rows = [{"metric": k, "value": v} for k, v in _flatten(doc)]
    emit(rows, fmt, columns=[("metric", "metric"), ("value", "value")])


def _flatten(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


COMMANDS = [c2d, method, telemetry, ipfilter, status]

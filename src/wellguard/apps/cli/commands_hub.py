"""Hub-level commands: init, up, policy, audit, security."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from wellguard.apps.cli.client import HubClient
from wellguard.apps.cli.options import data_option, format_option, with_client
from wellguard.apps.cli.output import emit
from wellguard.core.pki import KeyType

__all__ = ["COMMANDS"]


@click.command()
@data_option
@click.option("--hostname", required=True, help="Name devices and services use for the hub.")
@click.option(
    "--san",
    "extra_names",
    multiple=True,
    help="Extra DNS name or IP for the hub certificate (repeatable).",
)
@click.option(
    "--key-type",
    type=click.Choice([k.value for k in KeyType]),
    default=KeyType.EC_P256.value,
    show_default=True,
    help="Key type of the CAs and the hub certificate.",
)
@click.option(
    "--ca-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Bring your own CA: its certificate (PEM, chain after it).",
)
@click.option(
    "--ca-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Bring your own CA: its private key (PEM).",
)
@click.option(
    "--ca-key-password-env",
    metavar="VAR",
    help="Environment variable holding the --ca-key password.",
)
@click.option("--store-url", default="", help="SQLAlchemy URL of PostgreSQL instead of SQLite.")
@click.option("--force", is_flag=True, help="Overwrite an existing data folder.")
def init(
    data_dir: Path,
    hostname: str,
    extra_names: tuple[str, ...],
    key_type: str,
    ca_cert: Path | None,
    ca_key: Path | None,
    ca_key_password_env: str | None,
    store_url: str,
    force: bool,
) -> None:
    """Create a hub's data folder: CA, TLS certificate, database, admin credentials."""
    from wellguard.apps.hub import init_data_dir

    byo = None
    if (ca_cert is None) != (ca_key is None):
        raise click.UsageError("--ca-cert and --ca-key go together")
    if ca_cert is not None and ca_key is not None:
        password = None
        if ca_key_password_env:
            password = os.environ.get(ca_key_password_env, "").encode() or None
        byo = (ca_cert.read_bytes(), ca_key.read_bytes(), password)
    data = init_data_dir(
        data_dir,
        hostname=hostname,
        environ=os.environ,
        extra_names=extra_names,
        key_type=KeyType(key_type),
        byo_ca=byo,
        force=force,
        store_url=store_url,
    )
    click.echo(f"initialised {data.root} for hub {hostname}")
    click.echo(f"  devices and services trust: {data.root_ca_file}")
    if not os.environ.get("WELLGUARD_MASTER_KEY"):
        click.echo(f"  master key: {data.master_key_file} (move it off this disk in production;")
        click.echo("              wellguard reads WELLGUARD_MASTER_KEY instead when set)")
    click.echo(f"  start it:   wellguard up --data {data.root}")


@click.command()
@data_option
@click.option("--bind", help="Address to listen on (default from config: 127.0.0.1).")
@click.option(
    "--https-port",
    type=click.IntRange(0, 65535),
    help="HTTPS port (default 443 when allowed, else 8443; 0 = any free port).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def up(data_dir: Path, bind: str | None, https_port: int | None, log_level: str) -> None:
    """Start the hub (REST API over TLS) on the data folder."""
    from wellguard.apps.hub import open_hub
    from wellguard.apps.logsetup import configure_logging
    from wellguard.apps.runtime import run

    configure_logging(log_level)
    overrides: dict[str, Any] = {}
    if bind is not None:
        overrides["bind"] = bind
    if https_port is not None:
        overrides["https_port"] = https_port
    run(open_hub(data_dir, environ=os.environ, api_overrides=overrides))


# -- policies ----------------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Shared access policies (service credentials)."""


@policy.command("list")
@data_option
@format_option
@with_client
def policy_list(client: HubClient, fmt: str) -> None:
    """List policies and their rights."""
    rows = client.json("GET", "/policies")
    if fmt == "table":
        rows = [{k: v for k, v in r.items() if not k.endswith("Key")} for r in rows]
    emit(rows, fmt, columns=[("keyName", "policy"), ("rights", "rights")])


@policy.command("connection-string")
@click.argument("name")
@click.option("--secondary", is_flag=True, help="Use the secondary key.")
@data_option
@format_option
@with_client
def policy_connection_string(client: HubClient, name: str, secondary: bool, fmt: str) -> None:
    """Print the service connection string of policy NAME (as az iot hub connection-string show)."""
    policies = {p["keyName"]: p for p in client.json("GET", "/policies")}
    if name not in policies:
        raise click.ClickException(f"no policy named {name!r}; have: {', '.join(sorted(policies))}")
    key = policies[name]["secondaryKey" if secondary else "primaryKey"]
    text = f"HostName={client.resource_host};SharedAccessKeyName={name};SharedAccessKey={key}"
    if fmt == "json":
        emit({"connectionString": text}, fmt)
    else:
        click.echo(text)


# -- audit -------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """The hash-chained audit log of administrative actions."""


@audit.command("list")
@click.option("--after", type=int, help="Show entries after this sequence number.")
@click.option("--top", type=click.IntRange(1, 1000), default=100, show_default=True)
@data_option
@format_option
@with_client
def audit_list(client: HubClient, after: int | None, top: int, fmt: str) -> None:
    """List audit entries, oldest first."""
    rows = client.json("GET", "/audit", params={"after": after, "top": top})
    emit(
        rows,
        fmt,
        columns=[
            ("seq", "seq"),
            ("at", "at"),
            ("actor", "actor"),
            ("action", "action"),
            ("target", "target"),
            ("source", "from"),
        ],
    )


@audit.command("verify")
@data_option
@format_option
def audit_verify(data_dir: Path, fmt: str) -> None:
    """Check the audit chain in the store (works with the hub stopped). Exit 1 if broken."""
    from wellguard.apps.hub import open_hub

    hub = open_hub(data_dir, environ=os.environ)
    try:
        count, broken = hub.context.registry.verify_audit()
        last = hub.context.registry.store.list_audit(after=max(count - 1, 0), limit=1)
    finally:
        hub.close()
    result = {
        "ok": broken is None,
        "entries": count,
        "firstBadSeq": broken.seq if broken else None,
        "reason": broken.reason if broken else None,
        "headHash": last[0].hash if last and broken is None else None,
    }
    if fmt == "json":
        emit(result, fmt)
    elif broken is None:
        click.echo(f"audit chain intact: {count} entries, head {result['headHash']}")
    else:
        click.echo(f"audit chain BROKEN at entry {broken.seq}: {broken.reason}")
    if broken is not None:
        raise SystemExit(1)


# -- security events ----------------------------------------------------------------------


@click.group()
def security() -> None:
    """Hub security events."""


@security.command("events")
@click.option("--after", type=int, help="Show events after this id.")
@click.option("--top", type=click.IntRange(1, 1000), default=100, show_default=True)
@data_option
@format_option
@with_client
def security_events(client: HubClient, after: int | None, top: int, fmt: str) -> None:
    """Refused connections and calls, with the precise reason."""
    rows = client.json("GET", "/security/events", params={"after": after, "top": top})
    emit(
        rows,
        fmt,
        columns=[
            ("id", "id"),
            ("at", "at"),
            ("kind", "kind"),
            ("reason", "reason"),
            ("identity", "identity"),
            ("source", "source"),
        ],
    )


COMMANDS = [init, up, policy, audit, security]

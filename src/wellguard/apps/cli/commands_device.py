"""Device, certificate and twin commands (all through the hub's REST API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from wellguard.adapters.datadir import write_private
from wellguard.apps.cli.client import HubClient
from wellguard.apps.cli.options import data_option, format_option, with_client
from wellguard.apps.cli.output import emit
from wellguard.core.pki import (
    KeyType,
    certificate_to_pem,
    create_device_key_and_csr,
    create_self_signed_device_certificate,
    private_key_to_pem,
)

__all__ = ["COMMANDS"]

DEVICE_COLUMNS = [
    ("deviceId", "device"),
    ("status", "status"),
    ("authentication.type", "auth"),
    ("lifecycleState", "lifecycle"),
    ("connectionState", "connection"),
    ("lastActivityTime", "last activity"),
]

AUTH_CHOICES = {"sas": "sas", "x509-thumbprint": "selfSigned", "x509-ca": "certificateAuthority"}


def _json_arg(text: str | None, name: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None


def _device_connection_string(client: HubClient, device: dict[str, Any]) -> str:
    base = f"HostName={client.hostname};DeviceId={device['deviceId']}"
    if device["authentication"]["type"] == "sas":
        return f"{base};SharedAccessKey={device['authentication']['symmetricKey']['primaryKey']}"
    return f"{base};x509=true"


@click.group()
def device() -> None:
    """Device identities."""


@device.command("create")
@click.argument("device_id")
@click.option("--auth", type=click.Choice(list(AUTH_CHOICES)), default="sas", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the generated key and certificate (x509 kinds).",
)
@click.option(
    "--key-type",
    type=click.Choice([k.value for k in KeyType]),
    default=KeyType.EC_P256.value,
    show_default=True,
)
@click.option("--edge", is_flag=True, help="The device is an edge gateway.")
@data_option
@format_option
@with_client
def device_create(
    client: HubClient,
    device_id: str,
    auth: str,
    out: Path | None,
    key_type: str,
    edge: bool,
    fmt: str,
) -> None:
    """Create a device. x509 kinds generate the key here (a convenience for demos and
    tests: in the field the device makes its own key and sends a CSR)."""
    body: dict[str, Any] = {
        "deviceId": device_id,
        "status": "enabled",
        "authentication": {"type": AUTH_CHOICES[auth]},
        "capabilities": {"iotEdge": edge},
    }
    files: dict[str, str] = {}
    pending_key: Any = None
    if auth != "sas" and out is None:
        raise click.UsageError(
            "--out is needed for x509 devices (where to write key and certificate)"
        )
    if auth == "x509-thumbprint":
        assert out is not None
        cert, key = create_self_signed_device_certificate(
            device_id, key_type=KeyType(key_type), now=datetime.now(UTC)
        )
        from cryptography.hazmat.primitives import hashes

        body["authentication"]["x509Thumbprint"] = {
            "primaryThumbprint": cert.fingerprint(hashes.SHA256()).hex().upper(),
            "secondaryThumbprint": None,
        }
        files = _write_credentials(out, device_id, key, certificate_to_pem(cert), b"")
    device_doc = client.json("PUT", client.path("devices", device_id), json=body)
    if auth == "x509-ca":
        assert out is not None
        pending_key, csr = create_device_key_and_csr(device_id, KeyType(key_type))
        issued = client.json(
            "POST", "/pki/certificates", json={"deviceId": device_id, "csr": csr.decode("ascii")}
        )
        files = _write_credentials(
            out, device_id, pending_key, issued["certificate"].encode(), issued["chain"].encode()
        )
        device_doc["certificate"] = {k: issued[k] for k in ("serialNumber", "notAfter")}
    device_doc["connectionString"] = _device_connection_string(client, device_doc)
    if files:
        device_doc["files"] = files
    emit(device_doc, fmt, columns=[*DEVICE_COLUMNS[:3], ("connectionString", "connection string")])


def _write_credentials(
    out: Path, device_id: str, key: Any, cert_pem: bytes, chain_pem: bytes
) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    key_file = out / f"{device_id}.key.pem"
    cert_file = out / f"{device_id}.cert.pem"
    write_private(key_file, private_key_to_pem(key, None))
    # The certificate file carries the chain after the leaf, ready for a TLS client.
    cert_file.write_bytes(cert_pem + chain_pem)
    return {"key": str(key_file), "certificate": str(cert_file)}


@device.command("list")
@click.option("--top", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", help="Continue after this device id.")
@data_option
@format_option
@with_client
def device_list(client: HubClient, top: int, after: str | None, fmt: str) -> None:
    """List devices by id."""
    rows = client.json("GET", "/devices", params={"top": top, "after": after})
    emit(rows, fmt, columns=DEVICE_COLUMNS)


@device.command("show")
@click.argument("device_id")
@data_option
@format_option
@with_client
def device_show(client: HubClient, device_id: str, fmt: str) -> None:
    """Show one device."""
    emit(client.json("GET", client.path("devices", device_id)), fmt, columns=DEVICE_COLUMNS)


def _set_status(
    client: HubClient, device_id: str, status: str, reason: str | None, fmt: str
) -> None:
    doc = client.json(
        "POST",
        client.path("devices", device_id, "status"),
        json={"status": status, "reason": reason},
    )
    emit(doc, fmt, columns=[*DEVICE_COLUMNS[:2], ("statusReason", "reason")])


@device.command("disable")
@click.argument("device_id")
@click.option("--reason", help="Why (kept with the device and in the audit log).")
@data_option
@format_option
@with_client
def device_disable(client: HubClient, device_id: str, reason: str | None, fmt: str) -> None:
    """Disable a device: it can no longer connect."""
    _set_status(client, device_id, "disabled", reason, fmt)


@device.command("enable")
@click.argument("device_id")
@click.option("--reason", help="Why (audit log).")
@data_option
@format_option
@with_client
def device_enable(client: HubClient, device_id: str, reason: str | None, fmt: str) -> None:
    """Enable a device."""
    _set_status(client, device_id, "enabled", reason, fmt)


@device.command("delete")
@click.argument("device_id")
@click.option("--etag", help="Delete only if the device still has this etag.")
@data_option
@with_client
def device_delete(client: HubClient, device_id: str, etag: str | None) -> None:
    """Delete a device with its modules and twin."""
    client.request(
        "DELETE", client.path("devices", device_id), headers={"If-Match": f'"{etag or "*"}"'}
    )
    click.echo(f"deleted {device_id}")


@device.command("lifecycle")
@click.argument("device_id")
@click.argument(
    "state",
    type=click.Choice(["provisioned", "active", "maintenance", "retired", "decommissioned"]),
)
@click.option("--reason", help="Why (audit log).")
@data_option
@format_option
@with_client
def device_lifecycle(
    client: HubClient, device_id: str, state: str, reason: str | None, fmt: str
) -> None:
    """Move a device through its lifecycle (decommission revokes its credentials)."""
    doc = client.json(
        "POST",
        client.path("devices", device_id, "lifecycle"),
        json={"state": state, "reason": reason},
    )
    emit(
        doc,
        fmt,
        columns=[
            *DEVICE_COLUMNS[:2],
            ("lifecycleState", "lifecycle"),
            ("certificatesRevoked", "certs revoked"),
        ],
    )


@device.group("keys")
def device_keys() -> None:
    """Symmetric keys of a device."""


@device_keys.command("rotate")
@click.argument("device_id")
@data_option
@format_option
@with_client
def device_keys_rotate(client: HubClient, device_id: str, fmt: str) -> None:
    """New primary key; the old primary becomes the secondary."""
    doc = client.json("POST", client.path("devices", device_id, "keys", "rotate"))
    doc["connectionString"] = _device_connection_string(client, doc)
    emit(doc, fmt, columns=[DEVICE_COLUMNS[0], ("connectionString", "connection string")])


# -- certificates ---------------------------------------------------------------------------


@click.group()
def cert() -> None:
    """Device certificates issued by the hub CA."""


@cert.command("issue")
@click.argument("device_id")
@click.option(
    "--csr",
    "csr_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The device's CSR (PEM); CN must be the device id.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write certificate + chain here."
)
@click.option(
    "--revoke-previous", is_flag=True, help="Revoke the device's older certificates (renewal)."
)
@data_option
@format_option
@with_client
def cert_issue(
    client: HubClient,
    device_id: str,
    csr_file: Path,
    out: Path | None,
    revoke_previous: bool,
    fmt: str,
) -> None:
    """Issue (or renew) a device certificate from its CSR."""
    doc = client.json(
        "POST",
        "/pki/certificates",
        json={
            "deviceId": device_id,
            "csr": csr_file.read_text(),
            "revokePrevious": revoke_previous,
        },
    )
    if out is not None:
        out.write_text(doc["certificate"] + doc["chain"])
        doc["file"] = str(out)
    emit(
        doc,
        fmt,
        columns=[("serialNumber", "serial"), ("deviceId", "device"), ("notAfter", "expires")],
    )


@cert.command("list")
@click.option("--device", "device_id", help="Only this device's certificates.")
@click.option("--top", type=click.IntRange(1, 1000), default=100, show_default=True)
@data_option
@format_option
@with_client
def cert_list(client: HubClient, device_id: str | None, top: int, fmt: str) -> None:
    """Issued certificates, soonest expiry first."""
    rows = client.json("GET", "/pki/certificates", params={"deviceId": device_id, "top": top})
    if fmt == "table":
        rows = [{k: v for k, v in r.items() if k != "certificate"} for r in rows]
    emit(
        rows,
        fmt,
        columns=[
            ("serialNumberHex", "serial"),
            ("deviceId", "device"),
            ("notAfter", "expires"),
            ("revoked", "revoked"),
            ("revocationReason", "reason"),
        ],
    )


@cert.command("revoke")
@click.argument("serial")
@click.option(
    "--reason",
    type=click.Choice(
        [
            "unspecified",
            "keyCompromise",
            "affiliationChanged",
            "superseded",
            "cessationOfOperation",
            "certificateHold",
        ]
    ),
    default="unspecified",
    show_default=True,
)
@data_option
@format_option
@with_client
def cert_revoke(client: HubClient, serial: str, reason: str, fmt: str) -> None:
    """Revoke a certificate (decimal or 0x-hex serial)."""
    doc = client.json(
        "POST", client.path("pki", "certificates", serial, "revoke"), json={"reason": reason}
    )
    emit(
        doc,
        fmt,
        columns=[
            ("serialNumberHex", "serial"),
            ("deviceId", "device"),
            ("revokedAt", "revoked at"),
            ("revocationReason", "reason"),
        ],
    )


@cert.command("crl")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CRL (PEM) here instead of printing it.",
)
@data_option
@with_client
def cert_crl(client: HubClient, out: Path | None) -> None:
    """Fetch the current CRL."""
    text = client.request("GET", "/pki/crl").text
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)


# -- twins ----------------------------------------------------------------------------------


@click.group()
def twin() -> None:
    """Device twins: tags, desired and reported properties."""


@twin.command("show")
@click.argument("device_id")
@click.option("--module", "module_id", help="A module twin instead.")
@data_option
@with_client
def twin_show(client: HubClient, device_id: str, module_id: str | None) -> None:
    """Show a twin (JSON)."""
    path = client.path("twins", device_id, *(("modules", module_id) if module_id else ()))
    emit(client.json("GET", path), "json")


@twin.command("update")
@click.argument("device_id")
@click.option("--desired", help="JSON object merged into desired properties (null removes).")
@click.option("--tags", help="JSON object merged into tags (null removes).")
@click.option("--module", "module_id", help="A module twin instead.")
@click.option("--etag", help="Update only if the twin still has this etag.")
@data_option
@with_client
def twin_update(
    client: HubClient,
    device_id: str,
    desired: str | None,
    tags: str | None,
    module_id: str | None,
    etag: str | None,
) -> None:
    """Merge desired properties and/or tags into a twin."""
    body: dict[str, Any] = {}
    if tags is not None:
        body["tags"] = _json_arg(tags, "--tags")
    if desired is not None:
        body["properties"] = {"desired": _json_arg(desired, "--desired")}
    if not body:
        raise click.UsageError("give --desired and/or --tags")
    path = client.path("twins", device_id, *(("modules", module_id) if module_id else ()))
    doc = client.json("PATCH", path, json=body, headers={"If-Match": f'"{etag or "*"}"'})
    emit(doc, "json")


@twin.command("query")
@click.argument("query")
@click.option("--page-size", type=click.IntRange(1, 1000), default=100, show_default=True)
@data_option
@format_option
@with_client
def twin_query(client: HubClient, query: str, page_size: int, fmt: str) -> None:
    """Run an IoT Hub twin query, e.g. "SELECT * FROM devices WHERE tags.site = 'permian'"."""
    rows: list[Any] = []
    token: str | None = None
    while True:
        headers = {"x-ms-max-item-count": str(page_size)}
        if token:
            headers["x-ms-continuation"] = token
        response = client.request("POST", "/devices/query", json={"query": query}, headers=headers)
        rows.extend(response.json())
        token = response.headers.get("x-ms-continuation")
        if not token:
            break
    emit(rows, fmt)


COMMANDS = [device, cert, twin]

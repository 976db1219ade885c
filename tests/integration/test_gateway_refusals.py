"""Every CONNECT refusal reason the gateway knows, each seen as the same CONNACK by the
device and as its own hub security event by the operator."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from tests.support.hubproc import HubProcess, random_loopback, run_cli
from tests.support.mqttdevice import connect_device, sas_token
from wellguard.core.pki import (
    certificate_to_pem,
    create_self_signed_device_certificate,
    private_key_to_pem,
)


def _create(hub: HubProcess, device_id: str, body: dict | None = None) -> dict:  # type: ignore[type-arg]
    doc = hub.api("PUT", f"/devices/{device_id}", json=body or {"deviceId": device_id})
    assert doc.status_code == 200, doc.text
    return dict(doc.json())


def _last_id(hub: HubProcess) -> int:
    last = 0
    while True:
        page = hub.api("GET", "/security/events", params={"after": last, "top": 1000}).json()
        if not page:
            return last
        last = page[-1]["id"]


def _reason_after(hub: HubProcess, before: int, identity: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = hub.api("GET", "/security/events", params={"after": before}).json()
        mine = [e for e in events if e["identity"] == identity and e["kind"] == "mqtt.connect"]
        if mine:
            return str(mine[0]["reason"])
        time.sleep(0.1)
    raise AssertionError(f"no security event for {identity}")


def _self_signed(
    tmp_path: Path, device_id: str, *, now: datetime, days: int = 30
) -> tuple[Path, Path, str]:
    cert, key = create_self_signed_device_certificate(device_id, now=now, days=days)
    cert_file, key_file = tmp_path / f"{device_id}.crt", tmp_path / f"{device_id}.key"
    cert_file.write_bytes(certificate_to_pem(cert))
    key_file.write_bytes(private_key_to_pem(key, None))
    return cert_file, key_file, cert.fingerprint(hashes.SHA256()).hex().upper()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no_username", "bad_username"),
        ("client_id_mismatch", "client_id_mismatch"),
        ("wrong_host", "wrong_host"),
    ],
)
def test_malformed_connect_fields(hub: HubProcess, case: str, reason: str) -> None:
    device_id = f"ref-{case}".replace("_", "-")
    key = _create(hub, device_id)["authentication"]["symmetricKey"]["primaryKey"]
    token = sas_token(hub, device_id, key)
    kwargs: dict[str, str] = {}
    if case == "no_username":
        kwargs["username"] = ""
    elif case == "client_id_mismatch":
        kwargs["client_id"] = "someone-else"
    elif case == "wrong_host":
        kwargs["username"] = f"other-hub.example/{device_id}/?api-version=2021-04-12"
    before = _last_id(hub)
    device = connect_device(hub, device_id, password=token, **kwargs)  # type: ignore[arg-type]
    try:
        assert device.wait_connack() in ("Not authorized", "Client identifier not valid")
    finally:
        device.close()
    identity = "someone-else" if case == "client_id_mismatch" else device_id
    assert _reason_after(hub, before, identity) == reason


def test_thumbprint_mismatch_and_expired_certificates(hub: HubProcess, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    _cert, _key, registered = _self_signed(tmp_path, "ref-thumb", now=now)
    _create(
        hub,
        "ref-thumb",
        {
            "authentication": {
                "type": "selfSigned",
                "x509Thumbprint": {"primaryThumbprint": registered},
            }
        },
    )
    (tmp_path / "other").mkdir()
    other_cert, other_key, _ = _self_signed(tmp_path / "other", "ref-thumb", now=now)
    before = _last_id(hub)
    device = connect_device(hub, "ref-thumb", certfile=other_cert, keyfile=other_key)
    assert device.wait_connack() == "Not authorized"
    device.close()
    assert _reason_after(hub, before, "ref-thumb") == "thumbprint_mismatch"

    old_cert, old_key, old_print = _self_signed(
        tmp_path, "ref-expired", now=now - timedelta(days=60), days=30
    )
    _create(
        hub,
        "ref-expired",
        {
            "authentication": {
                "type": "selfSigned",
                "x509Thumbprint": {"primaryThumbprint": old_print},
            }
        },
    )
    before = _last_id(hub)
    device = connect_device(hub, "ref-expired", certfile=old_cert, keyfile=old_key)
    assert device.wait_connack() == "Not authorized"
    device.close()
    assert _reason_after(hub, before, "ref-expired") == "certificate_expired"


def test_sas_device_presenting_only_a_certificate_is_the_wrong_auth_type(
    hub: HubProcess, tmp_path: Path
) -> None:
    _create(hub, "ref-type")
    cert, key, _ = _self_signed(tmp_path, "ref-type", now=datetime.now(UTC))
    before = _last_id(hub)
    device = connect_device(hub, "ref-type", certfile=cert, keyfile=key)
    assert device.wait_connack() == "Not authorized"
    device.close()
    assert _reason_after(hub, before, "ref-type") == "wrong_auth_type"


def test_decommissioning_closes_the_live_connection_for_good(hub: HubProcess) -> None:
    key = _create(hub, "ref-decom")["authentication"]["symmetricKey"]["primaryKey"]
    device = connect_device(hub, "ref-decom", password=sas_token(hub, "ref-decom", key))
    try:
        assert device.wait_connack() == "Success"
        run_cli(
            "device",
            "lifecycle",
            "ref-decom",
            "decommissioned",
            "--reason",
            "well plugged",
            data=hub.data,
        )
        assert device.disconnected.wait(5)
    finally:
        device.close()
    again = connect_device(hub, "ref-decom", password=sas_token(hub, "ref-decom", key))
    assert again.wait_connack() == "Not authorized"
    again.close()
    refused = hub.api("POST", "/devices/ref-decom/status", json={"status": "enabled"})
    assert refused.status_code == 400


def test_a_client_that_never_sends_connect_is_closed(
    hub_factory: Callable[..., HubProcess],
) -> None:
    # A TLS session with no MQTT in it would otherwise hold a socket and a file
    # descriptor for ever: many of them starve the hub (slowloris).
    hub = hub_factory(env={"WELLGUARD_MQTT_CONNECT_TIMEOUT_SECONDS": "1"})
    context = ssl.create_default_context(cafile=str(hub.root_ca))
    address = random_loopback()
    raw = socket.create_connection(
        (hub.mqtt_host, hub.mqtt_port), timeout=15, source_address=(address, 0)
    )
    with context.wrap_socket(raw, server_hostname=hub.mqtt_host) as tls:
        opened = time.monotonic()
        assert tls.recv(1) == b""  # the hub closes it, having received nothing
        assert time.monotonic() - opened >= 0.9
    events = hub.api("GET", "/security/events", params={"top": 100}).json()
    reasons = [e["reason"] for e in events if e["source"].startswith(f"{address}:")]
    assert reasons == ["connect_timeout"]
    # Nor may a TCP connection that never starts TLS (the handshake must finish too).
    silent = random_loopback()
    with socket.create_connection(
        (hub.mqtt_host, hub.mqtt_port), timeout=15, source_address=(silent, 0)
    ) as raw:
        assert raw.recv(1) == b""
    events = hub.api("GET", "/security/events", params={"top": 100}).json()
    reasons = [e["reason"] for e in events if e["source"].startswith(f"{silent}:")]
    assert reasons == ["tls_handshake_timeout"]

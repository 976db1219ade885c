"""The README tour, run for real: init, up, devices of every auth kind, policies, audit."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.support.hubproc import HubProcess, run_cli


def _json(*args: str, data: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(run_cli(*args, "--format", "json", data=data).stdout)


def test_init_writes_a_protected_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "wg"
    run_cli("init", "--hostname", "hub.example", data=data)
    for secret in ("admin.json", "master.key", "pki/hub.key.pem", "pki/issuing-ca.key.pem"):
        assert stat.S_IMODE((data / secret).stat().st_mode) == 0o600, secret
    for key_file in ("pki/hub.key.pem", "pki/issuing-ca.key.pem", "pki/root-ca.key.pem"):
        assert b"ENCRYPTED PRIVATE KEY" in (data / key_file).read_bytes()
    hub_cert = x509.load_pem_x509_certificates((data / "pki/hub.pem").read_bytes())[0]
    san = hub_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"hub.example", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    # a second init must not destroy the first hub
    again = run_cli("init", "--hostname", "hub.example", data=data, check=False)
    assert again.returncode != 0
    assert "--force" in again.stderr


def test_init_with_bring_your_own_ca(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from wellguard.core.pki import certificate_to_pem, create_root_ca, private_key_to_pem

    ca = create_root_ca("Customer Field CA", now=datetime.now(UTC))
    (tmp_path / "ca.pem").write_bytes(certificate_to_pem(ca.certificate))
    (tmp_path / "ca.key").write_bytes(private_key_to_pem(ca.private_key, None))
    data = tmp_path / "wg"
    run_cli(
        "init",
        "--hostname",
        "hub.example",
        "--ca-cert",
        str(tmp_path / "ca.pem"),
        "--ca-key",
        str(tmp_path / "ca.key"),
        data=data,
    )
    assert (data / "pki/root-ca.pem").read_bytes() == certificate_to_pem(ca.certificate)
    hub_cert = x509.load_pem_x509_certificates((data / "pki/hub.pem").read_bytes())[0]
    hub_cert.verify_directly_issued_by(ca.certificate)


def test_device_commands(hub: HubProcess, tmp_path: Path) -> None:
    data = hub.data
    sas = _json("device", "create", "tour-sas", "--auth", "sas", data=data)
    assert sas["authentication"]["type"] == "sas"
    assert sas["connectionString"] == (
        f"HostName=localhost;DeviceId=tour-sas;SharedAccessKey="
        f"{sas['authentication']['symmetricKey']['primaryKey']}"
    )

    thumb = _json(
        "device",
        "create",
        "tour-thumb",
        "--auth",
        "x509-thumbprint",
        "--out",
        str(tmp_path),
        data=data,
    )
    cert = x509.load_pem_x509_certificate(Path(thumb["files"]["certificate"]).read_bytes())
    assert (
        thumb["authentication"]["x509Thumbprint"]["primaryThumbprint"]
        == cert.fingerprint(hashes.SHA256()).hex().upper()
    )
    assert stat.S_IMODE(Path(thumb["files"]["key"]).stat().st_mode) == 0o600

    ca_dev = _json(
        "device", "create", "tour-ca", "--auth", "x509-ca", "--out", str(tmp_path), data=data
    )
    chain = x509.load_pem_x509_certificates(Path(ca_dev["files"]["certificate"]).read_bytes())
    assert chain[0].subject.rfc4514_string() == "CN=tour-ca"
    root = x509.load_pem_x509_certificate(hub.root_ca.read_bytes())
    chain[0].verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(root)

    listed = json.loads(run_cli("device", "list", "--format", "json", data=data).stdout)
    assert {"tour-sas", "tour-thumb", "tour-ca"} <= {d["deviceId"] for d in listed}

    disabled = _json("device", "disable", "tour-sas", "--reason", "stolen truck", data=data)
    assert (disabled["status"], disabled["statusReason"]) == ("disabled", "stolen truck")
    shown = _json("device", "show", "tour-sas", data=data)
    assert shown["status"] == "disabled"
    assert _json("device", "enable", "tour-sas", data=data)["status"] == "enabled"

    rotated = _json("device", "keys", "rotate", "tour-sas", data=data)
    keys = rotated["authentication"]["symmetricKey"]
    assert keys["secondaryKey"] == sas["authentication"]["symmetricKey"]["primaryKey"]
    assert keys["primaryKey"] != sas["authentication"]["symmetricKey"]["primaryKey"]

    gone = _json(
        "device", "lifecycle", "tour-ca", "decommissioned", "--reason", "well plugged", data=data
    )
    assert gone["status"] == "disabled"
    assert gone["certificatesRevoked"] == 1
    certs = json.loads(
        run_cli("cert", "list", "--device", "tour-ca", "--format", "json", data=data).stdout
    )
    assert [c["revocationReason"] for c in certs] == ["cessationOfOperation"]
    crl = x509.load_pem_x509_crl(run_cli("cert", "crl", data=data).stdout.encode())
    assert crl.get_revoked_certificate_by_serial_number(chain[0].serial_number) is not None

    run_cli("device", "delete", "tour-thumb", data=data)
    missing = run_cli("device", "show", "tour-thumb", data=data, check=False)
    assert missing.returncode == 1
    assert "DeviceNotFound" in missing.stderr


def test_policy_commands(hub: HubProcess) -> None:
    policies = json.loads(run_cli("policy", "list", "--format", "json", data=hub.data).stdout)
    assert {p["keyName"] for p in policies} == {
        "iothubowner",
        "service",
        "device",
        "registryRead",
        "registryReadWrite",
    }
    conn = _json("policy", "connection-string", "service", data=hub.data)["connectionString"]
    service = next(p for p in policies if p["keyName"] == "service")
    assert conn == (
        f"HostName=localhost:{hub.api_port};SharedAccessKeyName=service;"
        f"SharedAccessKey={service['primaryKey']}"
    )


def test_table_output_is_readable(hub: HubProcess) -> None:
    run_cli("device", "create", "tour-table", data=hub.data)
    out = run_cli("device", "list", data=hub.data).stdout
    assert "tour-table" in out
    assert "device" in out  # column heading


def test_audit_verify_detects_an_edited_row(fresh_hub: HubProcess) -> None:
    data = fresh_hub.data
    run_cli("device", "create", "audited-1", data=data)
    run_cli("device", "disable", "audited-1", "--reason", "test", data=data)
    ok = json.loads(run_cli("audit", "verify", "--format", "json", data=data).stdout)
    assert ok["ok"] is True
    assert ok["entries"] >= 3
    entries = json.loads(run_cli("audit", "list", "--format", "json", data=data).stdout)
    actions = [e["action"] for e in entries]
    assert actions[-2:] == ["device.create", "device.disable"]
    assert entries[-1]["actor"] == "policy:iothubowner"
    assert entries[-1]["source"].startswith("127.0.0.1:")

    with sqlite3.connect(data / "wellguard.db") as db:
        db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE action = 'device.disable'")
    broken = run_cli("audit", "verify", "--format", "json", data=data, check=False)
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert report["ok"] is False
    assert report["firstBadSeq"] == entries[-1]["seq"]


@pytest.mark.parametrize("command", [["device", "list"], ["policy", "list"]])
def test_commands_say_when_the_hub_is_not_running(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "wg"
    run_cli("init", "--hostname", "localhost", data=data)
    result = run_cli(*command, data=data, check=False)
    assert result.returncode == 2
    assert "not running" in result.stderr
    assert "Traceback" not in result.stderr

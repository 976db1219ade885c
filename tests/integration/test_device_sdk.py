"""Microsoft's device SDK (azure-iot-device 2.14.0), unmodified, against the hub's gateway.

Each scenario runs a script from ``sdk_scripts/device_*.py`` in the SDK's own interpreter.
The device reaches the hub as a field device would reach IoT Hub through a gateway:
``HostName`` is the hub's name, ``GatewayHostName`` the address its MQTT listener has (the
SDK's ports, 8883 for MQTT and 443 for MQTT over WebSockets, are fixed), and the hub's CA
is the ``server_verification_cert``. While a device script is connected, the test acts on
the hub through its REST API (C2D, desired properties, direct methods) and then checks
what the device received and what the hub stored.
"""

from __future__ import annotations

import contextlib
import errno
import json
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hubproc import HubProcess, random_loopback, run_cli, start_hub
from tests.support.requirements import require, sdk_python

pytestmark = pytest.mark.sdk

SCRIPTS = Path(__file__).with_name("sdk_scripts")


@pytest.fixture(autouse=True)
def _sdk_interpreter() -> None:
    """Skip (or fail under WELLGUARD_REQUIRE_ALL=1) before starting a hub for nothing."""
    sdk_python()


class DeviceScript:
    """A device script running in the SDK interpreter: announced steps, then its results."""

    def __init__(self, script: str, hub: HubProcess, log: Path, arguments: dict[str, Any]):
        self.script = script
        self.hub = hub
        self.log = log
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            [sdk_python(), str(SCRIPTS / script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"root_ca": str(hub.root_ca), **arguments}))
        self.process.stdin.close()
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _failure(self, what: str) -> AssertionError:
        self.process.kill()
        self.process.wait(10)
        self._stderr.flush()
        stderr = self.log.read_text(errors="replace")
        return AssertionError(
            f"{self.script}: {what}\n--- script stderr ---\n{stderr}\n"
            f"--- hub log ---\n{self.hub.log()[-6000:]}"
        )

    def wait_step(self, step: str, timeout: float = 30) -> None:
        """Block until the script announces ``step``."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise self._failure(f"no {step!r} within {timeout}s") from None
        if line is None or json.loads(line).get("step") != step:
            raise self._failure(f"expected step {step!r}, got {line!r}")

    def results(self, timeout: float = 60) -> dict[str, Any]:
        """The script's results (its last line) once it has ended successfully."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._failure(f"still running after {timeout}s") from None
        self._reader.join(10)
        lines = []
        while (line := self._lines.get_nowait()) is not None:
            lines.append(line)
        if code != 0 or not lines:
            raise self._failure(f"exit code {code}, output {lines!r}")
        results: dict[str, Any] = json.loads(lines[-1])
        return results

    def close(self) -> None:
        """Stop the script if it is still running and release its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._stderr.close()


@contextlib.contextmanager
def device_script(
    script: str, hub: HubProcess, tmp_path: Path, **arguments: Any
) -> Iterator[DeviceScript]:
    """Run ``sdk_scripts/SCRIPT`` with ``arguments`` (JSON on stdin) for the ``with`` body."""
    run = DeviceScript(script, hub, tmp_path / f"{script}.stderr", arguments)
    try:
        yield run
    finally:
        run.close()


def create_device(hub: HubProcess, device_id: str) -> str:
    """A SAS device; returns its primary key."""
    response = hub.api("PUT", f"/devices/{device_id}", json={"deviceId": device_id})
    assert response.status_code == 200, response.text
    return str(response.json()["authentication"]["symmetricKey"]["primaryKey"])


def connection_string(hub: HubProcess, device_id: str, key: str, module_id: str = "") -> str:
    """A device (or module) connection string that reaches the hub through its MQTT address."""
    module = f"ModuleId={module_id};" if module_id else ""
    return (
        f"HostName={hub.hostname};DeviceId={device_id};{module}SharedAccessKey={key};"
        f"GatewayHostName={hub.mqtt_host}"
    )


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 15) -> Any:
    """Poll ``probe`` until it returns something truthy (hub writes are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stored_telemetry(hub: HubProcess, device_id: str, count: int) -> list[dict[str, Any]]:
    """The device's first ``count`` stored messages, once they are all there."""

    def probe() -> list[dict[str, Any]]:
        rows = hub.api("GET", f"/devices/{device_id}/telemetry", params={"top": 100}).json()
        return list(rows) if len(rows) >= count else []

    rows: list[dict[str, Any]] = wait_for(f"{count} messages of {device_id}", probe)
    return rows


def feedback_for(hub: HubProcess, message_ids: set[str]) -> dict[str, str]:
    """C2D feedback status by original message id, once every id in ``message_ids`` has one."""

    def probe() -> dict[str, str]:
        records = hub.api("GET", "/messages/deviceBound/feedback").json()
        found = {r["originalMessageId"]: r["statusCode"] for r in records}
        return found if message_ids <= set(found) else {}

    return {k: v for k, v in wait_for("C2D feedback", probe).items() if k in message_ids}


def send_c2d(hub: HubProcess, device_id: str, message: dict[str, Any]) -> None:
    response = hub.api("POST", f"/devices/{device_id}/messages/deviceBound", json=message)
    assert response.status_code == 200, response.text


# -- SAS over MQTT and over MQTT/WebSockets --------------------------------------------------

TELEMETRY = {
    "body": json.dumps({"pressure": 512.5, "valve": "open"}),
    "message_id": "sdk-tele-1",
    "properties": {"site": "permian basin", "unit": "kPa/s", "alert": "a=b&c"},
}
REPORTED = {"firmware": "2.4.1", "battery": {"level": 88, "charging": False}}
QUEUED_C2D = {
    "body": "close valve 7",
    "messageId": "sdk-c2d-queued",
    "correlationId": "order-41",
    "contentType": "text/plain",
    "properties": {"valve": "7", "crew": "night shift/B"},
    "ack": "full",
}
LIVE_C2D = {
    "body": json.dumps({"setpoint": 40}),
    "messageId": "sdk-c2d-live",
    "properties": {"priority": "high"},
    "ack": "positive",
}


def exercise_sas_device(
    hub: HubProcess,
    tmp_path: Path,
    device_id: str,
    *,
    websockets: bool,
    service_method: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``device_sas.py`` for a fresh device; returns (script results, REST method answer).

    Before it connects the device has desired ``{"rate": 1}`` and one queued C2D message;
    while it is connected the test patches desired, sends a second C2D message and invokes
    ``reboot`` through REST (and the script ``service_method`` through the service SDK).
    """
    key = create_device(hub, device_id)
    patched = hub.api("PATCH", f"/twins/{device_id}", json={"properties": {"desired": {"rate": 1}}})
    assert patched.status_code == 200, patched.text
    send_c2d(hub, device_id, QUEUED_C2D)
    service = None
    if service_method is not None:
        service = {
            "connection_string": hub.service_connection_string(),
            "root_ca": str(hub.root_ca),
            **service_method,
        }
    with device_script(
        "device_sas.py",
        hub,
        tmp_path,
        connection_string=connection_string(hub, device_id, key),
        device_id=device_id,
        websockets=websockets,
        telemetry=TELEMETRY,
        reported=REPORTED,
        service=service,
        expect={"c2d": 2, "methods": 1 + (service is not None), "desired_version": 3},
    ) as script:
        script.wait_step("ready")
        patch = {"properties": {"desired": {"rate": 5, "mode": "eco"}}}
        assert hub.api("PATCH", f"/twins/{device_id}", json=patch).status_code == 200
        send_c2d(hub, device_id, LIVE_C2D)
        method = hub.api(
            "POST",
            f"/twins/{device_id}/methods",
            json={
                "methodName": "reboot",
                "payload": {"delay": 5, "reason": "firmware"},
                "responseTimeoutInSeconds": 15,
            },
        )
        assert method.status_code == 200, method.text
        results = script.results()
    return results, method.json()


def check_sas_device(hub: HubProcess, device_id: str, out: dict[str, Any]) -> None:
    """What a SAS device and the hub must agree on after ``exercise_sas_device``."""
    # Telemetry: body, application properties and system properties as the SDK sent them.
    (row,) = stored_telemetry(hub, device_id, 1)
    assert json.loads(row["body"]) == {"pressure": 512.5, "valve": "open"}
    assert row["properties"] == TELEMETRY["properties"]
    system = row["systemProperties"]
    assert (system["messageId"], system["contentType"], system["contentEncoding"]) == (
        "sdk-tele-1",
        "application/json",
        "utf-8",
    )

    # get_twin returns the desired properties the service set; the report is stored.
    assert out["twin"]["desired"] == {"rate": 1, "$version": 2}
    assert out["twin"]["reported"] == {"$version": 1}
    assert out["twin_after_report"]["reported"] == {**REPORTED, "$version": 2}
    twin = hub.api("GET", f"/twins/{device_id}").json()
    reported = twin["properties"]["reported"]
    assert {k: reported[k] for k in REPORTED} == REPORTED
    assert reported["$version"] == 2

    # The desired patch made while connected reached the handler, with its version.
    assert out["patches"] == [{"rate": 5, "mode": "eco", "$version": 3}]

    # C2D: the queued message first, then the live one, properties and ids intact.
    queued, live = out["c2d"]
    assert queued == {
        "data": "close valve 7",
        "message_id": "sdk-c2d-queued",
        "correlation_id": "order-41",
        "content_type": "text/plain",
        "content_encoding": None,
        "custom_properties": {"valve": "7", "crew": "night shift/B"},
        "ack": "full",
    }
    assert json.loads(live.pop("data")) == {"setpoint": 40}
    assert live == {
        "message_id": "sdk-c2d-live",
        "correlation_id": None,
        "content_type": None,
        "content_encoding": None,
        "custom_properties": {"priority": "high"},
        "ack": "positive",
    }
    # The SDK acknowledged both: they are completed, with feedback, and nothing is left.
    assert feedback_for(hub, {"sdk-c2d-queued", "sdk-c2d-live"}) == {
        "sdk-c2d-queued": "Success",
        "sdk-c2d-live": "Success",
    }
    purged = hub.api("DELETE", f"/devices/{device_id}/commands").json()
    assert purged["totalMessagesPurged"] == 0


def test_sas_device_over_mqtt_telemetry_c2d_twin_and_methods(
    hub: HubProcess, tmp_path: Path
) -> None:
    calibrate = {"method": "calibrate", "payload": {"sensor": "p1", "offset": -0.5}}
    out, rest_method = exercise_sas_device(
        hub, tmp_path, "sdkdev-sas", websockets=False, service_method=calibrate
    )
    check_sas_device(hub, "sdkdev-sas", out)

    # A method invoked through REST and one through the service SDK, answered by the device.
    assert rest_method == {
        "status": 200,
        "payload": {"method": "reboot", "echo": {"delay": 5, "reason": "firmware"}},
    }
    assert out["service_method"] == {
        "status": 200,
        "payload": {"method": "calibrate", "echo": {"sensor": "p1", "offset": -0.5}},
    }
    assert sorted(out["methods"], key=lambda m: m["name"]) == [
        {"name": "calibrate", "payload": {"sensor": "p1", "offset": -0.5}},
        {"name": "reboot", "payload": {"delay": 5, "reason": "firmware"}},
    ]


def _may_bind_443() -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((random_loopback(), 443))
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                return False
            raise
    return True


def test_sas_device_over_websockets_telemetry_c2d_twin_and_method(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    # The SDK dials wss://<GatewayHostName>:443/$iothub/websocket, so this hub serves
    # HTTPS on port 443 of its own address (the one its MQTT listener has).
    require(
        _may_bind_443(),
        "binding port 443 (the device SDK's fixed port for MQTT over WebSockets)",
        "run the tests as root, or lower net.ipv4.ip_unprivileged_port_start to 443",
    )
    hub = hub_factory("wss", https_port=443)
    assert hub.api_url == f"https://{hub.mqtt_host}:443"
    out, rest_method = exercise_sas_device(hub, tmp_path, "sdkdev-wss", websockets=True)
    check_sas_device(hub, "sdkdev-wss", out)
    assert rest_method == {
        "status": 200,
        "payload": {"method": "reboot", "echo": {"delay": 5, "reason": "firmware"}},
    }
    assert out["methods"] == [{"name": "reboot", "payload": {"delay": 5, "reason": "firmware"}}]


# -- X.509 devices and a module identity, one script run -------------------------------------


@pytest.fixture(scope="module")
def identities(
    hub: HubProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Run ``device_identities.py`` once for an X.509 thumbprint device, an X.509 CA
    device and a SAS module; returns the script's results by label."""
    folder = tmp_path_factory.mktemp("sdk-identities")
    entries: list[dict[str, Any]] = []
    for label, auth in (("thumbprint", "x509-thumbprint"), ("ca", "x509-ca")):
        device_id = f"sdkdev-x509-{label}"
        run_cli("device", "create", device_id, "--auth", auth, "--out", str(folder), data=hub.data)
        desired = {"properties": {"desired": {"interval": 30, "auth": auth}}}
        assert hub.api("PATCH", f"/twins/{device_id}", json=desired).status_code == 200
        entries.append(
            {
                "label": label,
                "hostname": hub.hostname,
                "x509": {
                    "device_id": device_id,
                    "cert": str(folder / f"{device_id}.cert.pem"),
                    "key": str(folder / f"{device_id}.key.pem"),
                },
                "body": json.dumps({"auth": auth}),
                "message_id": f"sdk-{label}-1",
                "reported": {"certificate": auth},
            }
        )
    create_device(hub, "sdkdev-host")
    module = hub.api("PUT", "/devices/sdkdev-host/modules/collector", json={})
    assert module.status_code == 200, module.text
    module_key = module.json()["authentication"]["symmetricKey"]["primaryKey"]
    entries.append(
        {
            "label": "module",
            "connection_string": connection_string(hub, "sdkdev-host", module_key, "collector"),
            "body": json.dumps({"source": "collector", "samples": [1, 2, 3]}),
            "message_id": "sdk-module-1",
            "reported": {"collector": {"version": "0.9", "sources": 3}},
        }
    )
    with device_script(
        "device_identities.py",
        hub,
        folder,
        gateway=hub.mqtt_host,
        identities=entries,
    ) as script:
        return script.results()


@pytest.mark.parametrize(("label", "auth"), [("thumbprint", "x509-thumbprint"), ("ca", "x509-ca")])
def test_x509_device_sends_telemetry_and_reads_and_reports_its_twin(
    hub: HubProcess, identities: dict[str, dict[str, Any]], label: str, auth: str
) -> None:
    device_id = f"sdkdev-x509-{label}"
    result = identities[label]
    assert "error" not in result, result["error"]
    twin = result["twin"]
    assert twin["desired"] == {"interval": 30, "auth": auth, "$version": 2}
    assert twin["reported"] == {"certificate": auth, "$version": 2}
    (row,) = stored_telemetry(hub, device_id, 1)
    assert json.loads(row["body"]) == {"auth": auth}
    assert row["systemProperties"]["messageId"] == f"sdk-{label}-1"
    assert row["moduleId"] is None


def test_module_identity_sends_telemetry_and_reports_its_module_twin(
    hub: HubProcess, identities: dict[str, dict[str, Any]]
) -> None:
    result = identities["module"]
    assert "error" not in result, result["error"]
    assert result["twin"]["reported"] == {
        "collector": {"version": "0.9", "sources": 3},
        "$version": 2,
    }
    (row,) = stored_telemetry(hub, "sdkdev-host", 1)
    assert row["moduleId"] == "collector"
    assert json.loads(row["body"]) == {"source": "collector", "samples": [1, 2, 3]}
    assert row["systemProperties"]["messageId"] == "sdk-module-1"
    module_twin = hub.api("GET", "/twins/sdkdev-host/modules/collector").json()
    assert module_twin["properties"]["reported"]["collector"] == {"version": "0.9", "sources": 3}
    # The module's report is its own: the device twin has none of it.
    device_twin = hub.api("GET", "/twins/sdkdev-host").json()
    assert "collector" not in device_twin["properties"]["reported"]


# -- a hub restart under a connected device --------------------------------------------------


def test_device_keeps_its_subscriptions_across_a_hub_restart(
    fresh_hub: HubProcess, tmp_path: Path
) -> None:
    key = create_device(fresh_hub, "sdkdev-restart")
    with device_script(
        "device_resume.py",
        fresh_hub,
        tmp_path,
        connection_string=connection_string(fresh_hub, "sdkdev-restart", key),
        expect={"c2d": 1, "methods": 1},
        wait_seconds=4,
    ) as script:
        script.wait_step("ready")
        fresh_hub.stop()
        hub = start_hub(
            fresh_hub.data,
            initialise=False,
            env={"WELLGUARD_MQTT_BIND": fresh_hub.mqtt_host, "WELLGUARD_MQTT_PORT": "8883"},
        )
        try:
            script.wait_step("reconnected")
            send_c2d(hub, "sdkdev-restart", {"body": "still there?"})
            method = hub.api(
                "POST",
                "/twins/sdkdev-restart/methods",
                json={
                    "methodName": "status",
                    "responseTimeoutInSeconds": 5,
                    "connectTimeoutInSeconds": 2,
                },
            )
            out = script.results()
        finally:
            hub.stop()
    assert out["states"] == [True, False, True]
    assert method.status_code == 200, method.text
    assert method.json() == {"status": 200, "payload": {"method": "status"}}
    assert out["c2d"] == ["still there?"]

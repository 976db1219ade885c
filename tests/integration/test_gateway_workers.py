"""Gateway worker processes (``mqtt.workers = 2``): what is particular to several
processes. Everything else a device does is tested against both layouts in
``test_gateway_mqtt.py``."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import struct
import time
from collections.abc import Callable

import psutil
import pytest

from tests.support.hubproc import HubProcess, run_cli
from tests.support.mqttdevice import Device, connect_device, sas_token


@pytest.fixture
def hub(hub_factory: Callable[..., HubProcess]) -> HubProcess:
    """A hub of the test's own with two gateway workers."""
    return hub_factory("data", {"WELLGUARD_MQTT_WORKERS": "2"})


def _create(hub: HubProcess, device_id: str) -> str:
    doc = hub.api("PUT", f"/devices/{device_id}", json={"deviceId": device_id}).json()
    return str(doc["authentication"]["symmetricKey"]["primaryKey"])


def _workers(hub: HubProcess) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(hub.process.pid).children()
        if "wellguard.apps.gateway.worker" in " ".join(child.cmdline())
    ]


def _holder(hub: HubProcess, device: Device) -> int:
    """Pid of the worker holding ``device``'s connection."""
    sock = device.client.socket()
    assert isinstance(sock, socket.socket)
    local = sock.getsockname()[:2]
    for worker in _workers(hub):
        for conn in worker.net_connections(kind="tcp"):
            if conn.raddr and (conn.raddr.ip, conn.raddr.port) == local:
                return worker.pid
    raise AssertionError(f"no worker holds {local}")


def _status(hub: HubProcess) -> dict:  # type: ignore[type-arg]
    return dict(json.loads(run_cli("status", "--format", "json", data=hub.data).stdout))


def _metric(hub: HubProcess, name: str) -> float:
    with hub.client() as client:
        text = client.get("/metrics").text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in /metrics"
    return float(match.group(1))


def _eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def test_connections_spread_over_workers_and_are_counted_hub_wide(hub: HubProcess) -> None:
    workers = _workers(hub)
    assert len(workers) == 2
    devices = []
    try:
        for i in range(12):
            device_id = f"spread-{i}"
            key = _create(hub, device_id)
            device = connect_device(hub, device_id, password=sas_token(hub, device_id, key))
            assert device.wait_connack() == "Success"
            devices.append(device)
        holders = {_holder(hub, device) for device in devices}
        assert holders == {w.pid for w in workers}  # both took some (1 in 2,048 to fail)
        for i, device in enumerate(devices):
            device.publish(f"devices/spread-{i}/messages/events/", b'{"n": 1}')
        _eventually(lambda: _status(hub)["connections"] == 12)
        _eventually(lambda: _metric(hub, "wellguard_messages_in_total") == 12)
        assert _metric(hub, "wellguard_connections") == 12
        status = _status(hub)
        assert status["gatewayWorkers"] == 2
        assert status["journal"]["lastSeq"] >= 12
    finally:
        for device in devices:
            device.close()
    _eventually(lambda: _status(hub)["connections"] == 0)


def test_a_device_moving_to_another_worker_closes_its_old_connection(hub: HubProcess) -> None:
    key = _create(hub, "mover")
    first = connect_device(hub, "mover", password=sas_token(hub, "mover", key))
    assert first.wait_connack() == "Success"
    first_pid = _holder(hub, first)
    done: list[Device] = []
    try:
        # Connect again until the kernel puts the new connection on the other worker;
        # every time, the old connection is closed, wherever it is.
        for _ in range(20):
            second = connect_device(hub, "mover", password=sas_token(hub, "mover", key))
            assert second.wait_connack() == "Success"
            assert first.disconnected.wait(5)
            second_pid = _holder(hub, second)
            done.append(first)
            if second_pid != first_pid:
                break
            first, first_pid = second, second_pid
        else:
            raise AssertionError("20 connections in a row on one worker")
        assert not second.disconnected.wait(1)
        # The hub counts one connection and a direct method reaches the new one.
        second.subscribe("$iothub/methods/POST/#")

        responder = second.answer_method(lambda _request: (200, b'"moved"'))
        response = hub.api(
            "POST",
            "/twins/mover/methods",
            json={"methodName": "where", "responseTimeoutInSeconds": 5},
        )
        responder.join(10)
        assert response.json() == {"status": 200, "payload": "moved"}
        _eventually(lambda: _status(hub)["connections"] == 1)
        # Presence is written in batches every 2 s by each worker: the old worker must
        # not have written "Disconnected" after the new one wrote "Connected".
        time.sleep(4.5)
        assert hub.api("GET", "/devices/mover").json()["connectionState"] == "Connected"
    finally:
        for device in [*done, second]:
            device.close()


def test_a_worker_that_dies_is_restarted(hub: HubProcess) -> None:
    key = _create(hub, "survivor")
    device = connect_device(hub, "survivor", password=sas_token(hub, "survivor", key))
    assert device.wait_connack() == "Success"
    before = {w.pid for w in _workers(hub)}
    try:
        psutil.Process(_holder(hub, device)).send_signal(signal.SIGKILL)
        assert device.disconnected.wait(5)
    finally:
        device.close()
    # The hub notices: the device is disconnected in the registry, a new worker runs.
    _eventually(
        lambda: hub.api("GET", "/devices/survivor").json()["connectionState"] == "Disconnected"
    )
    _eventually(lambda: len({w.pid for w in _workers(hub)} - before) == 1, timeout=30)
    _eventually(lambda: _status(hub)["gatewayWorkers"] == 2, timeout=30)
    # Devices connect again, whichever worker they land on, and messages are stored.
    for i in range(6):
        device = connect_device(hub, "survivor", password=sas_token(hub, "survivor", key))
        try:
            assert device.wait_connack() == "Success"
            device.publish("devices/survivor/messages/events/", f'{{"i": {i}}}')
        finally:
            device.close()

    def stored() -> list[int]:
        rows = hub.api("GET", "/devices/survivor/telemetry", params={"top": 100}).json()
        return sorted(json.loads(row["body"])["i"] for row in rows)

    _eventually(lambda: stored() == list(range(6)))


def test_stopping_the_hub_stops_its_workers(hub: HubProcess) -> None:
    workers = _workers(hub)
    assert len(workers) == 2
    hub.stop()
    assert hub.process.returncode == 0
    assert not (hub.data / "run" / "hub.json").exists()
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


def test_workers_exit_when_the_hub_process_is_killed(hub: HubProcess) -> None:
    workers = _workers(hub)
    hub.process.kill()
    hub.process.wait(5)
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive  # nothing is left holding the MQTT port


def test_the_control_channel_refuses_processes_that_are_not_its_workers(hub: HubProcess) -> None:
    key = _create(hub, "guarded")
    device = connect_device(hub, "guarded", password=sas_token(hub, "guarded", key))
    assert device.wait_connack() == "Success"
    cmdline = _workers(hub)[0].cmdline()
    address = "\0" + cmdline[cmdline.index("--control") + 1].removeprefix("@")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as intruder:
            intruder.settimeout(5)
            intruder.connect(address)  # an abstract socket: anyone on the host can connect
            frames = b""
            for frame in (
                {"op": "hello", "worker": 0},
                {"op": "claim", "key": "guarded", "kinds": []},
            ):
                body = json.dumps(frame).encode()
                frames += struct.pack(">I", len(body)) + body
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                intruder.sendall(frames)
                assert intruder.recv(1) == b""  # closed without a word
        assert not device.disconnected.wait(1.5)  # the forged claim kicked nobody
        assert _status(hub)["gatewayWorkers"] == 2
    finally:
        device.close()

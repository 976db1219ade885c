"""Device messaging beyond the MQTT basics: the HTTPS device endpoint, throttling, and
the operator CLI for C2D, methods, telemetry, twins and IP filter rules."""

from __future__ import annotations

import json
import time

from tests.support.hubproc import HubProcess, run_cli
from tests.support.mqttdevice import connect_device, json_body, sas_token


def _create(hub: HubProcess, device_id: str) -> str:
    doc = hub.api("PUT", f"/devices/{device_id}", json={"deviceId": device_id}).json()
    return str(doc["authentication"]["symmetricKey"]["primaryKey"])


def _wait_rows(hub: HubProcess, device_id: str, count: int) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + 15
    rows: list[dict] = []  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        rows = hub.api("GET", f"/devices/{device_id}/telemetry").json()
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"{len(rows)} of {count} messages stored")


def test_https_device_endpoint(hub: HubProcess) -> None:
    key = _create(hub, "http-dev")
    with hub.client() as client:
        sent = client.post(
            "/devices/http-dev/messages/events",
            params={"api-version": "2021-04-12"},
            content=b'{"flow": 12.5}',
            headers={
                "Authorization": sas_token(hub, "http-dev", key),
                "iothub-app-site": "permian",
                "iothub-messageid": "h-1",
                "iothub-contenttype": "application/json",
            },
        )
        assert sent.status_code == 204, sent.text
        refused = client.post(
            "/devices/http-dev/messages/events",
            params={"api-version": "2021-04-12"},
            content=b"x",
            headers={"Authorization": sas_token(hub, "http-dev", "AAAA" + key[4:])},
        )
        assert refused.status_code == 401
    row = _wait_rows(hub, "http-dev", 1)[0]
    assert json.loads(row["body"]) == {"flow": 12.5}
    assert row["properties"] == {"site": "permian"}
    assert row["systemProperties"]["messageId"] == "h-1"
    events = hub.api("GET", "/security/events", params={"top": 1000}).json()
    assert any(e["kind"] == "https.telemetry" and e["identity"] == "http-dev" for e in events)


def test_throttling_holds_pubacks_then_disconnects_sustained_abuse(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory("throttled", env={"WELLGUARD_MQTT_RATE_PER_DEVICE": "5"})
    key = _create(hub, "thr-1")
    device = connect_device(hub, "thr-1", password=sas_token(hub, "thr-1", key), max_inflight=100)
    try:
        started = time.monotonic()
        for n in range(20):  # burst of 10, then 5/s: the last PUBACK ~2 s later
            device.publish("devices/thr-1/messages/events/", str(n), qos=1)
        assert time.monotonic() - started > 1.5
        for n in range(60):  # > 5 s of backlog at once: the hub gives up on this device
            device.client.publish("devices/thr-1/messages/events/", str(n), qos=1)
        assert device.disconnected.wait(10)
    finally:
        device.close()
    events = hub.api("GET", "/security/events", params={"top": 1000}).json()
    assert any(e["reason"] == "throttled" and e["identity"] == "thr-1" for e in events)
    with hub.client() as client:
        throttled = client.post(
            "/devices/thr-1/messages/events",
            params={"api-version": "2021-04-12"},
            content=b"x",
            headers={"Authorization": sas_token(hub, "thr-1", key)},
        )
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1


def test_operator_cli_for_messaging(hub: HubProcess) -> None:
    data = hub.data
    key = _create(hub, "cli-msg")
    device = connect_device(hub, "cli-msg", password=sas_token(hub, "cli-msg", key))
    try:
        device.subscribe("devices/cli-msg/messages/devicebound/#")
        device.subscribe("$iothub/methods/POST/#")
        sent = json.loads(
            run_cli(
                "c2d",
                "send",
                "cli-msg",
                "open choke",
                "--ttl",
                "60",
                "--prop",
                "step=2",
                "--format",
                "json",
                data=data,
            ).stdout
        )
        message = device.next_message()
        assert message.payload == b"open choke"
        assert f"%24.mid={sent['messageId']}" in message.topic

        responder = device.answer_method(lambda request: (201, json.dumps(json_body(request))))
        result = json.loads(
            run_cli(
                "method",
                "invoke",
                "cli-msg",
                "setRate",
                "--payload",
                '{"rate": 3}',
                "--format",
                "json",
                data=data,
            ).stdout
        )
        responder.join(10)
        assert result == {"status": 201, "payload": {"rate": 3}}
        device.publish("devices/cli-msg/messages/events/", '{"p": 1}')
    finally:
        device.close()
    _wait_rows(hub, "cli-msg", 1)
    shown = json.loads(
        run_cli("telemetry", "show", "cli-msg", "--format", "json", data=data).stdout
    )
    assert [json.loads(r["body"]) for r in shown] == [{"p": 1}]
    tail = run_cli("telemetry", "tail", "cli-msg", "--from-start", "--count", "1", data=data).stdout
    assert json.loads(tail.splitlines()[0])["seq"] == shown[0]["seq"]
    run_cli("twin", "update", "cli-msg", "--tags", '{"site": "eagleford"}', data=data)
    twin = json.loads(run_cli("twin", "show", "cli-msg", data=data).stdout)
    assert twin["tags"] == {"site": "eagleford"}
    rows = json.loads(
        run_cli(
            "twin",
            "query",
            "SELECT deviceId FROM devices WHERE tags.site = 'eagleford'",
            "--format",
            "json",
            data=data,
        ).stdout
    )
    assert rows == [{"deviceId": "cli-msg"}]


def test_ipfilter_cli(hub: HubProcess) -> None:
    data = hub.data
    try:
        run_cli("ipfilter", "add", "lab", "10.9.0.0/16", "--action", "reject", data=data)
        listed = json.loads(run_cli("ipfilter", "list", "--format", "json", data=data).stdout)
        assert listed["ipFilterRules"] == [
            {"filterName": "lab", "action": "Reject", "ipMask": "10.9.0.0/16"}
        ]
        bad = run_cli(
            "ipfilter", "add", "oops", "10.9.0.0/99", "--action", "reject", data=data, check=False
        )
        assert bad.returncode == 1
        assert "Traceback" not in bad.stderr
    finally:
        run_cli("ipfilter", "remove", "lab", data=data)
    assert (
        json.loads(run_cli("ipfilter", "list", "--format", "json", data=data).stdout)[
            "ipFilterRules"
        ]
        == []
    )


def test_metrics_are_public_but_status_needs_credentials(hub: HubProcess) -> None:
    with hub.client() as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/status", params={"api-version": "2021-04-12"}).status_code == 401

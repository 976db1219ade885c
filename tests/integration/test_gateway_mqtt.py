"""The hub gateway with a real MQTT client (paho-mqtt 2) over real TLS."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path

import pytest
from paho.mqtt.client import MQTTMessage

from tests.support.hubproc import HubProcess, random_loopback, run_cli
from tests.support.mqttdevice import connect_device, json_body, parse_topic_query, sas_token


@pytest.fixture(scope="module")
def hub(gateway_hub: HubProcess) -> HubProcess:
    """Every test here runs against both gateway layouts."""
    return gateway_hub


def _create(hub: HubProcess, device_id: str) -> str:
    doc = hub.api("PUT", f"/devices/{device_id}", json={"deviceId": device_id}).json()
    return str(doc["authentication"]["symmetricKey"]["primaryKey"])


def _events_since(hub: HubProcess, before: int) -> list[dict]:  # type: ignore[type-arg]
    events = hub.api("GET", "/security/events", params={"after": before, "top": 1000}).json()
    return list(events)


def _last_event_id(hub: HubProcess) -> int:
    events = hub.api("GET", "/security/events", params={"top": 1000}).json()
    while len(events) == 1000:
        more = hub.api(
            "GET", "/security/events", params={"after": events[-1]["id"], "top": 1000}
        ).json()
        if not more:
            break
        events = more
    return int(events[-1]["id"]) if events else 0


def _wait_event(hub: HubProcess, before: int, reason: str, timeout: float = 10) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in _events_since(hub, before):
            if event["reason"] == reason:
                return event
        time.sleep(0.1)
    raise AssertionError(f"no security event {reason!r}; saw {_events_since(hub, before)}")


def _telemetry(hub: HubProcess, device_id: str) -> list[dict]:  # type: ignore[type-arg]
    return list(hub.api("GET", f"/devices/{device_id}/telemetry", params={"top": 1000}).json())


def _wait_telemetry(hub: HubProcess, device_id: str, count: int, timeout: float = 15) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _telemetry(hub, device_id)
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"telemetry of {device_id}: {len(_telemetry(hub, device_id))} of {count}")


def test_sas_device_sends_telemetry_that_is_stored_with_properties(hub: HubProcess) -> None:
    key = _create(hub, "gw-tele")
    device = connect_device(hub, "gw-tele", password=sas_token(hub, "gw-tele", key))
    try:
        assert device.wait_connack() == "Success"
        topic = (
            "devices/gw-tele/messages/events/"
            "%24.mid=m-1&%24.ct=application%2Fjson&%24.ce=utf-8&site=permian"
        )
        device.publish(topic, json.dumps({"pressure": 512.5}))
        device.publish("devices/gw-tele/messages/events/", b"\xff\xfe binary", qos=1)
    finally:
        device.close()
    rows = _wait_telemetry(hub, "gw-tele", 2)
    first, second = rows[0], rows[1]
    assert json.loads(first["body"]) == {"pressure": 512.5}
    assert first["properties"] == {"site": "permian"}
    assert first["systemProperties"]["messageId"] == "m-1"
    assert first["systemProperties"]["contentType"] == "application/json"
    assert second["bodyEncoding"] == "base64"
    deadline = time.monotonic() + 10  # presence is written in batches
    while hub.api("GET", "/devices/gw-tele").json()["lastActivityTime"] is None:
        assert time.monotonic() < deadline, "lastActivityTime never set"
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_key", "bad_signature"),
        ("unknown_device", "unknown_device"),
        ("expired", "expired_token"),
        ("wrong_resource", "wrong_resource"),
        ("disabled", "disabled_device"),
        ("no_password", "missing_credentials"),
    ],
)
def test_refused_connections_look_alike_and_are_recorded(
    hub: HubProcess, case: str, reason: str
) -> None:
    device_id = f"gw-ref-{case}".replace("_", "-")
    key = _create(hub, device_id)
    other_key = _create(hub, device_id + "-x")
    password: str | None = sas_token(hub, device_id, key)
    connect_as = device_id
    if case == "wrong_key":
        password = sas_token(hub, device_id, other_key)
    elif case == "unknown_device":
        connect_as = "gw-nobody"
        password = sas_token(hub, "gw-nobody", key)
    elif case == "expired":
        password = sas_token(hub, device_id, key, ttl=-3600)
    elif case == "wrong_resource":
        password = sas_token(hub, device_id + "-x", key)
    elif case == "disabled":
        hub.api("POST", f"/devices/{device_id}/status", json={"status": "disabled"})
    elif case == "no_password":
        password = None
    before = _last_event_id(hub)
    device = connect_device(hub, connect_as, password=password)
    try:
        assert device.wait_connack() == "Not authorized"
        assert device.disconnected.wait(10)
    finally:
        device.close()
    event = _wait_event(hub, before, reason)
    assert event["kind"] == "mqtt.connect"
    assert event["identity"] == connect_as
    assert event["source"].startswith("127.")  # the client's address and port


def test_publishing_outside_its_scope_closes_the_connection(hub: HubProcess) -> None:
    key = _create(hub, "gw-scope")
    device = connect_device(hub, "gw-scope", password=sas_token(hub, "gw-scope", key))
    before = _last_event_id(hub)
    try:
        device.client.publish("devices/someone-else/messages/events/", b"x", qos=1)
        assert device.disconnected.wait(10)
    finally:
        device.close()
    event = _wait_event(hub, before, "topic_not_allowed")
    assert event["identity"] == "gw-scope"


def test_subscribing_outside_its_scope_closes_the_connection(hub: HubProcess) -> None:
    key = _create(hub, "gw-sub")
    device = connect_device(hub, "gw-sub", password=sas_token(hub, "gw-sub", key))
    before = _last_event_id(hub)
    try:
        device.client.subscribe("devices/someone-else/messages/devicebound/#", 1)
        assert device.disconnected.wait(10)
    finally:
        device.close()
    _wait_event(hub, before, "topic_not_allowed")


def test_qos2_publish_closes_the_connection(hub: HubProcess) -> None:
    key = _create(hub, "gw-qos2")
    device = connect_device(hub, "gw-qos2", password=sas_token(hub, "gw-qos2", key))
    before = _last_event_id(hub)
    try:
        device.client.publish("devices/gw-qos2/messages/events/", b"x", qos=2)
        assert device.disconnected.wait(10)
    finally:
        device.close()
    _wait_event(hub, before, "protocol_violation")


def test_twin_get_reported_patch_and_desired_notification(hub: HubProcess) -> None:
    key = _create(hub, "gw-twin")
    hub.api("PATCH", "/twins/gw-twin", json={"properties": {"desired": {"rate": 1}}})
    device = connect_device(hub, "gw-twin", password=sas_token(hub, "gw-twin", key))
    try:
        device.subscribe("$iothub/twin/res/#")
        device.subscribe("$iothub/twin/PATCH/properties/desired/#")
        got = device.twin_request("GET", "r1")
        assert got.topic.startswith("$iothub/twin/res/200/")
        assert json_body(got)["desired"] == {"rate": 1, "$version": 2}
        patched = device.twin_request("PATCH", "r2", json.dumps({"fw": "1.0.7"}).encode())
        assert patched.topic.startswith("$iothub/twin/res/204/")
        assert parse_topic_query(patched.topic)["$version"] == "2"
        twin = hub.api("GET", "/twins/gw-twin").json()
        assert twin["properties"]["reported"]["fw"] == "1.0.7"
        hub.api("PATCH", "/twins/gw-twin", json={"properties": {"desired": {"rate": 5}}})
        pushed = device.next_message()
        assert pushed.topic == "$iothub/twin/PATCH/properties/desired/?$version=3"
        assert json_body(pushed) == {"rate": 5, "$version": 3}
        bad = device.twin_request("PATCH", "r3", b"not json")
        assert bad.topic.startswith("$iothub/twin/res/400/")
    finally:
        device.close()


def test_direct_method_round_trip(hub: HubProcess) -> None:
    key = _create(hub, "gw-method")
    device = connect_device(hub, "gw-method", password=sas_token(hub, "gw-method", key))
    try:
        device.subscribe("$iothub/methods/POST/#")

        def answer(request: MQTTMessage) -> tuple[int, str]:
            assert request.topic.startswith("$iothub/methods/POST/reboot/")
            return 200, json.dumps({"accepted": json_body(request)["delay"]})

        responder = device.answer_method(answer)
        response = hub.api(
            "POST",
            "/twins/gw-method/methods",
            json={"methodName": "reboot", "payload": {"delay": 5}, "responseTimeoutInSeconds": 10},
        )
        responder.join(10)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": 200, "payload": {"accepted": 5}}
        slow = hub.api(
            "POST",
            "/twins/gw-method/methods",
            json={"methodName": "ignored", "payload": None, "responseTimeoutInSeconds": 5},
        )
        assert slow.status_code == 504
    finally:
        device.close()
    offline = hub.api("POST", "/twins/gw-method/methods", json={"methodName": "reboot"})
    assert offline.status_code == 404


def test_c2d_delivery_completion_and_feedback(hub: HubProcess) -> None:
    key = _create(hub, "gw-c2d")
    sent = hub.api(
        "POST",
        "/devices/gw-c2d/messages/deviceBound",
        json={
            "body": "close valve",
            "ack": "full",
            "properties": {"valve": "7"},
            "messageId": "cmd-1",
        },
    )
    assert sent.status_code == 200, sent.text
    device = connect_device(hub, "gw-c2d", password=sas_token(hub, "gw-c2d", key))
    try:
        device.subscribe("devices/gw-c2d/messages/devicebound/#")
        message = device.next_message()
        assert message.payload == b"close valve"
        assert "valve=7" in message.topic
        assert "%24.mid=cmd-1" in message.topic
    finally:
        device.close()
    deadline = time.monotonic() + 10
    feedback: list[dict] = []  # type: ignore[type-arg]
    while time.monotonic() < deadline and not feedback:
        feedback = [
            f
            for f in hub.api("GET", "/messages/deviceBound/feedback").json()
            if f["originalMessageId"] == "cmd-1"
        ]
        time.sleep(0.1)
    assert feedback[0]["statusCode"] == "Success"
    purged = hub.api("DELETE", "/devices/gw-c2d/commands").json()
    assert purged["totalMessagesPurged"] == 0


def test_c2d_queue_is_bounded(hub: HubProcess) -> None:
    _create(hub, "gw-c2d-full")
    for i in range(50):
        assert (
            hub.api(
                "POST", "/devices/gw-c2d-full/messages/deviceBound", json={"body": str(i)}
            ).status_code
            == 200
        )
    full = hub.api("POST", "/devices/gw-c2d-full/messages/deviceBound", json={"body": "51"})
    assert full.status_code == 403
    assert full.json()["errorCode"] == "DeviceMaximumQueueDepthExceeded"
    assert hub.api("DELETE", "/devices/gw-c2d-full/commands").json()["totalMessagesPurged"] == 50


def test_disabling_a_device_closes_its_live_connection(hub: HubProcess) -> None:
    key = _create(hub, "gw-live")
    device = connect_device(hub, "gw-live", password=sas_token(hub, "gw-live", key))
    before = _last_event_id(hub)
    try:
        assert device.wait_connack() == "Success"
        started = time.monotonic()
        run_cli("device", "disable", "gw-live", "--reason", "stolen", data=hub.data)
        assert device.disconnected.wait(5)
        assert time.monotonic() - started < 5  # includes the CLI's own start-up
    finally:
        device.close()
    event = _wait_event(hub, before, "disabled_device")
    assert event["kind"] == "mqtt.enforcement"


def test_rotating_keys_keeps_devices_on_the_old_primary_connected(hub: HubProcess) -> None:
    key = _create(hub, "gw-rotate")
    device = connect_device(hub, "gw-rotate", password=sas_token(hub, "gw-rotate", key))
    try:
        hub.api("POST", "/devices/gw-rotate/keys/rotate")
        time.sleep(1.5)
        assert not device.disconnected.is_set()  # old primary is now the secondary
        hub.api("POST", "/devices/gw-rotate/keys/rotate")
        assert device.disconnected.wait(5)  # and now it is gone
    finally:
        device.close()


def test_second_connection_with_the_same_id_replaces_the_first(hub: HubProcess) -> None:
    key = _create(hub, "gw-dup")
    first = connect_device(hub, "gw-dup", password=sas_token(hub, "gw-dup", key))
    before = _last_event_id(hub)
    second = connect_device(hub, "gw-dup", password=sas_token(hub, "gw-dup", key))
    try:
        assert second.wait_connack() == "Success"
        assert first.disconnected.wait(5)
        assert not second.disconnected.is_set()
    finally:
        first.close()
        second.close()
    _wait_event(hub, before, "duplicate_client_id")


def test_a_replacing_connection_keeps_the_persistent_session(hub: HubProcess) -> None:
    # A device back from a network outage the hub has not noticed yet replaces its own
    # old connection; with clean_session=False (the device SDK's) its subscriptions stay,
    # since the SDK never subscribes again after a reconnect.
    key = _create(hub, "gw-resume")
    first = connect_device(
        hub, "gw-resume", password=sas_token(hub, "gw-resume", key), clean_session=False
    )
    second = None
    try:
        first.subscribe("$iothub/methods/POST/#")
        second = connect_device(
            hub, "gw-resume", password=sas_token(hub, "gw-resume", key), clean_session=False
        )
        assert second.wait_connack() == "Success"
        assert first.disconnected.wait(5)
        responder = second.answer_method(lambda _request: (200, b'"here"'))
        response = hub.api(
            "POST",
            "/twins/gw-resume/methods",
            json={"methodName": "ping", "responseTimeoutInSeconds": 5},
        )
        responder.join(10)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": 200, "payload": "here"}
    finally:
        first.close()
        if second is not None:
            second.close()


def test_ip_filter_refuses_before_tls_and_closes_live_connections(hub: HubProcess) -> None:
    key = _create(hub, "gw-ipf")
    live = connect_device(
        hub, "gw-ipf", password=sas_token(hub, "gw-ipf", key), bind_address="127.0.0.66"
    )
    before = _last_event_id(hub)
    try:
        assert live.wait_connack() == "Success"
        rules = {
            "ipFilterRules": [
                {"filterName": "quarantine", "ipMask": "127.0.0.66/32", "action": "Reject"}
            ]
        }
        assert hub.api("PUT", "/ipfilter", json=rules).status_code == 200
        applied = time.monotonic()
        assert live.disconnected.wait(5)
        # A new connection from there gets no TLS at all, within a second of the change
        # (gateway workers apply it when the change reaches them: one relay hop).
        context = ssl.create_default_context(cafile=str(hub.root_ca))
        while True:
            try:
                with socket.create_connection(
                    (hub.mqtt_host, hub.mqtt_port), timeout=5, source_address=("127.0.0.66", 0)
                ) as raw:
                    context.wrap_socket(raw, server_hostname=hub.mqtt_host).close()
            except (ssl.SSLError, OSError):
                break
            assert time.monotonic() - applied < 1.0, "still accepted a second after the rule"
            time.sleep(0.05)
        other = connect_device(hub, "gw-ipf", password=sas_token(hub, "gw-ipf", key))
        assert other.wait_connack() == "Success"
        other.close()
    finally:
        live.close()
        hub.api("PUT", "/ipfilter", json={"ipFilterRules": []})
    event = _wait_event(hub, before, "ip_filtered")
    assert event["source"].startswith("127.0.0.66:")


def test_keepalive_timeout_closes_silent_clients(hub: HubProcess) -> None:
    key = _create(hub, "gw-ka")
    context = ssl.create_default_context(cafile=str(hub.root_ca))
    from wellguard.core.mqtt import Connect, encode

    username = f"{hub.hostname}/gw-ka/?api-version=2021-04-12"
    connect = Connect(
        client_id="gw-ka",
        keep_alive=1,
        username=username,
        password=sas_token(hub, "gw-ka", key).encode(),
    )
    raw = socket.create_connection(
        (hub.mqtt_host, hub.mqtt_port), timeout=10, source_address=(random_loopback(), 0)
    )
    with context.wrap_socket(raw, server_hostname=hub.mqtt_host) as tls:
        tls.sendall(encode(connect))
        assert tls.recv(4)[:1] == b"\x20"  # CONNACK
        started = time.monotonic()
        assert tls.recv(1) == b""  # server closes: 1.5 x keep-alive with nothing received
        assert 1.0 < time.monotonic() - started < 5


def test_requests_sent_just_before_disconnect_are_carried_out_without_blame(
    hub: HubProcess,
) -> None:
    # A device that patches its twin, subscribes and disconnects in one write (a sleepy
    # device going back to sleep) did nothing wrong: the patch is applied, and the
    # answers the hub can no longer send are not a protocol violation.
    from wellguard.core.mqtt import Connect, Disconnect, Publish, Subscribe, encode

    key = _create(hub, "gw-bye")
    context = ssl.create_default_context(cafile=str(hub.root_ca))
    connect = Connect(
        client_id="gw-bye",
        keep_alive=60,
        username=f"{hub.hostname}/gw-bye/?api-version=2021-04-12",
        password=sas_token(hub, "gw-bye", key).encode(),
    )
    patch = Publish(
        "$iothub/twin/PATCH/properties/reported/?$rid=9",
        json.dumps({"battery": 71}).encode(),
        qos=1,
        packet_id=7,
    )
    subscribe = Subscribe(8, (("devices/gw-bye/messages/devicebound/#", 1),))
    before = _last_event_id(hub)
    raw = socket.create_connection(
        (hub.mqtt_host, hub.mqtt_port), timeout=10, source_address=(random_loopback(), 0)
    )
    with context.wrap_socket(raw, server_hostname=hub.mqtt_host) as tls:
        tls.sendall(encode(connect))
        assert tls.recv(4)[:1] == b"\x20"  # CONNACK
        tls.sendall(encode(patch) + encode(subscribe) + encode(Disconnect()))
        while tls.recv(4096):  # until the hub closes
            pass
    deadline = time.monotonic() + 10
    while hub.api("GET", "/twins/gw-bye").json()["properties"]["reported"].get("battery") != 71:
        assert time.monotonic() < deadline, "the reported patch was not applied"
        time.sleep(0.1)
    time.sleep(0.5)  # a violation, had there been one, is logged when the packets are read
    mine = [e for e in _events_since(hub, before) if e["identity"] == "gw-bye"]
    assert mine == []


def test_connection_state_events_reach_a_route_and_are_not_journaled_without_one(
    hub: HubProcess,
) -> None:
    key = _create(hub, "gw-states")

    def visit() -> None:
        device = connect_device(hub, "gw-states", password=sas_token(hub, "gw-states", key))
        device.close()

    def last_seq() -> int:
        return int(hub.api("GET", "/status").json()["journal"]["lastSeq"])

    before = last_seq()
    visit()
    time.sleep(1.0)
    assert last_seq() == before  # no route takes them: IoT Hub emits none either
    endpoint = {"kind": "jsonl", "path": "gw-states.jsonl"}
    route = {
        "source": "DeviceConnectionStateEvents",
        "condition": "$connectionDeviceId = 'gw-states'",
        "endpointNames": ["gw-states-file"],
    }
    assert hub.api("PUT", "/routing/endpoints/gw-states-file", json=endpoint).status_code < 300
    assert hub.api("PUT", "/routing/routes/gw-states", json=route).status_code < 300
    try:
        time.sleep(1.2)  # a new route takes effect within a second, in every process
        visit()
        exported = hub.data / "exports" / "gw-states.jsonl"
        deadline = time.monotonic() + 15
        states: list[str] = []
        while states != ["Connected", "Disconnected"]:
            assert time.monotonic() < deadline, f"connection states exported: {states}"
            time.sleep(0.1)
            lines = exported.read_text().splitlines() if exported.exists() else []
            states = [json.loads(json.loads(line)["body"])["connectionState"] for line in lines]
    finally:
        hub.api("DELETE", "/routing/routes/gw-states")
        hub.api("DELETE", "/routing/endpoints/gw-states-file")


def test_x509_devices_connect_with_their_certificates(hub: HubProcess, tmp_path: Path) -> None:
    run_cli(
        "device",
        "create",
        "gw-x509-t",
        "--auth",
        "x509-thumbprint",
        "--out",
        str(tmp_path),
        data=hub.data,
    )
    run_cli(
        "device", "create", "gw-x509-ca", "--auth", "x509-ca", "--out", str(tmp_path), data=hub.data
    )
    for device_id in ("gw-x509-t", "gw-x509-ca"):
        device = connect_device(
            hub,
            device_id,
            certfile=tmp_path / f"{device_id}.cert.pem",
            keyfile=tmp_path / f"{device_id}.key.pem",
        )
        try:
            assert device.wait_connack() == "Success", device_id
            device.publish(f"devices/{device_id}/messages/events/", b"{}")
        finally:
            device.close()
    # a certificate of one device does not open another
    before = _last_event_id(hub)
    wrong = connect_device(
        hub,
        "gw-x509-ca",
        certfile=tmp_path / "gw-x509-t.cert.pem",
        keyfile=tmp_path / "gw-x509-t.key.pem",
    )
    assert wrong.wait_connack() == "Not authorized"
    wrong.close()
    _wait_event(hub, before, "certificate_untrusted")
    # revoking the CA-issued certificate closes the door
    serial = hub.api("GET", "/pki/certificates", params={"deviceId": "gw-x509-ca"}).json()[0][
        "serialNumber"
    ]
    hub.api("POST", f"/pki/certificates/{serial}/revoke", json={"reason": "keyCompromise"})
    revoked = connect_device(
        hub,
        "gw-x509-ca",
        certfile=tmp_path / "gw-x509-ca.cert.pem",
        keyfile=tmp_path / "gw-x509-ca.key.pem",
    )
    assert revoked.wait_connack() == "Not authorized"
    revoked.close()
    _wait_event(hub, before, "certificate_revoked")


def test_metrics_and_status(hub: HubProcess) -> None:
    key = _create(hub, "gw-metrics")
    device = connect_device(hub, "gw-metrics", password=sas_token(hub, "gw-metrics", key))
    try:
        device.publish("devices/gw-metrics/messages/events/", b"1")
        status = json.loads(run_cli("status", "--format", "json", data=hub.data).stdout)
        assert status["connections"] >= 1
    finally:
        device.close()
    with hub.client() as client:
        text = client.get("/metrics").text
    assert "wellguard_connections" in text
    assert "wellguard_puback_latency_seconds_bucket" in text
    status = json.loads(run_cli("status", "--format", "json", data=hub.data).stdout)
    assert status["journal"]["lastSeq"] >= 1
    assert status["devices"]["total"] >= 1
    # Its first connect read the device's records; they were held for the next one.
    # (Workers send their metrics to the hub process once a second.)
    deadline = time.monotonic() + 5
    while _metric(text, "wellguard_auth_registry_read_batches_total") < 1:
        assert time.monotonic() < deadline, "no registry read counted"
        time.sleep(0.2)
        with hub.client() as client:
            text = client.get("/metrics").text
    assert _metric(text, "wellguard_auth_registry_reads_total") >= 1
    if status["gatewayWorkers"] == 0:  # with workers the device may land on another
        again = connect_device(hub, "gw-metrics", password=sas_token(hub, "gw-metrics", key))
        again.close()
        with hub.client() as client:
            after = client.get("/metrics").text
        reads = "wellguard_auth_registry_reads_total"
        assert _metric(after, reads) == _metric(text, reads)


def _metric(exposition: str, name: str) -> float:
    """A sample's value in a Prometheus text exposition (summed over its labels)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith((name + " ", name + "{"))
    )


def test_repeated_failures_from_one_address_get_it_banned(hub: HubProcess) -> None:
    key = _create(hub, "gw-ban")
    address = random_loopback()
    before = _last_event_id(hub)
    for _ in range(10):
        bad = connect_device(
            hub, "gw-ban", password=sas_token(hub, "gw-ban", "AAAA" + key[4:]), bind_address=address
        )
        assert bad.wait_connack() == "Not authorized"
        bad.close()
    # now any connection from that address is dropped before TLS
    context = ssl.create_default_context(cafile=str(hub.root_ca))
    with (
        socket.create_connection(
            (hub.mqtt_host, hub.mqtt_port), timeout=5, source_address=(address, 0)
        ) as raw,
        pytest.raises(OSError),
    ):
        context.wrap_socket(raw, server_hostname=hub.mqtt_host).close()
    _wait_event(hub, before, "banned")
    elsewhere = connect_device(hub, "gw-ban", password=sas_token(hub, "gw-ban", key))
    assert elsewhere.wait_connack() == "Success"
    elsewhere.close()

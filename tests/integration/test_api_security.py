"""The REST API as an attacker and a careless client see it: opaque refusals, precise
security events, etags, size limits, TLS versions."""

from __future__ import annotations

import socket
import ssl
import time
import warnings

import httpx

from tests.support.hubproc import HubProcess
from wellguard.core.identity import generate_sas_token


def _events(hub: HubProcess) -> list[dict]:  # type: ignore[type-arg]
    return hub.api("GET", "/security/events", params={"top": 1000}).json()


def test_each_auth_failure_is_opaque_on_the_wire_and_precise_in_the_log(hub: HubProcess) -> None:
    policies = {p["keyName"]: p for p in hub.api("GET", "/policies").json()}
    host = f"{hub.hostname}:{hub.api_port}"
    now = int(time.time())
    owner_key = hub.admin["sharedAccessKey"]
    wrong_key = policies["service"]["primaryKey"]
    attempts = {
        "missing_credentials": None,
        "malformed_token": "Bearer abc",
        "bad_signature": generate_sas_token(host, wrong_key, now + 300, key_name="iothubowner"),
        "expired_token": generate_sas_token(host, owner_key, now - 3600, key_name="iothubowner"),
        "wrong_resource": generate_sas_token(
            "other-hub.example", owner_key, now + 300, key_name="iothubowner"
        ),
        "unknown_policy": generate_sas_token(host, owner_key, now + 300, key_name="nobody"),
        "insufficient_rights": generate_sas_token(
            host, policies["registryRead"]["primaryKey"], now + 300, key_name="registryRead"
        ),
    }
    before = max((e["id"] for e in _events(hub)), default=0)
    bodies = []
    with hub.client() as client:
        for token in attempts.values():
            headers = {"Authorization": token} if token else {}
            response = client.put(
                "/devices/intruder",
                params={"api-version": "2021-04-12"},
                headers=headers,
                json={"deviceId": "intruder"},
            )
            assert response.status_code == 401
            body = response.json()
            body.pop("trackingId")
            body.pop("ExceptionMessage")
            bodies.append(body)
    assert all(body == bodies[0] for body in bodies), bodies
    events = [e for e in _events(hub) if e["id"] > before]
    assert [e["reason"] for e in events] == list(attempts)
    assert all(e["kind"] == "api.auth" and e["source"].startswith("127.0.0.1:") for e in events)
    assert hub.api("GET", "/devices/intruder").status_code == 404


def test_stale_etag_is_refused_with_412(hub: HubProcess) -> None:
    created = hub.api("PUT", "/devices/etag-1", json={"deviceId": "etag-1"}).json()
    first = hub.api(
        "PUT",
        "/devices/etag-1",
        json={"deviceId": "etag-1", "status": "disabled"},
        headers={"If-Match": f'"{created["etag"]}"'},
    )
    assert first.status_code == 200
    assert first.headers["ETag"] == f'"{first.json()["etag"]}"'
    stale = hub.api(
        "PUT",
        "/devices/etag-1",
        json={"deviceId": "etag-1", "status": "enabled"},
        headers={"If-Match": f'"{created["etag"]}"'},
    )
    assert stale.status_code == 412
    assert stale.json()["errorCode"] == "PreconditionFailed"
    shown = hub.api("GET", "/devices/etag-1").json()
    assert (shown["status"], shown["etag"]) == ("disabled", first.json()["etag"])
    assert (
        hub.api(
            "DELETE", "/devices/etag-1", headers={"If-Match": f'"{created["etag"]}"'}
        ).status_code
        == 412
    )
    assert hub.api("DELETE", "/devices/etag-1", headers={"If-Match": '"*"'}).status_code == 204


def test_create_twice_conflicts_and_ids_are_validated(hub: HubProcess) -> None:
    assert hub.api("PUT", "/devices/dup-1", json={}).status_code == 200
    again = hub.api("PUT", "/devices/dup-1", json={})
    assert again.status_code == 409
    assert again.json()["errorCode"] == "DeviceAlreadyExists"
    bad = hub.api("PUT", "/devices/" + "x" * 129, json={})
    assert bad.status_code == 400
    assert "deviceId" in bad.json()["message"]
    assert hub.api("PUT", "/devices/bad%20space", json={}).status_code == 400


def test_bad_bodies_get_clear_400s(hub: HubProcess) -> None:
    cases = [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
    ]
    for raw, ctype in cases:
        response = hub.api("PUT", "/devices/body-1", content=raw, headers={"Content-Type": ctype})
        assert response.status_code == 400, response.text
        assert response.json()["errorCode"] == "ArgumentInvalid"
    wrong_type = hub.api("PUT", "/devices/body-1", json={"authentication": {"type": "password"}})
    assert wrong_type.status_code == 400
    assert "authentication.type" in wrong_type.json()["message"]
    bad_key = hub.api(
        "PUT",
        "/devices/body-1",
        json={
            "authentication": {
                "type": "sas",
                "symmetricKey": {"primaryKey": "not base64!", "secondaryKey": "x"},
            }
        },
    )
    assert bad_key.status_code == 400


def test_oversize_body_is_refused(hub: HubProcess) -> None:
    big = {"deviceId": "big-1", "statusReason": "x" * 2_000_000}
    response = hub.api("PUT", "/devices/big-1", json=big)
    assert response.status_code == 413
    assert response.json()["errorCode"] == "RequestEntityTooLarge"
    assert hub.api("GET", "/devices/big-1").status_code == 404


def test_disabled_device_is_reported_as_disabled(hub: HubProcess) -> None:
    hub.api("PUT", "/devices/dis-1", json={})
    hub.api("POST", "/devices/dis-1/status", json={"status": "disabled", "reason": "maintenance"})
    twin = hub.api("GET", "/twins/dis-1").json()
    assert (twin["status"], twin["statusReason"]) == ("disabled", "maintenance")
    device = hub.api("GET", "/devices/dis-1").json()
    assert device["status"] == "disabled"


def test_openapi_is_published(hub: HubProcess) -> None:
    with hub.client() as client:
        spec = client.get("/openapi.json").json()
    for path in (
        "/devices/{device_id}",
        "/twins/{device_id}",
        "/devices/query",
        "/pki/crl",
        "/audit",
    ):
        assert path in spec["paths"]


def _handshake(hub: HubProcess, low: ssl.TLSVersion, high: ssl.TLSVersion) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(hub.root_ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are deprecated
        context.minimum_version = low
        context.maximum_version = high
    context.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", hub.api_port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost"):
                return True
        except (ssl.SSLError, OSError):
            return False


def test_tls_1_2_is_the_floor(hub: HubProcess) -> None:
    assert _handshake(hub, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2) is True
    assert _handshake(hub, ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3) is True
    assert _handshake(hub, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1) is False


def test_untrusting_clients_cannot_talk_to_the_hub(hub: HubProcess) -> None:
    with httpx.Client(base_url=hub.api_url, timeout=10) as client:
        try:
            client.get("/health")
            verified = True
        except httpx.ConnectError:
            verified = False
    assert verified is False  # the hub CA is private: only root-ca.pem makes it trusted

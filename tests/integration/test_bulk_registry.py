"""``POST /devices``, IoT Hub's bulk registry operation, over the hub's REST API: each
entry applies on its own, a malformed request changes nothing, and the answer is a
BulkRegistryOperationResult either way."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest

from tests.support.hubproc import HubProcess


def create(device_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": device_id, "importMode": "create", **fields}


def last_audit_seq(hub: HubProcess) -> int:
    entries = hub.api("GET", "/audit", params={"top": 1000}).json()
    while len(entries) == 1000:
        more = hub.api("GET", "/audit", params={"top": 1000, "after": entries[-1]["seq"]}).json()
        if not more:
            break
        entries = more
    return int(entries[-1]["seq"]) if entries else 0


def test_each_entry_applies_on_its_own_and_failures_come_back_with_400(hub: HubProcess) -> None:
    old = hub.api("PUT", "/devices/bulk-old", json={"deviceId": "bulk-old"}).json()
    for device_id in ("bulk-dup", "bulk-gone"):
        hub.api("PUT", f"/devices/{device_id}", json={"deviceId": device_id}).raise_for_status()
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    before = last_audit_seq(hub)

    response = hub.api(
        "POST",
        "/devices",
        json=[
            {
                "id": "bulk-new",
                "importMode": "create",
                "authentication": {"type": "sas", "symmetricKey": {"primaryKey": key}},
                "tags": {"site": "permian"},
            },
            {"id": "bulk-dup", "importMode": "create"},
            {
                "id": "bulk-dup",
                "moduleId": "agent",
                "importMode": "create",
            },
            {
                "id": "bulk-old",
                "importMode": "updateIfMatchETag",
                "eTag": old["etag"],
                "status": "disabled",
                "statusReason": "bulk",
            },
            {"id": "bulk-gone", "importMode": "delete"},
            {"id": "bulk-nobody", "importMode": "deleteIfMatchETag", "eTag": "abc"},
        ],
    )

    assert response.status_code == 400
    assert response.headers["IotHubErrorCode"] == "BulkRegistryOperationFailure"
    body = response.json()
    assert body["isSuccessful"] is False
    assert body["warnings"] == []
    assert [
        (e["deviceId"], e.get("moduleId"), e["errorCode"], e["operation"]) for e in body["errors"]
    ] == [
        ("bulk-dup", None, "DeviceAlreadyExists", "create"),
        ("bulk-dup", "agent", "ArgumentInvalid", "create"),
        ("bulk-nobody", None, "DeviceNotFound", "deleteIfMatchETag"),
    ]
    assert all(e["errorStatus"] for e in body["errors"])

    created = hub.api("GET", "/devices/bulk-new").json()
    assert created["authentication"]["symmetricKey"]["primaryKey"] == key
    assert hub.api("GET", "/twins/bulk-new").json()["tags"] == {"site": "permian"}
    updated = hub.api("GET", "/devices/bulk-old").json()
    assert (updated["status"], updated["statusReason"]) == ("disabled", "bulk")
    assert updated["authentication"] == old["authentication"]
    assert hub.api("GET", "/devices/bulk-gone").status_code == 404
    audit = hub.api("GET", "/audit", params={"after": before}).json()
    assert [(e["action"], e["target"]) for e in audit] == [
        ("device.create", "bulk-new"),
        ("device.update", "bulk-old"),
        ("device.delete", "bulk-gone"),
    ]
    assert hub.api("GET", "/audit/verify").json()["ok"] is True
    cleanup = [{"id": i, "importMode": "delete"} for i in ("bulk-new", "bulk-old", "bulk-dup")]
    assert hub.api("POST", "/devices", json=cleanup).status_code == 200


def test_a_call_that_applies_entirely_gets_200(fresh_hub: HubProcess) -> None:
    ids = [f"bulk-ok-{n:03d}" for n in range(100)]

    created = fresh_hub.api("POST", "/devices", json=[create(i) for i in ids])

    assert created.status_code == 200
    assert created.json() == {"isSuccessful": True, "errors": [], "warnings": []}
    assert "IotHubErrorCode" not in created.headers
    listed = fresh_hub.api("GET", "/devices", params={"top": 1000}).json()
    assert [d["deviceId"] for d in listed] == ids
    assert fresh_hub.api("GET", "/statistics/devices").json()["totalDeviceCount"] == 100

    deleted = fresh_hub.api(
        "POST", "/devices", json=[{"id": i, "importMode": "delete"} for i in ids]
    )

    assert deleted.status_code == 200
    assert fresh_hub.api("GET", "/statistics/devices").json()["totalDeviceCount"] == 0


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"id": "bulk-bad-1", "importMode": "create"}, "ArgumentInvalid", "JSON array"),
        (
            [create(f"bulk-bad-{n}") for n in range(101)],
            "ArgumentInvalid",
            "at most 100 entries, not 101",
        ),
        (
            [create("bulk-bad-1"), {"id": "bulk-bad-2", "importMode": "createOrUpdate"}],
            "ArgumentInvalid",
            "entry 1: importMode must be one of create, update,",
        ),
        ([create("bulk-bad-1"), {"id": "bulk-bad-2"}], "ArgumentInvalid", "entry 1: importMode"),
        ([create("bulk bad")], "ArgumentInvalid", "entry 0: id must be 1-128 characters"),
        ([create("bulk-bad-1"), "bulk-bad-2"], "ArgumentInvalid", "entry 1: must be a JSON object"),
        (
            [create("bulk-bad-1", authentication={"type": "password"})],
            "ArgumentInvalid",
            "entry 0: authentication.type must be sas, selfSigned",
        ),
        (
            [create("bulk-bad-1", status="paused")],
            "ArgumentInvalid",
            "entry 0: status must be enabled or disabled",
        ),
        (
            [create("bulk-bad-1", importmode="create")],
            "ArgumentInvalid",
            "entry 0: unknown field 'importmode'",
        ),
        (
            [{"id": "bulk-bad-1", "importMode": "updateIfMatchETag"}],
            "ArgumentInvalid",
            "entry 0: importMode updateIfMatchETag needs eTag",
        ),
        (
            [create("bulk-bad-1", properties={"reported": {"fw": "1.0"}})],
            "ArgumentInvalid",
            "entry 0: reported properties are written by the device",
        ),
        (
            [create("bulk-bad-1"), create("bulk-bad-2"), create("bulk-bad-1")],
            "DeviceDefinedMultipleTimes",
            "repeated: bulk-bad-1",
        ),
    ],
    ids=[
        "not-a-list",
        "101-entries",
        "unknown-import-mode",
        "no-import-mode",
        "bad-id",
        "entry-not-an-object",
        "bad-auth-type",
        "bad-status",
        "unknown-field",
        "if-match-without-etag",
        "reported-properties",
        "repeated-device",
    ],
)
def test_a_malformed_request_is_refused_whole_and_changes_nothing(
    hub: HubProcess, body: Any, code: str, message: str
) -> None:
    response = hub.api("POST", "/devices", json=body)

    assert response.status_code == 400
    refusal = response.json()
    assert refusal["errorCode"] == code
    assert message in refusal["message"], refusal["message"]
    # Still readable as a BulkRegistryOperationResult, which is what the SDKs parse.
    assert (refusal["isSuccessful"], refusal["errors"]) == (False, [])
    assert hub.api("GET", "/devices/bulk-bad-1").status_code == 404


def test_fields_a_mode_does_not_use_are_ignored_as_the_dotnet_sdk_sends_them(
    hub: HubProcess,
) -> None:
    for device_id in ("bulk-net-1", "bulk-net-2"):
        hub.api("PUT", f"/devices/{device_id}", json={"deviceId": device_id}).raise_for_status()
    twin_etag = hub.api("GET", "/twins/bulk-net-2").json()["etag"]
    # What ExportImportDevice(device, mode) of Microsoft.Azure.Devices serializes.
    device_fields = {
        "status": "enabled",
        "authentication": {
            "symmetricKey": {"primaryKey": None, "secondaryKey": None},
            "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            "type": "sas",
        },
        "capabilities": {"iotEdge": False},
        "deviceScope": None,
    }

    response = hub.api(
        "POST",
        "/devices",
        json=[
            {"id": "bulk-net-1", "importMode": "delete", **device_fields},
            {
                "id": "bulk-net-2",
                "importMode": "updateTwinIfMatchETag",
                "twinETag": f'"{twin_etag}"',
                "tags": {"site": "permian"},
                **device_fields,
            },
        ],
    )

    assert response.status_code == 200, response.text
    assert hub.api("GET", "/devices/bulk-net-1").status_code == 404
    assert hub.api("GET", "/twins/bulk-net-2").json()["tags"] == {"site": "permian"}
    cleanup = [{"id": "bulk-net-2", "importMode": "delete"}]
    assert hub.api("POST", "/devices", json=cleanup).status_code == 200


def test_bulk_operations_need_registry_write(hub: HubProcess) -> None:
    policies = {p["keyName"]: p for p in hub.api("GET", "/policies").json()}
    token = hub.token("registryRead", policies["registryRead"]["primaryKey"])

    response = hub.api(
        "POST", "/devices", json=[create("bulk-read-only")], headers={"Authorization": token}
    )

    assert response.status_code == 401
    assert hub.api("GET", "/devices/bulk-read-only").status_code == 404

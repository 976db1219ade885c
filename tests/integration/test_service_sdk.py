"""Microsoft's service SDK (azure-iot-hub 2.7.0) drives wellguard unchanged.

Each test runs one scenario script from ``sdk_scripts/`` in the SDK's own interpreter
(the SDK pins paho-mqtt<2, which the main virtualenv cannot have) against a hub started
on a free port, and asserts on the JSON the script prints: values read back, etags that
change, and the HTTP status of every refusal. The scripts trust the hub's CA through
``registry_manager.protocol.config.connection.verify``, as a user of a private hub does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.hubproc import HubProcess
from tests.support.requirements import sdk_python

pytestmark = pytest.mark.sdk

SCRIPTS = Path(__file__).with_name("sdk_scripts")


@pytest.fixture(autouse=True)
def _sdk_interpreter() -> None:
    """Skip (or fail under WELLGUARD_REQUIRE_ALL=1) before starting a hub for nothing."""
    sdk_python()


def run_scenario(script: str, hub: HubProcess, **arguments: Any) -> dict[str, Any]:
    """Run ``sdk_scripts/SCRIPT`` with the SDK interpreter; return what it printed."""
    arguments = {
        "connection_string": hub.service_connection_string(),
        "root_ca": str(hub.root_ca),
        **arguments,
    }
    proc = subprocess.run(
        [sdk_python(), str(SCRIPTS / script)],
        input=json.dumps(arguments),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stderr}\n--- hub log ---\n{hub.log()}"
    results: dict[str, Any] = json.loads(proc.stdout)
    return results


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def key_bytes(text: str) -> int:
    """Length of a base64 key, or -1 when it is not base64."""
    try:
        return len(base64.b64decode(text, validate=True))
    except (binascii.Error, TypeError):
        return -1


def report_properties(hub: HubProcess, device_id: str, reported: dict[str, Any]) -> None:
    """Give a device twin reported properties, as the device itself would have sent them.

    Only a device writes reported properties (the service API refuses them, see
    ``test_modules_twins_and_methods_to_an_offline_device``) and the MQTT gateway that
    would carry a device's report does not exist yet. So the test writes the twin row in
    the hub's SQLite store directly, changing what a device's report changes: the
    document, its version, the twin version and the etag. Replace this with a real
    device's report once the gateway lands.
    """
    with contextlib.closing(sqlite3.connect(hub.data / "wellguard.db", timeout=30)) as db, db:
        changed = db.execute(
            "UPDATE twins SET reported = ?, reported_version = reported_version + 1,"
            " version = version + 1, etag = ? WHERE device_id = ? AND module_id = ''",
            (json.dumps(reported), secrets.token_urlsafe(9), device_id),
        ).rowcount
    assert changed == 1, f"no twin row for {device_id}"


def test_device_identities_created_read_updated_and_deleted_with_etags(hub: HubProcess) -> None:
    primary, secondary = new_key(), new_key()
    rotated = [new_key(), new_key()]
    prints = [secrets.token_hex(20).upper() for _ in range(4)]
    out = run_scenario(
        "devices.py",
        hub,
        prefix="sdkdev",
        primary_key=primary,
        secondary_key=secondary,
        new_keys=rotated,
        thumbprints=prints,
    )

    given = out["given"]
    assert (given["deviceId"], given["type"], given["status"]) == ("sdkdev-given", "sas", "enabled")
    assert (given["primaryKey"], given["secondaryKey"]) == (primary, secondary)
    assert given["etag"]
    assert given["connectionState"] == "Disconnected"

    # No keys given: the hub makes two different 32-byte keys and keeps them.
    generated = out["generated"]
    assert key_bytes(generated["primaryKey"]) == 32
    assert key_bytes(generated["secondaryKey"]) == 32
    assert generated["primaryKey"] != generated["secondaryKey"]
    assert generated["primaryKey"] not in (primary, secondary)
    assert out["generated_read"] == generated

    x509 = out["x509"]
    assert x509["type"] == "selfSigned"
    assert (x509["primaryThumbprint"], x509["secondaryThumbprint"]) == (prints[0], prints[1])
    assert x509["primaryKey"] is None

    ca = out["ca"]
    assert (ca["type"], ca["status"]) == ("certificateAuthority", "disabled")
    assert ca["primaryKey"] is None
    assert ca["primaryThumbprint"] is None

    assert (out["duplicate"]["status"], out["duplicate"]["errorCode"]) == (
        409,
        "DeviceAlreadyExists",
    )
    assert (out["missing"]["status"], out["missing"]["errorCode"]) == (404, "DeviceNotFound")
    assert {"sdkdev-given", "sdkdev-gen", "sdkdev-x509", "sdkdev-ca"} <= set(out["listed"])
    assert out["listed_top_2"] == 2

    # SAS update with the etag: new status, new etag, keys untouched when not restated.
    disabled = out["sas_disabled"]
    assert (disabled["status"], disabled["statusReason"]) == ("disabled", "paused")
    assert disabled["etag"] != given["etag"]
    assert (disabled["primaryKey"], disabled["secondaryKey"]) == (primary, secondary)
    assert out["sas_stale"]["status"] == 412
    assert out["sas_stale"]["errorCode"] == "PreconditionFailed"
    assert out["sas_after_stale"] == disabled  # the refused write changed nothing
    wildcard = out["sas_wildcard"]
    assert wildcard["status"] == "enabled"
    assert [wildcard["primaryKey"], wildcard["secondaryKey"]] == rotated
    assert wildcard["etag"] not in (given["etag"], disabled["etag"])

    x509_updated = out["x509_updated"]
    assert (x509_updated["primaryThumbprint"], x509_updated["secondaryThumbprint"]) == (
        prints[2],
        prints[3],
    )
    assert x509_updated["etag"] != x509["etag"]
    assert out["x509_stale"]["status"] == 412
    x509_wildcard = out["x509_wildcard"]
    assert x509_wildcard["status"] == "disabled"
    assert (x509_wildcard["primaryThumbprint"], x509_wildcard["secondaryThumbprint"]) == (
        prints[0],
        None,  # a retired certificate comes off the device
    )

    assert out["ca_enabled"]["status"] == "enabled"
    assert out["ca_enabled"]["etag"] != ca["etag"]
    assert out["ca_stale"]["status"] == 412
    assert out["ca_wildcard"]["status"] == "disabled"

    assert out["delete_stale"]["status"] == 412
    assert out["still_there"] == "sdkdev-given"
    assert out["deleted_with_etag"]["status"] == 404
    assert out["deleted_without_etag"]["status"] == 404
    assert out["delete_gone"]["status"] == 404


def test_bulk_registry_operations_apply_entry_by_entry_and_report_failures(
    hub: HubProcess,
) -> None:
    key = new_key()
    out = run_scenario("bulk_registry.py", hub, prefix="sdkbulk", primary_key=key)

    # One entry fails (the device exists); the SDK still reads the result, and the other
    # entries applied.
    mixed = out["mixed"]
    assert mixed["isSuccessful"] is False
    assert [(e["deviceId"], e["errorCode"], e["operation"]) for e in mixed["errors"]] == [
        ("sdkbulk-exists", "DeviceAlreadyExists", "create")
    ]
    assert "already exists" in mixed["errors"][0]["errorStatus"]
    assert out["given"] == key
    assert out["generated"]["status"] == "disabled"
    assert key_bytes(out["generated"]["primaryKey"]) == 32
    assert out["generated_twin"] == {
        "tags": {"site": "permian"},
        "desired": {"rate": 5, "$version": 2},
    }
    assert out["updated"] == {"status": "disabled", "statusReason": "bulk", "etagChanged": True}
    assert (out["deleted"]["status"], out["deleted"]["errorCode"]) == (404, "DeviceNotFound")

    stale = out["stale"]
    assert [(e["deviceId"], e["errorCode"]) for e in stale["errors"]] == [
        ("sdkbulk-upd", "PreconditionFailed")
    ]
    assert out["stale_kept"] == "disabled"
    assert out["existing_deleted"]["status"] == 404

    # A request over IoT Hub's limit of 100 is refused whole, still as a result the SDK reads.
    assert out["too_many"] == {"isSuccessful": False, "errors": []}
    assert out["too_many_created"]["status"] == 404
    assert out["cleanup"] == {"isSuccessful": True, "errors": []}


def test_modules_twins_and_methods_to_an_offline_device(hub: HubProcess) -> None:
    out = run_scenario("modules_twins.py", hub, device_id="sdktwin-1")

    modules = out["modules"]
    created = modules["created"]
    assert (created["deviceId"], created["moduleId"], created["managedBy"]) == (
        "sdktwin-1",
        "agent",
        "ops",
    )
    assert created["type"] == "sas"
    assert key_bytes(created["primaryKey"]) == 32
    assert created["primaryKey"] != created["secondaryKey"]
    assert modules["read"] == created
    assert modules["listed"] == ["agent", "telemetry"]
    updated = modules["updated"]
    assert updated["managedBy"] == "fleet"
    assert updated["etag"] != created["etag"]
    assert updated["primaryKey"] == created["primaryKey"]
    assert modules["update_stale"]["status"] == 412
    assert modules["after_stale"]["managedBy"] == "fleet"
    assert modules["delete_stale"]["status"] == 412
    assert (modules["deleted"]["status"], modules["deleted"]["errorCode"]) == (
        404,
        "ModuleNotFound",
    )
    assert modules["listed_after_delete"] == ["agent"]

    twin = out["twin"]
    initial = twin["initial"]
    assert initial["tags"] == {}
    assert initial["desired"] == {"$version": 1}
    patched = twin["patched"]
    assert patched["tags"] == {"site": "permian", "rack": {"row": 3, "slot": 4}}
    assert patched["desired"] == {"rate": 5, "mode": "eco", "$version": 2}
    assert patched["etag"] != initial["etag"]
    assert patched["version"] == initial["version"] + 1
    assert twin["patch_stale"]["status"] == 412
    # PATCH merges: untouched keys stay, null removes a key, new keys are added.
    merged = twin["nulls_removed"]
    assert merged["tags"] == {"site": "permian", "rack": {"row": 3}, "operator": "acme"}
    assert merged["desired"] == {"rate": 5, "$version": 3}
    # PUT replaces tags and desired properties wholesale.
    replaced = twin["replaced"]
    assert replaced["tags"] == {"site": "eagleford"}
    assert replaced["desired"] == {"rate": 9, "$version": 4}
    assert replaced["etag"] != merged["etag"]
    assert twin["replace_stale"]["status"] == 412
    assert twin["reported_by_service"]["status"] == 400
    assert twin["final"]["tags"] == replaced["tags"]
    assert twin["final"]["etag"] == replaced["etag"]

    module_twin = out["module_twin"]
    assert module_twin["initial"]["moduleId"] == "agent"
    assert module_twin["patched"]["tags"] == {"role": "security"}
    assert module_twin["patched"]["desired"] == {"scan": 60, "$version": 2}
    assert module_twin["patched"]["etag"] != module_twin["initial"]["etag"]
    assert module_twin["patch_stale"]["status"] == 412
    assert module_twin["replaced"]["tags"] == {"tier": "gold"}
    assert module_twin["replaced"]["desired"] == {"level": 2, "$version": 3}
    assert module_twin["replace_stale"]["status"] == 412
    assert module_twin["device_twin_tags"] == {"site": "eagleford"}  # module twin is separate

    # No gateway yet, so no device is online: IoT Hub answers 404 DeviceNotOnline.
    methods = out["methods"]
    assert (methods["device"]["status"], methods["device"]["errorCode"]) == (
        404,
        "DeviceNotOnline",
    )
    assert (methods["module"]["status"], methods["module"]["errorCode"]) == (
        404,
        "DeviceNotOnline",
    )
    assert (methods["unknown_device"]["status"], methods["unknown_device"]["errorCode"]) == (
        404,
        "DeviceNotFound",
    )


def test_statistics_follow_devices_added_disabled_and_deleted(fresh_hub: HubProcess) -> None:
    steps = run_scenario("statistics.py", fresh_hub)

    assert steps == {
        "empty": {"total": 0, "enabled": 0, "disabled": 0, "connected": 0},
        "three_added": {"total": 3, "enabled": 2, "disabled": 1, "connected": 0},
        "one_disabled": {"total": 3, "enabled": 1, "disabled": 2, "connected": 0},
        "one_deleted": {"total": 2, "enabled": 0, "disabled": 2, "connected": 0},
    }


FLEET: dict[str, tuple[str | None, dict[str, Any]]] = {
    "well-01": ("permian", {"firmware": "2.1.0", "battery": 80}),
    "well-02": ("permian", {"firmware": "2.0.0", "battery": 15}),
    "well-03": ("eagleford", {"firmware": "2.1.0", "battery": 55}),
    "well-04": ("eagleford", {"firmware": "1.9.4", "battery": 9}),
    "well-05": ("bakken", {"firmware": "2.1.0", "battery": 99}),
    "well-06": (None, {}),
    "well-07": ("permian", {"firmware": "2.1.0", "battery": 30}),
}


def build_fleet(hub: HubProcess) -> None:
    """FLEET's devices with their site tags and reported properties; ``agent`` modules on
    well-01 and well-03, a ``telemetry`` module on well-01."""
    for device_id, (site, reported) in FLEET.items():
        hub.api("PUT", f"/devices/{device_id}", json={"deviceId": device_id}).raise_for_status()
        if site is not None:
            hub.api(
                "PATCH", f"/twins/{device_id}", json={"tags": {"site": site}}
            ).raise_for_status()
        if reported:
            report_properties(hub, device_id, reported)
    for device_id, module_id in (
        ("well-01", "agent"),
        ("well-03", "agent"),
        ("well-01", "telemetry"),
    ):
        hub.api("PUT", f"/devices/{device_id}/modules/{module_id}", json={}).raise_for_status()


def ids(result: dict[str, Any]) -> list[str]:
    return sorted(item["deviceId"] for item in result["items"])


def test_queries_filter_project_aggregate_and_page(fresh_hub: HubProcess) -> None:
    build_fleet(fresh_hub)
    out = run_scenario(
        "queries.py",
        fresh_hub,
        queries={
            "by_tag": "SELECT * FROM devices WHERE tags.site = 'permian'",
            "by_reported": "SELECT * FROM devices WHERE properties.reported.firmware = '2.1.0'",
            "tag_and_reported": "SELECT * FROM devices"
            " WHERE tags.site = 'permian' AND properties.reported.battery < 20",
            "count": "SELECT COUNT() AS n FROM devices",
            "count_by_site": "SELECT COUNT() AS n FROM devices GROUP BY tags.site",
            "site_counts": "SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site",
            "projection": "SELECT deviceId, tags.site FROM devices",
            "modules": "SELECT * FROM devices.modules WHERE moduleId = 'agent'",
        },
        paged_query="SELECT * FROM devices",
        page_size=3,
        malformed_query="SELECT * FROM devices WHERE tags.site = ",
    )

    assert ids(out["by_tag"]) == ["well-01", "well-02", "well-07"]
    assert out["by_tag"]["type"] == "twin"
    assert ids(out["by_reported"]) == ["well-01", "well-03", "well-05", "well-07"]
    for item in out["by_reported"]["items"]:
        assert item["reported"]["firmware"] == "2.1.0"
        assert item["reported"]["battery"] == FLEET[item["deviceId"]][1]["battery"]
    assert ids(out["tag_and_reported"]) == ["well-02"]

    # Aggregates come back as raw rows; the SDK puts their columns in additional_properties.
    assert [row["projected"] for row in out["count"]["items"]] == [{"n": 7}]
    assert sorted(row["projected"]["n"] for row in out["count_by_site"]["items"]) == [1, 1, 2, 3]
    site_counts = {
        row["projected"].get("site"): row["projected"]["n"] for row in out["site_counts"]["items"]
    }
    assert site_counts == {"permian": 3, "eagleford": 2, "bakken": 1, None: 1}

    projection = out["projection"]
    projected = {row["deviceId"]: row["projected"].get("site") for row in projection["items"]}
    assert projected == {device_id: site for device_id, (site, _) in FLEET.items()}
    assert all(row["tags"] is None for row in projection["items"])  # rows, not whole twins

    modules = sorted((row["deviceId"], row["moduleId"]) for row in out["modules"]["items"])
    assert modules == [("well-01", "agent"), ("well-03", "agent")]

    # Three pages of at most three, every device exactly once, the last page without a token.
    pages = out["paged"]
    assert [len(page["ids"]) for page in pages] == [3, 3, 1]
    collected = [device_id for page in pages for device_id in page["ids"]]
    assert collected == sorted(FLEET)
    assert all(page["continuation"] for page in pages[:-1])
    assert pages[-1]["continuation"] is None
    assert len({page["continuation"] for page in pages[:-1]}) == 2

    malformed = out["malformed"]
    assert malformed["status"] == 400
    assert "column" in json.loads(malformed["body"])["message"]


def test_configurations_created_updated_with_etags_and_deleted(hub: HubProcess) -> None:
    out = run_scenario(
        "configurations.py", hub, configuration_id="sdkconf-sampling", broken_id="sdkconf-broken"
    )

    created = out["created"]
    assert created["id"] == "sdkconf-sampling"
    assert created["priority"] == 3
    assert created["labels"] == {"team": "field-ops"}
    assert created["targetCondition"] == "tags.site = 'permian' AND properties.reported.fw >= '2.0'"
    assert created["deviceContent"] == {"properties.desired.sampling": {"hz": 2}}
    assert created["etag"]
    assert out["read"] == created
    assert "sdkconf-sampling" in out["listed"]

    updated = out["updated"]
    assert updated["priority"] == 7
    assert updated["labels"] == {"team": "field-ops", "rollout": "wave-2"}
    assert updated["etag"] != created["etag"]
    assert out["update_stale"]["status"] == 412
    assert out["after_stale"] == updated
    assert out["delete_stale"]["status"] == 412
    assert (out["deleted"]["status"], out["deleted"]["errorCode"]) == (404, "ConfigurationNotFound")

    bad = out["bad_condition"]
    assert bad["status"] == 400
    assert "column" in json.loads(bad["body"])["message"]
    assert out["bad_condition_stored"]["status"] == 404


def test_refused_callers_get_one_answer_and_the_log_gets_the_reason(hub: HubProcess) -> None:
    policies = {p["keyName"]: p for p in hub.api("GET", "/policies").json()}
    logged = hub.api("GET", "/security/events", params={"top": 1000}).json()
    last_seen = max((e["id"] for e in logged), default=0)
    read_only_key = policies["registryRead"]["primaryKey"]
    wrong_key = base64.b64encode(secrets.token_bytes(32)).decode()
    out = run_scenario(
        "refusals.py",
        hub,
        wrong_key_connection_string=hub.service_connection_string(key=wrong_key),
        read_only_connection_string=hub.service_connection_string("registryRead", read_only_key),
        device_id="sdkauth-existing",
        new_device_id="sdkauth-new",
    )

    wrong, write = out["wrong_key"], out["read_only_create"]
    assert wrong["status"] == 401
    assert write["status"] == 401
    assert out["read_only_get"] == "sdkauth-existing"
    assert out["created_anyway"]["status"] == 404

    # The two refusals are indistinguishable to the caller ...
    def opaque(body: str) -> str:
        return body.replace(json.loads(body)["trackingId"], "<tracking>")

    assert opaque(wrong["body"]) == opaque(write["body"])
    assert json.loads(wrong["body"])["errorCode"] == "IotHubUnauthorizedAccess"

    # ... while the security log tells them apart.
    events = hub.api("GET", "/security/events", params={"after": last_seen}).json()
    assert [(e["reason"], e["identity"], e["detail"].split(":")[0]) for e in events] == [
        ("bad_signature", "iothubowner", "GET /devices/sdkauth-existing"),
        ("insufficient_rights", "registryRead", "PUT /devices/sdkauth-new"),
    ]

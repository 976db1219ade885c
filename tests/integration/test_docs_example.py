"""docs/migrating-from-iot-hub.md cannot drift: its example job runs, as the page says,
with the Azure service SDK against a real hub, and prints what the page shows."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.hubproc import HubProcess, run_cli
from tests.support.requirements import sdk_python

pytestmark = pytest.mark.sdk

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = DOCS / "migrating-from-iot-hub.md"
EXAMPLE = DOCS / "examples" / "registry_job.py"


@pytest.fixture(autouse=True)
def _sdk_interpreter() -> None:
    """Skip (or fail under WELLGUARD_REQUIRE_ALL=1) before starting a hub for nothing."""
    sdk_python()


def documented_output(marker: str) -> str:
    """The fenced block that follows ``<!-- output of: MARKER -->`` on the page."""
    pattern = re.escape(f"<!-- output of: {marker} -->") + r"\n```text\n(.*?)```"
    found = re.search(pattern, PAGE.read_text(), re.DOTALL)
    assert found, f"{PAGE.name} has no output block for {marker!r}"
    return found.group(1)


def run_example(device_id: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the example with the SDK interpreter and only the given hub settings."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("IOTHUB_", "REQUESTS_"))}
    return subprocess.run(
        [sdk_python(), str(EXAMPLE), device_id],
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_registry_job_runs_against_wellguard_as_documented(fresh_hub: HubProcess) -> None:
    page = PAGE.read_text()
    assert "wellguard policy connection-string iothubowner --data ./wg-data" in page
    connection_string = run_cli(
        "policy",
        "connection-string",
        "iothubowner",
        "--data",
        str(fresh_hub.data),
        data=fresh_hub.data,
    ).stdout.strip()
    assert connection_string == fresh_hub.service_connection_string()
    expected = documented_output("registry_job.py pump-17")

    # The CA given in code, as the example does with IOTHUB_CA_FILE ...
    in_code = run_example(
        "pump-17",
        {"IOTHUB_CONNECTION_STRING": connection_string, "IOTHUB_CA_FILE": str(fresh_hub.root_ca)},
    )
    assert in_code.returncode == 0, f"{in_code.stderr}\n{fresh_hub.log()}"
    assert in_code.stdout == expected
    # ... and without touching code, through requests' CA bundle variable.
    assert "REQUESTS_CA_BUNDLE=./wg-data/pki/root-ca.pem" in page
    from_env = run_example(
        "pump-17",
        {
            "IOTHUB_CONNECTION_STRING": connection_string,
            "REQUESTS_CA_BUNDLE": str(fresh_hub.root_ca),
        },
    )
    assert from_env.returncode == 0, f"{from_env.stderr}\n{fresh_hub.log()}"
    assert from_env.stdout == expected

    # The hub's own record: each run created, tagged and deleted the device.
    audit = fresh_hub.api("GET", "/audit", params={"top": 1000}).json()
    actions = [(e["action"], e["actor"]) for e in audit if e["target"] == "pump-17"]
    one_run = [
        ("device.create", "policy:iothubowner"),
        ("twin.update", "policy:iothubowner"),
        ("device.delete", "policy:iothubowner"),
    ]
    assert actions == one_run * 2
    assert fresh_hub.api("GET", "/devices/pump-17").status_code == 404


def test_example_fails_when_the_hub_is_not_trusted(hub: HubProcess) -> None:
    """Without the hub's CA the SDK refuses the connection: the trust step is needed."""
    untrusted = run_example(
        "pump-18", {"IOTHUB_CONNECTION_STRING": hub.service_connection_string()}
    )

    assert untrusted.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert hub.api("GET", "/devices/pump-18").status_code == 404

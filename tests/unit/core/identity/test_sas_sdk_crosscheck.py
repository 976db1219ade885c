"""Tokens made by the official Azure IoT SDKs verify here, and ours match theirs.

The SDKs pin paho-mqtt<2, so they live in their own virtualenv; the script below runs
there and prints JSON. Nothing connects anywhere: the SDK code only builds tokens.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.requirements import sdk_python
from tests.unit.core.identity.factories import (
    DEVICE_KEY,
    MODULE_KEY,
    make_device,
    make_module,
    policies,
)
from wellguard.core.identity import (
    generate_sas_token,
    parse_sas_token,
    verify_device_sas,
    verify_service_sas,
)
from wellguard.model.policy import AccessRights

pytestmark = pytest.mark.sdk

HOST = "hub.local"
HOSTS = (HOST, f"{HOST}:8443")
POLICIES = policies()
OWNER = POLICIES["iothubowner"]
FIXED_EXPIRY = 1_900_000_000
# Resources with the characters IoT Hub allows in ids, to exercise the encoding.
FIXED_URIS = [
    f"{HOST}/devices/well-01",
    f"{HOST}:8443/devices/well-01/modules/agent",
    f"{HOST}/devices/a:b@c$d'e(f)g!h*i?j,k=l%m_n.o-p",
    "scope/registrations/reg 1+2",
]

_SCRIPT = r"""
import json, sys
from urllib.parse import quote

from azure.iot.device.common.auth.sastoken import NonRenewableSasToken, RenewableSasToken
from azure.iot.device.common.auth.signing_mechanism import SymmetricKeySigningMechanism
from azure.iot.device.iothub.abstract_clients import _form_sas_uri
from azure.iot.hub.auth import ConnectionStringAuthentication

args = json.loads(sys.argv[1])
out = {"device": {}, "service": {}, "fixed": [], "parsed": []}

def device_token(uri, key, key_name=None):
    return str(RenewableSasToken(uri, SymmetricKeySigningMechanism(key), key_name=key_name))

for host in args["hosts"]:
    # (a) exactly what IoTHubDeviceClient / IoTHubModuleClient.create_from_* build
    out["device"][host] = {
        "device": device_token(_form_sas_uri(host, "well-01"), args["device_key"]),
        "module": device_token(_form_sas_uri(host, "well-01", "agent"), args["module_key"]),
        "policy": device_token(
            _form_sas_uri(host, "well-01"), args["owner_key"], key_name="iothubowner"
        ),
    }
    # (b) the Authorization header IoTHubRegistryManager's msrest session sends
    auth = ConnectionStringAuthentication(
        "HostName=%s;SharedAccessKeyName=iothubowner;SharedAccessKey=%s"
        % (host, args["owner_key"])
    )
    out["service"][host] = auth.signed_session().headers["Authorization"]

# (c) the SDK's own token builder at a fixed expiry, for comparison with ours
for uri in args["fixed_uris"]:
    for key_name in (None, "iothubowner"):
        token = RenewableSasToken(
            uri, SymmetricKeySigningMechanism(args["owner_key"]), key_name=key_name
        )
        token._expiry_time = args["expiry"]
        token._token = token._build_token()
        out["fixed"].append([uri, key_name, str(token)])
for text in args["ours"]:
    parsed = NonRenewableSasToken(text)
    out["parsed"].append([parsed.resource_uri, parsed.expiry_time])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def sdk() -> dict[str, Any]:
    python = sdk_python()
    ours = [generate_sas_token(uri, OWNER.primary_key, FIXED_EXPIRY) for uri in FIXED_URIS]
    arguments = {
        "hosts": list(HOSTS),
        "device_key": DEVICE_KEY,
        "module_key": MODULE_KEY,
        "owner_key": OWNER.primary_key,
        "fixed_uris": FIXED_URIS,
        "expiry": FIXED_EXPIRY,
        "ours": ours,
    }
    result = subprocess.run(
        [python, "-c", _SCRIPT, json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output: dict[str, Any] = json.loads(result.stdout)
    output["ours"] = ours
    return output


def _connect(token: str, module_id: str | None = None) -> None:
    verify_device_sas(
        token,
        device=make_device(),
        module=make_module() if module_id else None,
        device_id="well-01",
        module_id=module_id,
        hub_hosts=HOSTS,
        now=datetime.now(UTC),
        policies=POLICIES,
        max_ttl_seconds=3600,
    )


@pytest.mark.parametrize("host", HOSTS)
def test_device_sdk_tokens_verify(sdk: dict[str, Any], host: str) -> None:
    tokens = sdk["device"][host]
    _connect(tokens["device"])
    _connect(tokens["module"], module_id="agent")
    _connect(tokens["policy"])


@pytest.mark.parametrize("host", HOSTS)
def test_service_sdk_tokens_verify(sdk: dict[str, Any], host: str) -> None:
    token = sdk["service"][host]
    assert parse_sas_token(token).resource_uri == host
    policy = verify_service_sas(
        token,
        policies=POLICIES,
        hub_hosts=HOSTS,
        now=datetime.now(UTC),
        required=AccessRights.REGISTRY_WRITE | AccessRights.SERVICE_CONNECT,
        max_ttl_seconds=3600,
    )
    assert policy is OWNER


def test_generated_tokens_equal_the_device_sdks(sdk: dict[str, Any]) -> None:
    assert len(sdk["fixed"]) == 2 * len(FIXED_URIS)
    for uri, key_name, theirs in sdk["fixed"]:
        assert generate_sas_token(uri, OWNER.primary_key, FIXED_EXPIRY, key_name) == theirs


def test_the_device_sdk_reads_our_tokens(sdk: dict[str, Any]) -> None:
    assert sdk["parsed"] == [[uri, FIXED_EXPIRY] for uri in FIXED_URIS]

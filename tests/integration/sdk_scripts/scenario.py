"""What the SDK scenario scripts share: arguments in, results out, refusals as statuses.

The scripts run in the Azure SDK's own interpreter (azure-iot-hub pins paho-mqtt<2, which
the main virtualenv cannot have), so they talk to the test only through JSON: arguments
on stdin, results on stdout. They record what the SDK returned or raised and leave every
judgement to the test. A device script that needs the test to act on the hub while it is
connected (push a desired patch, invoke a method) first ``announce``s a step as one JSON
line; the results follow as the last line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from azure.iot.hub import IoTHubConfigurationManager, IoTHubRegistryManager
from msrest.exceptions import HttpOperationError

__all__ = [
    "announce",
    "configuration_manager",
    "emit",
    "read_arguments",
    "refusal",
    "registry_manager",
    "twin_view",
]


def read_arguments() -> dict[str, Any]:
    """The scenario's arguments (a JSON object on stdin)."""
    arguments: dict[str, Any] = json.load(sys.stdin)
    return arguments


def emit(results: dict[str, Any]) -> None:
    """Hand the results to the test (JSON on stdout)."""
    json.dump(results, sys.stdout, default=str)


def announce(step: str, **details: Any) -> None:
    """Tell the test that the scenario reached ``step`` (one JSON line, flushed at once)."""
    print(json.dumps({"step": step, **details}, default=str), flush=True)


def registry_manager(connection_string: str, root_ca: str) -> IoTHubRegistryManager:
    """A registry manager that trusts the hub's own CA, as a user of a private hub sets it."""
    manager = IoTHubRegistryManager.from_connection_string(connection_string)
    manager.protocol.config.connection.verify = root_ca
    return manager


def configuration_manager(connection_string: str, root_ca: str) -> IoTHubConfigurationManager:
    """A configuration manager that trusts the hub's own CA."""
    manager = IoTHubConfigurationManager.from_connection_string(connection_string)
    manager.protocol.config.connection.verify = root_ca
    return manager


def refusal(call: Callable[..., object], *args: object) -> dict[str, Any]:
    """How the hub refused ``call(*args)``: HTTP status, IoT Hub error code and raw body.

    A call that succeeds gives status 0, so a test expecting a refusal fails on it.
    """
    try:
        call(*args)
    except HttpOperationError as exc:
        text = exc.response.text
        try:
            code = json.loads(text).get("errorCode")
        except ValueError:
            code = None
        return {"status": exc.response.status_code, "errorCode": code, "body": text}
    return {"status": 0, "errorCode": None, "body": None}


def twin_view(twin: Any) -> dict[str, Any]:
    """The parts of an SDK ``Twin`` that the service controls or a query projects."""
    properties = twin.properties
    return {
        "deviceId": twin.device_id,
        "moduleId": twin.module_id,
        "etag": twin.etag,
        "version": twin.version,
        "tags": twin.tags,
        "desired": properties.desired if properties else None,
        "reported": properties.reported if properties else None,
        "projected": twin.additional_properties,
    }

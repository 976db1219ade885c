"""A back-end job on IoT Hub's service API: create a device, tag its twin, find it by
tag, read the statistics, delete the device.

It runs unchanged against Azure IoT Hub and against wellguard; only the environment
differs (see docs/migrating-from-iot-hub.md):

    IOTHUB_CONNECTION_STRING  service connection string of a policy with registry read,
                              registry write and service connect rights (iothubowner)
    IOTHUB_CA_FILE            optional: PEM file of the CAs to trust instead of the
                              system's (wellguard: DATA/pki/root-ca.pem)

Usage: python registry_job.py [DEVICE_ID]      (needs azure-iot-hub 2.7.0)
"""

from __future__ import annotations

import os
import sys
import time

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import QuerySpecification, Twin

QUERY_WAIT_SECONDS = 60  # IoT Hub's query index lags twin updates by a few seconds


def connect() -> IoTHubRegistryManager:
    """A registry manager from the environment."""
    registry = IoTHubRegistryManager.from_connection_string(os.environ["IOTHUB_CONNECTION_STRING"])
    ca_file = os.environ.get("IOTHUB_CA_FILE")
    if ca_file:
        registry.protocol.config.connection.verify = ca_file
    return registry


def find_by_tag(registry: IoTHubRegistryManager, query: str, expected: str) -> list[str]:
    """Device ids the query returns, retried until ``expected`` shows up or time runs out."""
    deadline = time.monotonic() + QUERY_WAIT_SECONDS
    while True:
        result = registry.query_iot_hub(QuerySpecification(query=query))
        found = sorted(item.device_id for item in result.items)
        if expected in found or time.monotonic() > deadline:
            return found
        time.sleep(2)


def main() -> int:
    device_id = sys.argv[1] if len(sys.argv) > 1 else "registry-job-demo"
    registry = connect()

    device = registry.create_device_with_sas(device_id, None, None, "enabled")
    print(f"created device {device.device_id} ({device.authentication.type}, {device.status})")

    twin = registry.get_twin(device_id)
    tags = {"fleet": "registry-job", "site": "permian"}
    twin = registry.update_twin(device_id, Twin(tags=tags), twin.etag)
    print(f"tagged twin: fleet={twin.tags['fleet']} site={twin.tags['site']}")

    query = "SELECT * FROM devices WHERE tags.fleet = 'registry-job'"
    found = find_by_tag(registry, query, device_id)
    print(f"query found: {', '.join(found) or 'nothing'}")

    stats = registry.get_device_registry_statistics()
    print(
        f"registry statistics: total={stats.total_device_count}"
        f" enabled={stats.enabled_device_count} disabled={stats.disabled_device_count}"
    )
    service = registry.get_service_statistics()
    print(f"service statistics: connected={service.connected_device_count}")

    registry.delete_device(device_id)
    print(f"deleted device {device_id}")
    return 0 if device_id in found else 1


if __name__ == "__main__":
    sys.exit(main())

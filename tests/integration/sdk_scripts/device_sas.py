"""A device on a SAS connection string, over MQTT or MQTT over WebSockets.

It sends one telemetry message, reads its twin, reports properties, then announces
``ready`` with C2D, desired-patch and method handlers installed, so the test can queue
C2D messages, patch desired properties and invoke methods through the REST API. Every
method request is answered with status 200 and ``{"method": name, "echo": payload}``.
When ``service`` is given, the script also invokes one method on itself through the
service SDK's ``IoTHubRegistryManager.invoke_device_method`` from a second thread. The
script waits for ``expect`` (C2D count, method count, desired version) or its deadline,
and reports what arrived.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

from azure.iot.device import IoTHubDeviceClient, Message, MethodResponse
from azure.iot.hub.models import CloudToDeviceMethod
from scenario import announce, emit, read_arguments, registry_manager


def message_view(message: Any) -> dict[str, Any]:
    """What a device application reads from a received C2D message."""
    return {
        "data": message.data.decode("utf-8"),
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "custom_properties": message.custom_properties,
        "ack": message.ack,
    }


def invoke_through_service_sdk(
    service: dict[str, Any], device_id: str, out: dict[str, Any]
) -> None:
    """What the service SDK returns for one method invoked on this very device."""
    manager = registry_manager(service["connection_string"], service["root_ca"])
    request = CloudToDeviceMethod(
        method_name=service["method"],
        payload=service["payload"],
        response_timeout_in_seconds=15,
        connect_timeout_in_seconds=5,
    )
    try:
        result = manager.invoke_device_method(device_id, request)
        out["service_method"] = {"status": result.status, "payload": result.payload}
    except Exception as exc:  # the test reports what the SDK raised
        out["service_method"] = {"error": repr(exc)}


def main() -> None:
    args = read_arguments()
    expect = args["expect"]
    client = IoTHubDeviceClient.create_from_connection_string(
        args["connection_string"],
        server_verification_cert=Path(args["root_ca"]).read_text(),
        websockets=args["websockets"],
        connection_retry=False,
    )
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    patches: list[dict[str, Any]] = []
    methods: list[dict[str, Any]] = []

    def on_message(message: Any) -> None:
        received.put(message_view(message))

    def on_patch(patch: dict[str, Any]) -> None:
        patches.append(patch)

    def on_method(request: Any) -> None:
        methods.append({"name": request.name, "payload": request.payload})
        answer = {"method": request.name, "echo": request.payload}
        client.send_method_response(MethodResponse.create_from_method_request(request, 200, answer))

    out: dict[str, Any] = {}
    client.connect()
    try:
        telemetry = args["telemetry"]
        message = Message(
            telemetry["body"],
            message_id=telemetry["message_id"],
            content_encoding="utf-8",
            content_type="application/json",
        )
        message.custom_properties.update(telemetry["properties"])
        client.send_message(message)
        out["twin"] = client.get_twin()
        client.patch_twin_reported_properties(args["reported"])
        out["twin_after_report"] = client.get_twin()
        client.on_message_received = on_message
        client.on_twin_desired_properties_patch_received = on_patch
        client.on_method_request_received = on_method
        announce("ready")

        service = args.get("service")
        invoker = None
        if service:
            invoker = threading.Thread(
                target=invoke_through_service_sdk, args=(service, args["device_id"], out)
            )
            invoker.start()
        deadline = time.monotonic() + 30
        messages: list[dict[str, Any]] = []
        while len(messages) < expect["c2d"] and time.monotonic() < deadline:
            try:
                messages.append(received.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        while time.monotonic() < deadline and (
            len(methods) < expect["methods"]
            or not any(p.get("$version") == expect["desired_version"] for p in patches)
        ):
            time.sleep(0.05)
        if invoker is not None:
            invoker.join(max(0.0, deadline - time.monotonic()))
        out.update(c2d=messages, patches=patches, methods=methods)
    finally:
        client.shutdown()
    emit(out)


if __name__ == "__main__":
    main()

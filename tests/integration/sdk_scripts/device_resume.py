"""A device that stays up while the hub goes away and comes back.

It connects with the SDK's automatic reconnection (retrying every second), installs C2D
and method handlers, and announces ``ready``; once the SDK has reconnected after a drop it
announces ``reconnected`` and waits for ``expect`` (C2D count, method count) or a few
seconds, answering each method with status 200 and ``{"method": name}``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from azure.iot.device import IoTHubDeviceClient, MethodResponse
from scenario import announce, emit, read_arguments


def main() -> None:
    args = read_arguments()
    expect = args["expect"]
    client = IoTHubDeviceClient.create_from_connection_string(
        args["connection_string"],
        server_verification_cert=Path(args["root_ca"]).read_text(),
        connection_retry_interval=1,
    )
    states: list[bool] = []
    reconnected = threading.Event()
    c2d: list[str] = []
    methods: list[str] = []

    def on_state_change() -> None:
        states.append(client.connected)
        if client.connected and False in states:
            reconnected.set()

    def on_message(message: Any) -> None:
        c2d.append(message.data.decode("utf-8"))

    def on_method(request: Any) -> None:
        methods.append(request.name)
        answer = MethodResponse.create_from_method_request(request, 200, {"method": request.name})
        client.send_method_response(answer)

    client.on_connection_state_change = on_state_change
    client.connect()
    try:
        client.on_message_received = on_message
        client.on_method_request_received = on_method
        announce("ready")
        if not reconnected.wait(30):
            announce("not reconnected", states=states)
            return
        announce("reconnected")
        deadline = time.monotonic() + args["wait_seconds"]
        while time.monotonic() < deadline and (
            len(c2d) < expect["c2d"] or len(methods) < expect["methods"]
        ):
            time.sleep(0.05)
        emit({"states": states, "c2d": c2d, "methods": methods})
    finally:
        client.shutdown()


if __name__ == "__main__":
    main()

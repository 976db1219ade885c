"""A device built on paho-mqtt 2 speaking IoT Hub's dialect, for gateway tests."""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.hubproc import HubProcess, random_loopback
from wellguard.core.identity import generate_sas_token

__all__ = ["Device", "connect_device", "sas_token"]


def sas_token(
    hub: HubProcess, device_id: str, key: str, ttl: int = 3600, module_id: str | None = None
) -> str:
    """A device SAS token as the SDKs make it."""
    resource = f"{hub.hostname}/devices/{device_id}" + (
        f"/modules/{module_id}" if module_id else ""
    )
    return generate_sas_token(resource, key, int(time.time()) + ttl)


@dataclass
class Device:
    """A connected (or refused) paho client with queues of what it received."""

    client: mqtt.Client
    connack: queue.Queue[str] = field(default_factory=queue.Queue)
    messages: queue.Queue[mqtt.MQTTMessage] = field(default_factory=queue.Queue)
    disconnected: threading.Event = field(default_factory=threading.Event)

    def wait_connack(self, timeout: float = 10) -> str:
        """The CONNACK reason as paho names it (``Success``, ``Not authorized``, ...)."""
        return self.connack.get(timeout=timeout)

    def next_message(self, timeout: float = 10) -> mqtt.MQTTMessage:
        """The next PUBLISH the hub sent."""
        return self.messages.get(timeout=timeout)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, timeout: float = 10) -> None:
        """Publish and, for QoS 1, wait for the PUBACK."""
        info = self.client.publish(topic, payload, qos=qos)
        if qos:
            info.wait_for_publish(timeout)
            assert info.is_published(), "no PUBACK"

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait until the SUBACK has arrived."""
        done = threading.Event()
        granted: list[Any] = []

        def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
            granted.extend(codes)
            done.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe(topic, qos)
        assert done.wait(10), "no SUBACK"
        assert not any(code.is_failure for code in granted), granted

    def twin_request(self, method: str, rid: str, payload: bytes = b"") -> mqtt.MQTTMessage:
        """One twin request/response round trip (subscribe to $iothub/twin/res/# first)."""
        topic = {
            "GET": f"$iothub/twin/GET/?$rid={rid}",
            "PATCH": f"$iothub/twin/PATCH/properties/reported/?$rid={rid}",
        }[method]
        self.publish(topic, payload, qos=0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = self.next_message(timeout=deadline - time.monotonic())
            if f"$rid={rid}" in message.topic:
                return message
        raise AssertionError("no twin response")

    def answer_method(
        self, answer: Callable[[mqtt.MQTTMessage], tuple[int, bytes | str]]
    ) -> threading.Thread:
        """Answer the next direct method request (subscribe to $iothub/methods/POST/#
        first) with ``answer(request)`` -> (status, payload), from a thread that is
        already started: join it once the call has returned."""

        def respond() -> None:
            request = self.next_message(timeout=20)
            status, payload = answer(request)
            rid = parse_topic_query(request.topic)["$rid"]
            self.client.publish(f"$iothub/methods/res/{status}/?$rid={rid}", payload, qos=0)

        thread = threading.Thread(target=respond)
        thread.start()
        return thread

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:  # paho leaves it open when the server closed first
            sock.close()


def connect_device(
    hub: HubProcess,
    device_id: str,
    *,
    password: str | None = None,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    module_id: str | None = None,
    client_id: str | None = None,
    username: str | None = None,
    keepalive: int = 60,
    bind_address: str | None = None,
    clean_session: bool = True,
    wait: bool = True,
    max_inflight: int = 20,
) -> Device:
    """Connect like an IoT Hub device; returns once the CONNACK arrived (``wait``)."""
    identity = device_id + (f"/{module_id}" if module_id else "")
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id or identity,
        protocol=mqtt.MQTTv311,
        clean_session=clean_session,
    )
    client.max_inflight_messages_set(max_inflight)
    device = Device(client)
    context = ssl.create_default_context(cafile=str(hub.root_ca))
    if certfile is not None:
        context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    client.tls_set_context(context)
    client.username_pw_set(
        username if username is not None else f"{hub.hostname}/{identity}/?api-version=2021-04-12",
        password,
    )

    def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        device.connack.put(str(reason))

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        device.messages.put(message)

    def on_disconnect(_c: Any, _u: Any, _flags: Any, _reason: Any, _p: Any) -> None:
        device.disconnected.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    client.reconnect_delay_set(60, 120)  # tests watch single connections
    # Each device comes from its own loopback address, like separate field devices; the
    # hub bans an address after repeated failures, which tests of refusals provoke.
    source = bind_address if bind_address is not None else random_loopback()
    client.connect(hub.mqtt_host, hub.mqtt_port, keepalive=keepalive, bind_address=source)
    client.loop_start()
    if wait:
        reason = device.wait_connack()
        device.connack.put(reason)
    return device


def parse_topic_query(topic: str) -> dict[str, str]:
    """The ``?a=b&c=d`` part of an IoT Hub topic."""
    return dict(urllib.parse.parse_qsl(topic.partition("?")[2]))


def json_body(message: mqtt.MQTTMessage) -> Any:
    """A message payload as JSON."""
    return json.loads(message.payload)

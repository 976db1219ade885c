"""A publisher process for crash tests: QoS 1 telemetry as fast as PUBACKs allow.

Run as ``python loadpublisher.py PLAN.json``. The plan names the hub (``host``,
``port``, ``ca``, ``hostname``), ``inflight`` (QoS 1 messages in flight per device),
``max_seconds`` and ``devices`` (``id``, ``token``, ``bind``: its own loopback source
address). Each device publishes ``devices/ID/messages/events/%24.mid=ID.N`` with N = 0, 1,
2 ... and appends every message id whose PUBACK arrived to ``ID.acked`` in ``out``,
flushed per line, so the record outlives any crash of the hub. Messages are never
re-sent: a device whose connection drops stops. The process ends once every device is
disconnected (or on SIGTERM, or after ``max_seconds``) and writes ``ID.sent`` (how many
ids it used) beside the record.
"""

from __future__ import annotations

import json
import signal
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class _Publisher:
    """One device: keeps ``inflight`` QoS 1 publishes outstanding, records each PUBACK."""

    def __init__(self, plan: dict[str, Any], device: dict[str, Any], out: Path) -> None:
        self.device_id: str = device["id"]
        self.inflight: int = plan["inflight"]
        self.bind: str = device["bind"]
        self.next_n = 0
        self.pending: dict[int, str] = {}  # paho mid -> our message id
        self.stopping = False
        self.done = threading.Event()
        self.record: TextIO = (out / f"{self.device_id}.acked").open("w", encoding="ascii")
        self.out = out
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
            reconnect_on_failure=False,  # a dropped device stops; nothing is re-sent
        )
        client.tls_set_context(ssl.create_default_context(cafile=plan["ca"]))
        client.username_pw_set(
            f"{plan['hostname']}/{self.device_id}/?api-version=2021-04-12", device["token"]
        )
        client.max_inflight_messages_set(self.inflight)
        client.max_queued_messages_set(self.inflight)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self.client = client

    def start(self, host: str, port: int) -> None:
        self.client.connect(host, port, keepalive=30, bind_address=self.bind)
        self.client.loop_start()

    # Every publish happens on paho's network thread (in these callbacks), so a mid is
    # in ``pending`` before its PUBACK can be read.
    def _publish_next(self) -> None:
        if self.stopping:
            return
        message_id = f"{self.device_id}.{self.next_n}"
        self.next_n += 1
        topic = f"devices/{self.device_id}/messages/events/%24.mid={message_id}"
        info = self.client.publish(topic, json.dumps({"mid": message_id}), qos=1)
        self.pending[info.mid] = message_id

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            print(f"{self.device_id}: CONNACK {reason}", file=sys.stderr, flush=True)
            self.stopping = True
            self.done.set()
            return
        for _ in range(self.inflight):
            self._publish_next()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        message_id = self.pending.pop(mid, None)
        if message_id is None:
            return
        self.record.write(message_id + "\n")
        self.record.flush()
        self._publish_next()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, _reason: Any, _p: Any) -> None:
        self.stopping = True
        self.done.set()

    def stop(self) -> None:
        self.stopping = True
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()
        self.record.close()
        (self.out / f"{self.device_id}.sent").write_text(str(self.next_n))


def main(plan_file: str) -> None:
    plan = json.loads(Path(plan_file).read_text())
    out = Path(plan["out"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    publishers = [_Publisher(plan, device, out) for device in plan["devices"]]
    for publisher in publishers:
        publisher.start(plan["host"], plan["port"])
    deadline = time.monotonic() + plan["max_seconds"]
    while not stop.is_set() and time.monotonic() < deadline:
        if all(p.done.is_set() for p in publishers):
            break
        stop.wait(0.05)
    for publisher in publishers:
        publisher.stop()


if __name__ == "__main__":
    main(sys.argv[1])

"""MQTT codec throughput: QoS 1 PUBLISH decode, PUBACK encode, and session ingest.

Run: ``.venv/bin/python bench/mqtt_codec.py``. Single core, no IO; takes a few seconds.
The stream is IoT Hub-style telemetry (topic ``devices/well-01/messages/events/a=1``,
200-byte payload) fed in 64 KiB chunks, which is what a socket read hands the gateway.
Each figure is the best of several rounds.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable

from wellguard.core.mqtt import (
    Connect,
    PacketDecoder,
    PubAck,
    Publish,
    ServerConnection,
    encode,
)

TOPIC = "devices/well-01/messages/events/a=1"
PAYLOAD = bytes(range(200))
PACKETS = 100_000
CHUNK = 65_536
ROUNDS = 5


def best_of(run: Callable[[], int]) -> float:
    """Best rate (items per second) over ``ROUNDS`` calls of ``run``."""
    best = 0.0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        count = run()
        best = max(best, count / (time.perf_counter() - started))
    return best


def telemetry_stream() -> bytes:
    return b"".join(
        encode(Publish(TOPIC, PAYLOAD, qos=1, packet_id=i % 65_535 + 1)) for i in range(PACKETS)
    )


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def bench_decode(stream: bytes) -> tuple[float, float]:
    pieces = chunks(stream, CHUNK)

    def run() -> int:
        decoder = PacketDecoder(262_144 + 1024, server_side=True)
        return sum(len(decoder.feed(piece)) for piece in pieces)

    rate = best_of(run)
    return rate, rate * len(stream) / PACKETS / 1e6


def bench_decode_one_per_read(stream: bytes) -> float:
    size = len(stream) // PACKETS
    pieces = chunks(stream, size)

    def run() -> int:
        decoder = PacketDecoder(262_144 + 1024, server_side=True)
        return sum(len(decoder.feed(piece)) for piece in pieces)

    return best_of(run)


def bench_puback_encode() -> tuple[float, float]:
    ids = [i % 65_535 + 1 for i in range(PACKETS)]

    def via_encode() -> int:
        for packet_id in ids:
            encode(PubAck(packet_id))
        return PACKETS

    def via_session() -> int:
        conn = ServerConnection(now=0.0)
        conn.receive_data(encode(Connect("well-01", keep_alive=60)), 0.0)
        conn.accept()
        puback = conn.puback
        for packet_id in ids:
            puback(packet_id)
        conn.data_to_send()
        return PACKETS

    return best_of(via_encode), best_of(via_session)


def bench_session_ingest(stream: bytes) -> float:
    """receive_data + puback for every message + one data_to_send per read."""
    pieces = chunks(stream, CHUNK)
    connect = encode(Connect("well-01", keep_alive=60))

    def run() -> int:
        conn = ServerConnection(now=0.0)
        conn.receive_data(connect, 0.0)
        conn.accept()
        count = 0
        for now, piece in enumerate(pieces):
            for event in conn.receive_data(piece, float(now)):
                conn.puback(event.packet_id)  # type: ignore[union-attr, arg-type]
                count += 1
            conn.data_to_send()
        return count

    return best_of(run)


def main() -> None:
    print(f"wellguard MQTT codec bench - Python {sys.version.split()[0]} on {platform.machine()}")
    stream = telemetry_stream()
    print(
        f"stream: {PACKETS} QoS 1 PUBLISH, {len(stream) // PACKETS} bytes each, {CHUNK}-byte reads"
    )
    rate, megabytes = bench_decode(stream)
    print(f"decode (64 KiB reads):      {rate:>12,.0f} packets/s  {megabytes:8.1f} MB/s")
    print(f"decode (one packet a read): {bench_decode_one_per_read(stream):>12,.0f} packets/s")
    via_encode, via_session = bench_puback_encode()
    print(f"PUBACK encode(PubAck(id)):  {via_encode:>12,.0f} packets/s")
    print(f"PUBACK session.puback(id):  {via_session:>12,.0f} packets/s")
    print(f"session ingest + PUBACK:    {bench_session_ingest(stream):>12,.0f} messages/s")


if __name__ == "__main__":
    main()

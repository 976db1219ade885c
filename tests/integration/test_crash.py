"""Durable before acknowledged: a hub killed with SIGKILL under QoS 1 load loses nothing
it acknowledged, and after a restart routes every journaled message to telemetry once.

Publishers run in processes of their own (``tests/support/loadpublisher.py``) so that
this process's GIL does not set the pace; each records every acknowledged message id,
flushed per line, before it publishes the next.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from tests.support import loadpublisher
from tests.support.hubproc import HubProcess, random_loopback, start_hub
from tests.support.mqttdevice import connect_device, sas_token
from wellguard.model.message import MessageSource

DEVICES = 20
PROCESSES = 4
INFLIGHT = 8
MIN_ACKS = 3000
MIN_LOAD_SECONDS = 3.0


def _hub_env(synchronous: str) -> dict[str, str]:
    # No throttling: the point is as many messages in flight as possible at the kill.
    return {"WELLGUARD_INGEST_SYNCHRONOUS": synchronous, "WELLGUARD_MQTT_RATE_PER_DEVICE": "100000"}


def _create_devices(hub: HubProcess, prefix: str) -> dict[str, str]:
    tokens = {}
    for i in range(DEVICES):
        device_id = f"{prefix}-{i:02d}"
        doc = hub.api("PUT", f"/devices/{device_id}", json={"deviceId": device_id}).json()
        key = doc["authentication"]["symmetricKey"]["primaryKey"]
        tokens[device_id] = sas_token(hub, device_id, key)
    return tokens


def _start_publishers(
    hub: HubProcess, tokens: dict[str, str], out: Path
) -> list[subprocess.Popen[bytes]]:
    out.mkdir()
    ids = sorted(tokens)
    processes = []
    for index in range(PROCESSES):
        plan = {
            "host": hub.mqtt_host,
            "port": hub.mqtt_port,
            "ca": str(hub.root_ca),
            "hostname": hub.hostname,
            "inflight": INFLIGHT,
            "max_seconds": 45,
            "out": str(out),
            "devices": [
                {"id": d, "token": tokens[d], "bind": random_loopback()}
                for d in ids[index::PROCESSES]
            ],
        }
        plan_file = out / f"plan-{index}.json"
        plan_file.write_text(json.dumps(plan))
        with (out / f"publisher-{index}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, loadpublisher.__file__, str(plan_file)], stderr=log
                )
            )
    return processes


def _count_acks(out: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in out.glob("*.acked"))


def _load_until_enough_acks(out: Path, publishers: list[subprocess.Popen[bytes]]) -> float:
    """Wait for MIN_ACKS acknowledgements and MIN_LOAD_SECONDS of load; returns the load time."""
    deadline = time.monotonic() + 30
    first_ack = None
    while True:
        acks = _count_acks(out)
        now = time.monotonic()
        if acks and first_ack is None:
            first_ack = now
        if first_ack is not None and acks >= MIN_ACKS and now - first_ack >= MIN_LOAD_SECONDS:
            return now - first_ack
        dead = [p.args for p in publishers if p.poll() is not None]
        logs = "\n".join(p.read_text() for p in out.glob("publisher-*.log"))
        assert not dead, f"a publisher ended before the kill: {dead}\n{logs}"
        assert now < deadline, f"only {acks} acks in 30 s\n{logs}"
        time.sleep(0.1)


def _stop_publishers(publishers: list[subprocess.Popen[bytes]]) -> None:
    for process in publishers:
        try:
            process.wait(timeout=15)  # they end by themselves once the hub is gone
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=10)


def _read_record(out: Path) -> tuple[list[str], set[str]]:
    """Acknowledged ids (as recorded, duplicates kept) and every id that was sent."""
    acked: list[str] = []
    sent: set[str] = set()
    for path in out.glob("*.acked"):
        acked += path.read_text().split()
        device_id = path.name.removesuffix(".acked")
        count = int((out / f"{device_id}.sent").read_text())
        sent.update(f"{device_id}.{n}" for n in range(count))
    return acked, sent


def _get(client: httpx.Client, hub: HubProcess, path: str, **params: Any) -> httpx.Response:
    response = client.get(
        path,
        headers={"Authorization": hub.token()},
        params={"api-version": "2021-04-12", **params},
    )
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response


def _wait_routed(hub: HubProcess, timeout: float = 30) -> int:
    """Wait until ``/status`` says ``routing.lag == 0``; returns the journal's newest seq."""
    deadline = time.monotonic() + timeout
    with hub.client() as client:
        while True:
            status = _get(client, hub, "/status").json()
            if status["routing"]["lag"] == 0:
                break
            assert time.monotonic() < deadline, f"routing stuck: {status}"
            time.sleep(0.2)
        last_seq = int(status["journal"]["lastSeq"])
        stats = _get(client, hub, "/routing/stats").json()
    assert stats["checkpoint"] >= last_seq, (
        f"/status said routing.lag 0 with the journal at {last_seq}, but {stats}"
    )
    return last_seq


def _telemetry_ids(hub: HubProcess, device_ids: Iterable[str]) -> list[tuple[int, str]]:
    """(seq, message id) of every stored telemetry message of the devices, via REST."""
    rows: list[tuple[int, str]] = []
    with hub.client() as client:
        for device_id in device_ids:
            after: int | None = None
            while True:
                params: dict[str, Any] = {"top": 1000}
                if after is not None:
                    params["after"] = after
                response = _get(client, hub, f"/devices/{device_id}/telemetry", **params)
                page = response.json()
                rows += [(r["seq"], r["systemProperties"].get("messageId", "")) for r in page]
                continuation = response.headers.get("x-ms-continuation")
                if continuation is None:
                    break
                after = int(continuation)
    return rows


def _journal_ids(data: Path) -> list[tuple[int, str]]:
    """(seq, message id) of every telemetry entry of the journal, read from the file
    itself (connection state events are journaled too, and not routed to telemetry)."""
    conn = sqlite3.connect(f"file:{data / 'journal.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT seq, coalesce(json_extract(system, '$.messageId'), '') FROM journal"
            " WHERE source = ? ORDER BY seq",
            (MessageSource.TELEMETRY.value,),
        ).fetchall()
    finally:
        conn.close()
    return [(int(seq), str(mid)) for seq, mid in rows]


def _routing_checkpoint(data: Path) -> int:
    """How far routing had got, from the journal file (0 before its first checkpoint)."""
    conn = sqlite3.connect(f"file:{data / 'journal.db'}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT seq FROM journal_checkpoints WHERE consumer = 'routing'"
        ).fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


def _duplicates(ids: Iterable[str]) -> dict[str, int]:
    return {mid: n for mid, n in Counter(ids).items() if n > 1}


def _examples(ids: Iterable[str], n: int = 5) -> list[str]:
    return sorted(ids)[:n]


def _publish_after_restart(hub: HubProcess, device_id: str, token: str) -> str:
    message_id = f"{device_id}.after-restart"
    device = connect_device(hub, device_id, password=token)
    try:
        assert device.wait_connack() == "Success"
        device.publish(f"devices/{device_id}/messages/events/%24.mid={message_id}", b"{}")
    finally:
        device.close()
    return message_id


def _crash_and_check(
    hub_factory: Callable[..., HubProcess], tmp_path: Path, synchronous: str
) -> None:
    env = _hub_env(synchronous)
    hub = hub_factory(env=env)
    tokens = _create_devices(hub, f"crash-{synchronous.lower()}")
    out = tmp_path / "publishers"
    publishers = _start_publishers(hub, tokens, out)
    try:
        load_seconds = _load_until_enough_acks(out, publishers)
        hub.process.kill()  # SIGKILL: no shutdown, no final flush
        hub.process.wait(timeout=10)
    finally:
        _stop_publishers(publishers)
    acked, sent = _read_record(out)
    routed_at_kill = _routing_checkpoint(hub.data)
    assert not _duplicates(acked), "a publisher recorded a PUBACK twice"

    restart_env = {
        "WELLGUARD_MQTT_BIND": hub.mqtt_host,
        "WELLGUARD_MQTT_PORT": str(hub.mqtt_port),
        **env,
    }
    restarted = start_hub(hub.data, initialise=False, env=restart_env)
    try:
        probe_device = sorted(tokens)[0]
        probe = _publish_after_restart(restarted, probe_device, tokens[probe_device])
        routed_through = _wait_routed(restarted)
        telemetry = _telemetry_ids(restarted, sorted(tokens))
    finally:
        restarted.stop()
    journal = _journal_ids(hub.data)

    journal_mids = [mid for _, mid in journal]
    telemetry_mids = [mid for _, mid in telemetry]
    acked_set = set(acked)
    journal_duplicates = _duplicates(journal_mids)
    telemetry_duplicates = _duplicates(telemetry_mids)
    figures = (
        f"[{synchronous}] {len(acked)} acked of {len(sent)} sent in {load_seconds:.1f} s; "
        f"journal {len(journal)} messages ({len(set(journal_mids) - acked_set - {probe})} "
        f"durable but unacknowledged, 1 sent after the restart), "
        f"telemetry {len(telemetry)} rows; duplicates: journal {len(journal_duplicates)}, "
        f"telemetry {len(telemetry_duplicates)}; routing was at seq {routed_at_kill} "
        f"at the kill and caught up to {routed_through}"
    )
    print(figures)

    missing_journal = acked_set - set(journal_mids)
    assert not missing_journal, (
        f"{figures}: {len(missing_journal)} acknowledged message(s) are not in the journal, "
        f"e.g. {_examples(missing_journal)}"
    )
    missing_telemetry = acked_set - set(telemetry_mids)
    assert not missing_telemetry, (
        f"{figures}: {len(missing_telemetry)} acknowledged message(s) never reached "
        f"telemetry, e.g. {_examples(missing_telemetry)}"
    )
    # Publishers never re-send, so every stored message is stored exactly once.
    for where, duplicates in (("journal", journal_duplicates), ("telemetry", telemetry_duplicates)):
        assert not duplicates, (
            f"{figures}: {len(duplicates)} message id(s) stored more than once in {where}, "
            f"e.g. {dict(sorted(duplicates.items())[:5])}"
        )
    strangers = set(journal_mids) - sent - {probe}
    assert not strangers, f"{figures}: the journal holds ids never sent: {_examples(strangers)}"
    assert probe in journal_mids and probe in telemetry_mids, (
        f"{figures}: the message sent after the restart was not stored"
    )
    # Every journaled message is routed, under its own seq (the key routing dedups by).
    only_journal = [f"{seq}:{mid}" for seq, mid in set(journal) - set(telemetry)]
    only_telemetry = [f"{seq}:{mid}" for seq, mid in set(telemetry) - set(journal)]
    assert not only_journal and not only_telemetry, (
        f"{figures}: telemetry and journal differ: {len(only_journal)} only in the journal, "
        f"e.g. {_examples(only_journal)}; {len(only_telemetry)} only in telemetry, "
        f"e.g. {_examples(only_telemetry)}"
    )


def test_sigkill_under_load_loses_no_acknowledged_message(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    _crash_and_check(hub_factory, tmp_path, "FULL")


def test_sigkill_with_synchronous_normal_loses_nothing_either(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    # NORMAL skips the fsync per commit: safe against a process crash, not a power cut.
    _crash_and_check(hub_factory, tmp_path, "NORMAL")

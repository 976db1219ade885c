"""Nothing the journal acknowledged is lost when the process is killed mid-stream.

A child process runs an ``SqliteJournal`` with many producer coroutines and prints
``seq message-id`` the moment each future resolves: that line is the PUBACK. The test
SIGKILLs the child after a few thousand such lines, reopens the journal and checks that
every acknowledged message is there exactly once, under its seq, with its body intact;
then that the sequence continues. Two kills in a row on the same file, for each
durability mode (SIGKILL is a process crash, which both modes survive).
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wellguard.adapters.journal import SqliteJournal
from wellguard.core.ingest import JournalEntry
from wellguard.model.message import DeviceMessage, MessageSource

PRODUCERS = 40
KILL_AFTER = 3000

CHILD = r"""
import asyncio, hashlib, sys
from datetime import UTC, datetime
from pathlib import Path

from wellguard.adapters.journal import SqliteJournal
from wellguard.model.message import DeviceMessage, MessageSource


def body_of(mid):
    return hashlib.sha256(mid.encode()).digest() * 7


async def main(path, run, synchronous, producers):
    journal = SqliteJournal(Path(path), synchronous=synchronous)
    await journal.start()
    out = sys.stdout

    async def producer(p):
        i = 0
        while True:
            mid = f"{run}-{p}-{i}"
            message = DeviceMessage(
                device_id=f"dev-{p}",
                module_id=None,
                enqueued_at=datetime.now(UTC),
                source=MessageSource.TELEMETRY,
                body=body_of(mid),
                system_properties={"messageId": mid},
            )
            seq = await journal.submit(message)
            out.write(f"{seq} {mid}\n")
            out.flush()
            i += 1

    await asyncio.gather(*(producer(p) for p in range(int(producers))))


asyncio.run(main(*sys.argv[1:]))
"""


def body_of(mid: str) -> bytes:
    return hashlib.sha256(mid.encode()).digest() * 7


def run_and_kill(path: Path, run: str, synchronous: str) -> dict[str, int]:
    """Start the child, SIGKILL it after KILL_AFTER acks; every ack it printed, by id."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), run, synchronous, str(PRODUCERS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watchdog = threading.Timer(60, child.kill)
    watchdog.start()
    try:
        assert child.stdout is not None
        lines: list[bytes] = []
        while len(lines) < KILL_AFTER:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, errors.decode()
    lines.extend(rest.splitlines(keepends=True))
    acks: dict[str, int] = {}
    for line in lines:
        if line.endswith(b"\n"):  # a line cut by the kill is not an ack we saw
            seq, mid = line.decode().split()
            acks[mid] = int(seq)
    assert len(acks) >= KILL_AFTER
    return acks


async def reopen_and_check(path: Path, acked: dict[str, int], probe: str) -> int:
    """Check every ack against the reopened journal; submit one more; its seq."""
    journal = SqliteJournal(path)
    await journal.start()
    try:
        entries: list[JournalEntry] = []
        while batch := journal.read(entries[-1].seq if entries else 0, 5000):
            entries.extend(batch)
        last = journal.last_seq()
        assert [e.seq for e in entries] == list(range(1, last + 1))  # dense, nothing torn
        by_id: dict[str, list[JournalEntry]] = defaultdict(list)
        for entry in entries:
            mid = entry.message.message_id
            assert mid is not None
            by_id[mid].append(entry)
        lost = [mid for mid in acked if mid not in by_id]
        assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}"
        for mid, seq in acked.items():
            (entry,) = by_id[mid]  # exactly once
            assert entry.seq == seq
            assert entry.message.body == body_of(mid)
            if not mid.startswith("probe"):
                assert entry.message.device_id == f"dev-{mid.split('-')[1]}"
        # Committed but not yet acknowledged when killed: stored, simply never acked.
        assert len(entries) >= len(acked)
        message = DeviceMessage(
            "probe", None, datetime.now(UTC), MessageSource.TELEMETRY, body_of(probe),
            {"messageId": probe},
        )  # fmt: skip
        seq = await journal.submit(message)
        assert seq == last + 1
        return seq
    finally:
        await journal.close()


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_acknowledged_messages_survive_sigkill(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "journal.db"
    acked: dict[str, int] = {}
    for run in ("a", "b"):
        acked.update(run_and_kill(path, run, synchronous))
        probe = f"probe-{run}"
        acked[probe] = asyncio.run(reopen_and_check(path, acked, probe))
    assert len(acked) >= 2 * KILL_AFTER

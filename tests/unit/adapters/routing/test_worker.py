"""The routing worker end to end over an in-memory journal: grouping, at-least-once,
dead letters, bounded retries, restart from the checkpoint, table reloads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select

from tests.unit.adapters.routing.conftest import (
    FakeJournal,
    FakeTelemetryStore,
    make_message,
    refused_port,
)
from wellguard.adapters.routing import (
    ENDPOINT_KINDS,
    DeliveryContext,
    DeliveryFailedError,
    EndpointSet,
    RetryPolicy,
    RoutingStore,
    RoutingWorker,
    WorkerConfig,
)
from wellguard.adapters.sql import schema
from wellguard.core.ingest.ports import JournalEntry
from wellguard.core.ingest.routing import Endpoint, EndpointKind, Route, RoutingTable
from wellguard.model.message import SECURITY_INTERFACE_ID, MessageSource

T = MessageSource.TELEMETRY


class Recording:
    """A webhook stand-in: records seqs; can fail or block on demand."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.refuse = False
        self.local_failures = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def deliver(self, entries: Sequence[JournalEntry]) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.refuse:
            raise DeliveryFailedError("webhook refused the batch: HTTP 400 Bad Request")
        if self.local_failures:
            self.local_failures -= 1
            raise OSError("disk full")
        self.seqs.extend(e.seq for e in entries)


class Tables:
    """A table provider whose table the test swaps."""

    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        self.version = 1
        self.loads = 0

    def load_table(self) -> RoutingTable:
        self.loads += 1
        return self.table

    def swap(self, table: RoutingTable) -> None:
        self.table = table
        self.version += 1


class DeadLetters:
    def __init__(self) -> None:
        self.rows: list[tuple[str, int, str]] = []
        self.failures = 0

    def add_dead_letters(self, endpoint: str, entries: Sequence[JournalEntry], reason: str) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError("dead-letter store is down")
        self.rows += [(endpoint, e.seq, reason) for e in entries]
        return len(entries)


class Inbox:
    def __init__(self) -> None:
        self.seqs: list[int] = []

    def add_security_messages(self, entries: Sequence[JournalEntry]) -> int:
        self.seqs += [e.seq for e in entries]
        return len(entries)


def hooks(*names: str) -> list[Endpoint]:
    return [Endpoint(n, EndpointKind.WEBHOOK, url=f"https://example.com/{n}") for n in names]


class Rig:
    """A worker with recording endpoints ``a`` and ``b`` and a jsonl endpoint ``file``."""

    def __init__(
        self,
        journal: FakeJournal,
        telemetry: FakeTelemetryStore,
        tmp_path: Path,
        client: httpx.AsyncClient,
        table: RoutingTable | None = None,
        **worker_kw: Any,
    ) -> None:
        self.journal = journal
        self.telemetry = telemetry
        self.recorders = {"a": Recording(), "b": Recording()}
        self.dead = DeadLetters()
        self.inbox = Inbox()
        self.sleeps: list[float] = []
        self.tables = Tables(table or RoutingTable([], hooks("a", "b")))
        kinds = {
            **ENDPOINT_KINDS,
            EndpointKind.WEBHOOK: lambda e, _c: self.recorders[e.name],
        }
        context = DeliveryContext(
            telemetry=telemetry,
            security_inbox=self.inbox,
            http=client,
            export_root=tmp_path / "exports",
        )
        config = WorkerConfig(
            batch_size=worker_kw.pop("batch_size", 100),
            idle_wait=0.05,
            retry=RetryPolicy(max_attempts=3, max_elapsed=100),
        )
        self.worker = RoutingWorker(
            journal,
            self.tables,
            EndpointSet(context, kinds=kinds),
            dead_letters=self.dead,
            config=config,
            sleep=self.sleep,
            **worker_kw,
        )

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        await asyncio.sleep(0)


def run_with_rig(
    journal: FakeJournal,
    telemetry: FakeTelemetryStore,
    tmp_path: Path,
    body: Callable[[Rig], Awaitable[None]],
    table: RoutingTable | None = None,
    **kw: Any,
) -> Rig:
    holder: list[Rig] = []

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            rig = Rig(journal, telemetry, tmp_path, client, table, **kw)
            holder.append(rig)
            await body(rig)

    asyncio.run(go())
    return holder[0]


def routes(*items: Route, endpoints: Sequence[Endpoint] = ()) -> RoutingTable:
    return RoutingTable(items, [*hooks("a", "b"), *endpoints])


def test_batch_is_split_by_route_and_checkpointed(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    for n in range(1, 7):
        journal.append(make_message(n, app={"level": "high" if n % 2 else "low"}))
    journal.append(make_message(7, source=MessageSource.TWIN_CHANGE))
    table = routes(
        Route("hot", T, "level = 'high'", ("a", "file")),
        Route("all", T, "", ("b",)),
        endpoints=[Endpoint("file", EndpointKind.JSONL, path="hot.jsonl")],
    )

    async def body(rig: Rig) -> None:
        assert await rig.worker.run_once() == 7
        assert await rig.worker.run_once() == 0

    rig = run_with_rig(journal, telemetry, tmp_path, body, table)
    assert rig.recorders["a"].seqs == [1, 3, 5]
    assert rig.recorders["b"].seqs == [1, 2, 3, 4, 5, 6]
    assert telemetry.rows == {}  # every telemetry message matched a route
    lines = (tmp_path / "exports" / "hot.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["seq"] for line in lines] == [1, 3, 5]
    assert journal.checkpoints["routing"] == 7
    stats = rig.worker.stats
    assert dict(stats.delivered) == {"a": 3, "b": 6, "file": 3}
    assert stats.dropped == 1
    assert stats.lag == 0


def test_fallback_and_security(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    journal.append(make_message(1))
    journal.append(make_message(2, system={"interfaceId": SECURITY_INTERFACE_ID}))

    async def body(rig: Rig) -> None:
        await rig.worker.run_once()

    rig = run_with_rig(journal, telemetry, tmp_path, body)
    assert list(telemetry.rows) == [1]
    assert rig.inbox.seqs == [2]


def test_checkpoint_moves_only_after_every_endpoint_took_the_batch(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    journal.append(make_message(1))
    journal.append(make_message(2))

    async def body(rig: Rig) -> None:
        slow = rig.recorders["a"]
        slow.gate = asyncio.Event()
        task = asyncio.create_task(rig.worker.run_once())
        await slow.entered.wait()
        await asyncio.sleep(0.05)
        assert list(telemetry.rows) == [1, 2]  # the fast endpoint is done ...
        assert "routing" not in journal.checkpoints  # ... but the checkpoint waits
        slow.gate.set()
        assert await task == 2
        assert journal.checkpoints["routing"] == 2

    run_with_rig(journal, telemetry, tmp_path, body, routes(Route("r", T, "", ("a", "builtin"))))


def test_refused_batch_is_dead_lettered_not_lost(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    for n in (1, 2):
        journal.append(make_message(n))

    async def body(rig: Rig) -> None:
        rig.recorders["a"].refuse = True
        await rig.worker.run_once()

    rig = run_with_rig(journal, telemetry, tmp_path, body, routes(Route("r", T, "", ("a", "b"))))
    assert [(e, s) for e, s, _ in rig.dead.rows] == [("a", 1), ("a", 2)]
    assert "HTTP 400" in rig.dead.rows[0][2]
    assert rig.recorders["b"].seqs == [1, 2]
    assert journal.checkpoints["routing"] == 2
    assert dict(rig.worker.stats.dead_lettered) == {"a": 2}
    assert rig.sleeps == []  # a refusal is not retried


def test_local_failures_are_retried_then_delivered(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    journal.append(make_message(1))
    telemetry.failures = 2

    async def body(rig: Rig) -> None:
        await rig.worker.run_once()

    rig = run_with_rig(journal, telemetry, tmp_path, body)
    assert list(telemetry.rows) == [1]
    assert len(rig.sleeps) == 2
    assert rig.dead.rows == []


def test_local_failures_are_bounded_then_dead_lettered(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    journal.append(make_message(1))

    async def body(rig: Rig) -> None:
        rig.recorders["a"].local_failures = 99
        await rig.worker.run_once()

    rig = run_with_rig(journal, telemetry, tmp_path, body, routes(Route("r", T, "", ("a",))))
    assert rig.dead.rows == [("a", 1, "OSError: disk full")]
    assert len(rig.sleeps) == 2  # max_attempts=3
    assert journal.checkpoints["routing"] == 1


def test_batch_kept_while_dead_letters_cannot_be_written(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    journal.append(make_message(1))

    async def body(rig: Rig) -> None:
        rig.recorders["a"].refuse = True
        rig.dead.failures = 3
        await rig.worker.run_once()

    rig = run_with_rig(journal, telemetry, tmp_path, body, routes(Route("r", T, "", ("a", "b"))))
    assert rig.dead.rows == [("a", 1, "webhook refused the batch: HTTP 400 Bad Request")]
    assert rig.recorders["b"].seqs == [1]  # the healthy endpoint got it exactly once
    assert journal.checkpoint_history == [1]


def test_restart_resumes_from_the_checkpoint(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    for n in range(1, 6):
        journal.append(make_message(n))
    table = routes(Route("r", T, "", ("a",)))

    async def first(rig: Rig) -> None:
        assert await rig.worker.run_once() == 2

    async def second(rig: Rig) -> None:
        assert await rig.worker.run_once() == 2
        assert await rig.worker.run_once() == 1

    one = run_with_rig(journal, telemetry, tmp_path, first, table, batch_size=2)
    two = run_with_rig(journal, telemetry, tmp_path, second, table, batch_size=2)
    assert one.recorders["a"].seqs == [1, 2]
    assert two.recorders["a"].seqs == [3, 4, 5]
    assert journal.checkpoint_history == [2, 4, 5]


def test_lag_counts_the_backlog_while_catching_up(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    for n in range(1, 6):
        journal.append(make_message(n))

    async def body(rig: Rig) -> None:
        assert rig.worker.stats.lag == 5  # before the first batch (a fresh restart)
        assert await rig.worker.run_once() == 2
        assert (rig.worker.stats.checkpoint, rig.worker.stats.lag) == (2, 3)
        while await rig.worker.run_once():
            pass
        assert rig.worker.stats.lag == 0

    run_with_rig(
        journal, telemetry, tmp_path, body, routes(Route("r", T, "", ("a",))), batch_size=2
    )


def test_crash_before_checkpoint_redelivers(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    journal.append(make_message(1))
    real = journal.set_checkpoint

    def crash(_name: str, _seq: int) -> None:
        raise RuntimeError("power cut")

    async def crashing(rig: Rig) -> None:
        journal.set_checkpoint = crash  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await rig.worker.run_once()
        journal.set_checkpoint = real  # type: ignore[method-assign]

    async def restarted(rig: Rig) -> None:
        await rig.worker.run_once()

    run_with_rig(journal, telemetry, tmp_path, crashing)
    run_with_rig(journal, telemetry, tmp_path, restarted)
    assert telemetry.calls == 2  # delivered twice (at-least-once) ...
    assert list(telemetry.rows) == [1]  # ... and stored once (dedup by seq)
    assert journal.checkpoints["routing"] == 1


def test_table_reloaded_when_the_version_changes(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    async def body(rig: Rig) -> None:
        journal.append(make_message(1))
        await rig.worker.run_once()
        rig.tables.swap(routes(Route("r", T, "", ("a",))))
        journal.append(make_message(2))
        await rig.worker.run_once()
        loads = rig.tables.loads
        journal.append(make_message(3))
        await rig.worker.run_once()
        assert rig.tables.loads == loads  # unchanged version: no reload

    rig = run_with_rig(journal, telemetry, tmp_path, body)
    assert list(telemetry.rows) == [1]
    assert rig.recorders["a"].seqs == [2, 3]


def test_run_loop_waits_for_new_entries_and_stops(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    async def body(rig: Rig) -> None:
        task = rig.worker.start()
        await asyncio.sleep(0.02)
        journal.append(make_message(1))
        journal.append(make_message(2))
        for _ in range(200):
            if journal.checkpoints.get("routing") == 2:
                break
            await asyncio.sleep(0.01)
        await rig.worker.stop()
        assert task.done()

    run_with_rig(journal, telemetry, tmp_path, body)
    assert sorted(telemetry.rows) == [1, 2]


def test_with_the_sql_store(journal: FakeJournal, engine: Engine, tmp_path: Path) -> None:
    store = RoutingStore(engine)
    down = f"http://127.0.0.1:{refused_port()}/x"
    store.put_endpoint(Endpoint("down", EndpointKind.WEBHOOK, url=down, allow_http=True))
    store.put_route(Route("r", T, "level = 'high'", ("down",)))
    journal.append(make_message(1, app={"level": "high"}))
    journal.append(make_message(2, app={"level": "low"}))
    journal.append(make_message(3, system={"interfaceId": SECURITY_INTERFACE_ID}))
    telemetry = FakeTelemetryStore()

    async def no_wait(_delay: float) -> None:
        return None

    async def go() -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            context = DeliveryContext(
                telemetry=telemetry,
                security_inbox=store,
                http=client,
                export_root=tmp_path,
                retry=RetryPolicy(max_attempts=2),
                sleep=no_wait,
            )
            worker = RoutingWorker(journal, store, EndpointSet(context), dead_letters=store)
            assert await worker.run_once() == 3

    asyncio.run(go())
    assert list(telemetry.rows) == [2]
    [dead] = store.list_dead_letters()
    assert (dead.endpoint, dead.seq) == ("down", 1)
    assert "after 2 attempt" in dead.reason
    assert journal.checkpoints["routing"] == 3
    with engine.connect() as conn:
        assert conn.execute(select(schema.security_inbox.c.seq)).scalars().all() == [3]


def test_run_loop_survives_a_failing_journal(
    journal: FakeJournal, telemetry: FakeTelemetryStore, tmp_path: Path
) -> None:
    journal.append(make_message(1))
    real = journal.read
    failures = [2]

    def flaky(after: int, limit: int) -> list[JournalEntry]:
        if failures[0]:
            failures[0] -= 1
            raise OSError("journal unavailable")
        return real(after, limit)

    journal.read = flaky  # type: ignore[method-assign]

    async def body(rig: Rig) -> None:
        rig.worker.start()
        for _ in range(200):
            if journal.checkpoints.get("routing") == 1:
                break
            await asyncio.sleep(0.01)
        await rig.worker.stop()

    rig = run_with_rig(journal, telemetry, tmp_path, body)
    assert list(telemetry.rows) == [1]
    assert len(rig.sleeps) >= 2

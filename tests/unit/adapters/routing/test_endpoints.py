"""Endpoint deliveries: webhook (against a local HTTP server), JSON Lines, registry."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.unit.adapters.routing.conftest import (
    FakeTelemetryStore,
    ScriptedServer,
    make_message,
    refused_port,
)
from wellguard.adapters.routing import (
    ENDPOINT_KINDS,
    BuiltinEndpoint,
    DeliveryContext,
    DeliveryFailedError,
    EndpointSet,
    JsonLinesEndpoint,
    RetryPolicy,
    WebhookEndpoint,
    message_record,
)
from wellguard.core.ingest.ports import JournalEntry
from wellguard.core.ingest.routing import (
    SECURITY_ENDPOINT,
    Endpoint,
    EndpointKind,
    Route,
    RoutingTable,
)
from wellguard.errors import ConfigError
from wellguard.model.message import MessageSource


def entries(*seqs: int) -> list[JournalEntry]:
    return [JournalEntry(seq=s, message=make_message(s)) for s in seqs]


class Sleeps:
    """An injected ``sleep`` that records delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def run_webhook(
    url: str,
    batch: list[JournalEntry],
    *,
    retry: RetryPolicy | None = None,
    headers: dict[str, str] | None = None,
    sleep: Sleeps | None = None,
    clock: Callable[[], float] | None = None,
) -> Awaitable[None]:
    async def go() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            extra: dict[str, Any] = {"clock": clock} if clock else {}
            hook = WebhookEndpoint(
                url,
                headers or {},
                client,
                retry=retry or RetryPolicy(max_attempts=4, max_elapsed=60),
                sleep=sleep or Sleeps(),
                rng=random.Random(7),
                **extra,
            )
            await hook.deliver(batch)

    return go()


# -- webhook --------------------------------------------------------------------------


def test_webhook_posts_a_json_array_with_headers(http_server: ScriptedServer) -> None:
    batch = entries(1, 2)
    asyncio.run(run_webhook(http_server.url, batch, headers={"Authorization": "Bearer s3"}))
    [(headers, body)] = http_server.received
    assert headers["authorization"] == "Bearer s3"
    assert headers["content-type"] == "application/json"
    assert orjson.loads(body) == [message_record(e.seq, e.message) for e in batch]


def test_webhook_retries_5xx_then_succeeds(http_server: ScriptedServer) -> None:
    http_server.statuses = [500, 503]
    sleeps = Sleeps()
    asyncio.run(run_webhook(http_server.url, entries(1), sleep=sleeps))
    assert len(http_server.received) == 3
    assert len(sleeps.delays) == 2
    # exponential with equal jitter: attempt n waits within [c/2, c], c = 0.5 * 2**(n-1)
    assert 0.25 <= sleeps.delays[0] <= 0.5
    assert 0.5 <= sleeps.delays[1] <= 1.0


@pytest.mark.parametrize("status", [408, 429])
def test_webhook_retries_408_and_429(http_server: ScriptedServer, status: int) -> None:
    http_server.statuses = [status]
    asyncio.run(run_webhook(http_server.url, entries(1)))
    assert len(http_server.received) == 2


def test_webhook_honours_retry_after(http_server: ScriptedServer) -> None:
    http_server.statuses = [(429, {"Retry-After": "4"})]
    sleeps = Sleeps()
    asyncio.run(run_webhook(http_server.url, entries(1), sleep=sleeps))
    assert sleeps.delays == [4.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_webhook_4xx_is_refused_at_once(http_server: ScriptedServer, status: int) -> None:
    http_server.statuses = [status]
    sleeps = Sleeps()
    with pytest.raises(DeliveryFailedError, match=f"HTTP {status}"):
        asyncio.run(run_webhook(http_server.url, entries(1), sleep=sleeps))
    assert len(http_server.received) == 1
    assert sleeps.delays == []


def test_webhook_gives_up_after_max_attempts(http_server: ScriptedServer) -> None:
    http_server.statuses = [502] * 10
    sleeps = Sleeps()
    with pytest.raises(DeliveryFailedError, match="after 4 attempt"):
        asyncio.run(run_webhook(http_server.url, entries(1), sleep=sleeps))
    assert len(http_server.received) == 4
    assert len(sleeps.delays) == 3


def test_webhook_gives_up_on_connection_refused() -> None:
    url = f"http://127.0.0.1:{refused_port()}/x"
    sleeps = Sleeps()
    with pytest.raises(DeliveryFailedError, match="ConnectError"):
        asyncio.run(run_webhook(url, entries(1), sleep=sleeps))
    assert len(sleeps.delays) == 3


def test_webhook_gives_up_when_time_runs_out(http_server: ScriptedServer) -> None:
    http_server.statuses = [500] * 10
    now = [0.0]
    sleeps = Sleeps()

    async def advancing_sleep(delay: float) -> None:
        await sleeps(delay)
        now[0] += delay

    policy = RetryPolicy(max_attempts=100, max_elapsed=10, base_delay=2, max_delay=8)
    with pytest.raises(DeliveryFailedError):
        asyncio.run(
            run_webhook(
                http_server.url,
                entries(1),
                retry=policy,
                sleep=advancing_sleep,  # type: ignore[arg-type]
                clock=lambda: now[0],
            )
        )
    assert sum(sleeps.delays) <= 10
    assert len(http_server.received) == len(sleeps.delays) + 1


def test_retry_policy_validated() -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigError):
        RetryPolicy(base_delay=5, max_delay=1)
    policy = RetryPolicy(max_attempts=10, max_elapsed=1000, base_delay=1, max_delay=4)
    rng = random.Random(1)
    assert all(2 <= (policy.next_delay(n, 0, rng=rng) or 0) <= 4 for n in range(3, 10))
    assert policy.next_delay(10, 0) is None


# -- JSON Lines -----------------------------------------------------------------------


def test_jsonl_appends_one_object_per_message(tmp_path: Path) -> None:
    path = tmp_path / "out" / "telemetry.jsonl"
    endpoint = JsonLinesEndpoint(path)
    binary = JournalEntry(seq=3, message=make_message(3, b"\xff\x00\x01"))
    asyncio.run(endpoint.deliver(entries(1, 2)))
    asyncio.run(endpoint.deliver([binary]))
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    first = lines[0]
    assert first["deviceId"] == "pump-1"
    assert first["moduleId"] is None
    assert first["enqueuedTime"] == "2026-11-22T05:00:01Z"
    assert first["properties"] == {"n": "1"}
    assert first["systemProperties"] == {}
    assert (first["body"], first["bodyEncoding"]) == ('{"n": 0}', "utf-8")
    assert lines[2]["bodyEncoding"] == "base64"
    assert base64.b64decode(lines[2]["body"]) == b"\xff\x00\x01"


def context(tmp_path: Path, client: httpx.AsyncClient, telemetry: Any = None) -> DeliveryContext:
    return DeliveryContext(
        telemetry=telemetry or FakeTelemetryStore(),
        security_inbox=FakeInbox(),
        http=client,
        export_root=tmp_path / "exports",
    )


class FakeInbox:
    def __init__(self) -> None:
        self.seqs: list[int] = []

    def add_security_messages(self, batch: list[JournalEntry]) -> int:
        self.seqs += [e.seq for e in batch]
        return len(batch)


def test_jsonl_factory_keeps_files_inside_the_export_folder(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "exports" / "link").symlink_to(tmp_path / "elsewhere")
    table = RoutingTable(
        [],
        [
            Endpoint("ok", EndpointKind.JSONL, path="site/a.jsonl"),
            Endpoint("escape", EndpointKind.JSONL, path="link/a.jsonl"),
        ],
    )

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            endpoints = EndpointSet(context(tmp_path, client))
            await endpoints.get("ok", table).deliver(entries(1))
            with pytest.raises(DeliveryFailedError, match="leaves the export folder"):
                endpoints.get("escape", table)

    asyncio.run(go())
    assert (tmp_path / "exports" / "site" / "a.jsonl").read_bytes().count(b"\n") == 1
    assert not (tmp_path / "elsewhere" / "a.jsonl").exists()


# -- builtin, $security and the registry ----------------------------------------------


def test_builtin_endpoint_inserts_into_the_telemetry_store() -> None:
    store = FakeTelemetryStore()
    asyncio.run(BuiltinEndpoint(store).deliver(entries(1, 2)))
    asyncio.run(BuiltinEndpoint(store).deliver(entries(2, 3)))
    assert sorted(store.rows) == [1, 2, 3]


def test_endpoint_set_builds_each_kind_and_caches(tmp_path: Path) -> None:
    hook = Endpoint("hook", EndpointKind.WEBHOOK, url="https://example.com/x")
    table = RoutingTable(
        [Route("r", MessageSource.TELEMETRY, "", ("hook",))],
        [hook, Endpoint("file", EndpointKind.JSONL, path="f.jsonl")],
    )

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            ctx = context(tmp_path, client)
            endpoints = EndpointSet(ctx)
            assert isinstance(endpoints.get("builtin", table), BuiltinEndpoint)
            assert isinstance(endpoints.get("hook", table), WebhookEndpoint)
            assert isinstance(endpoints.get("file", table), JsonLinesEndpoint)
            assert endpoints.get("hook", table) is endpoints.get("hook", table)
            changed = RoutingTable(
                [], [Endpoint("hook", EndpointKind.WEBHOOK, url="https://example.com/y")]
            )
            assert endpoints.get("hook", changed) is not endpoints.get("hook", table)
            await endpoints.get(SECURITY_ENDPOINT, table).deliver(entries(5))
            assert isinstance(ctx.security_inbox, FakeInbox)
            assert ctx.security_inbox.seqs == [5]
            with pytest.raises(DeliveryFailedError, match="no endpoint"):
                endpoints.get("nope", table)

    asyncio.run(go())


def test_a_custom_kind_uses_the_same_registry(tmp_path: Path) -> None:
    seen: list[int] = []

    class Recording:
        async def deliver(self, batch: list[JournalEntry]) -> None:
            seen.extend(e.seq for e in batch)

    kinds = {**ENDPOINT_KINDS, EndpointKind.JSONL: lambda _e, _c: Recording()}
    table = RoutingTable([], [Endpoint("file", EndpointKind.JSONL, path="f.jsonl")])

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            endpoints = EndpointSet(context(tmp_path, client), kinds=kinds)
            await endpoints.get("file", table).deliver(entries(1, 2))

    asyncio.run(go())
    assert seen == [1, 2]

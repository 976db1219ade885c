"""Routing adapter fixtures: an in-memory journal, a telemetry store fake, SQL engines
(SQLite and a real PostgreSQL), a scripted plain-HTTP server on 127.0.0.1, port 0, and
the REST API with the routing router, called in-process."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from tests.support.postgres import PostgresServer, find_postgres_binaries, start_postgres
from tests.support.requirements import require
from wellguard.adapters.routing import RoutingStore
from wellguard.adapters.sql import schema
from wellguard.adapters.sql.engine import open_engine, sqlite_url
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.adapters.sql.security_events import SqlSecurityEventLog
from wellguard.apps.api import ApiContext, routes_routing
from wellguard.apps.api.errors import install_error_handlers
from wellguard.apps.hub import NoGatewayMethods
from wellguard.config import HubConfig
from wellguard.core.identity import generate_sas_token
from wellguard.core.ingest.ports import JournalEntry
from wellguard.core.registry import Actor, Registry
from wellguard.core.secretbox import SecretBox, generate_master_key
from wellguard.model.message import DeviceMessage, MessageSource

ROUTING_TABLES = ["routing_endpoints", "routing_routes", "routing_settings"]
ROUTING_TABLES += ["dead_letters", "security_inbox"]
T0 = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)


def make_message(
    n: int = 0,
    body: bytes = b'{"n": 0}',
    *,
    app: dict[str, str] | None = None,
    system: dict[str, str] | None = None,
    device: str = "pump-1",
    source: MessageSource = MessageSource.TELEMETRY,
) -> DeviceMessage:
    return DeviceMessage(
        device_id=device,
        module_id=None,
        enqueued_at=T0 + timedelta(seconds=n),
        source=source,
        body=body,
        system_properties=system if system is not None else {},
        app_properties=app if app is not None else {"n": str(n)},
    )


def refused_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeJournal:
    """The ``IngestJournal`` contract plus checkpoints, in memory."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []
        self.checkpoints: dict[str, int] = {}
        self.checkpoint_history: list[int] = []
        self._lock = threading.Lock()

    def append(self, message: DeviceMessage) -> int:
        with self._lock:
            seq = len(self.entries) + 1
            self.entries.append(JournalEntry(seq=seq, message=message))
            return seq

    def read(self, after: int, limit: int) -> list[JournalEntry]:
        with self._lock:
            return [e for e in self.entries if e.seq > after][:limit]

    def last_seq(self) -> int:
        with self._lock:
            return self.entries[-1].seq if self.entries else 0

    async def wait_for(self, after: int, timeout: float) -> int:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while self.last_seq() <= after and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)  # polling is fine for a test fake
        return self.last_seq()

    def get_checkpoint(self, name: str) -> int:
        return self.checkpoints.get(name, 0)

    def set_checkpoint(self, name: str, seq: int) -> None:
        self.checkpoints[name] = seq
        self.checkpoint_history.append(seq)


class FakeTelemetryStore:
    """``TelemetryStore.insert_many``: idempotent by seq; can be told to fail."""

    def __init__(self) -> None:
        self.rows: dict[int, DeviceMessage] = {}
        self.failures = 0
        self.calls = 0

    def insert_many(self, entries: Sequence[JournalEntry]) -> int:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise OSError("database is locked")
        new = [e for e in entries if e.seq not in self.rows]
        for entry in new:
            self.rows[entry.seq] = entry.message
        return len(new)


@pytest.fixture
def journal() -> FakeJournal:
    return FakeJournal()


@pytest.fixture
def telemetry() -> FakeTelemetryStore:
    return FakeTelemetryStore()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    binaries = find_postgres_binaries()
    require(binaries is not None, "PostgreSQL", "apt-get install postgresql")
    assert binaries is not None
    server = start_postgres(binaries)
    yield server
    server.stop()


def _create_tables(engine: Engine) -> None:
    schema.metadata.create_all(
        engine, tables=[schema.metadata.tables[name] for name in ROUTING_TABLES]
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite with the routing tables."""
    sqlite_engine = open_engine(sqlite_url(tmp_path / "routing.db"))
    _create_tables(sqlite_engine)
    yield sqlite_engine
    sqlite_engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The routing tables on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield request.getfixturevalue("engine")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = server.create_database()
    pg_engine = open_engine(server.url(database))
    _create_tables(pg_engine)
    yield pg_engine
    pg_engine.dispose()
    server.drop_database(database)


@dataclass
class ScriptedServer:
    """A plain-HTTP server that answers POSTs with scripted status codes (then 200)."""

    statuses: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    script = ScriptedServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            script.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            answer = script.statuses.pop(0) if script.statuses else 200
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    script.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield script
    server.shutdown()
    server.server_close()
    thread.join(5)


HOST = "hub.test"
NOW = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)


class Api:
    """Calls the app in-process with a token of the given policy."""

    def __init__(self, app: FastAPI, keys: dict[str, str], store: RoutingStore) -> None:
        self.app = app
        self.keys = keys
        self.store = store
        self.registry: Registry = app.state.ctx.registry

    def call(
        self, method: str, path: str, policy: str | None = "iothubowner", **kw: Any
    ) -> httpx.Response:
        headers = {}
        if policy is not None:
            expiry = int(time.time()) + 300
            headers["Authorization"] = generate_sas_token(HOST, self.keys[policy], expiry, policy)

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=f"https://{HOST}") as c:
                return await c.request(method, path, headers=headers, **kw)

        return asyncio.run(go())


@pytest.fixture
def hub_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite with every table of the hub."""
    sql = open_engine(sqlite_url(tmp_path / "hub.db"))
    schema.metadata.create_all(sql)
    yield sql
    sql.dispose()


@pytest.fixture
def api(hub_engine: Engine) -> Api:
    """The REST API with the routing router, a RoutingStore and the default policies."""
    engine = hub_engine
    box = SecretBox(generate_master_key())
    registry = Registry(SqlRegistryStore(engine, box), lambda: NOW)
    policies = registry.ensure_default_policies(actor=Actor("test", "local"))
    ctx = ApiContext(
        config=HubConfig(hostname=HOST),
        registry=registry,
        certificates=None,  # type: ignore[arg-type]
        security_log=SqlSecurityEventLog(engine),
        methods=NoGatewayMethods(),
        hub_hosts=(HOST,),
        root_ca_pem=b"",
        clock=lambda: NOW,
    )
    # Only the routing router, so these tests do not depend on the rest of the API.
    app = FastAPI()
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(routes_routing.router)
    store = RoutingStore(engine, box=box)
    app.state.routing_store = store
    return Api(app, {p.name: p.primary_key for p in policies}, store)

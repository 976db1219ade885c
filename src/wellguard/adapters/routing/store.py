"""Routing configuration, dead letters and the security inbox on SQL.

Every configuration write is one transaction that re-reads the whole table, applies the
change and builds a ``RoutingTable`` from the result before writing, so the stored
configuration is always one that validates (no route can name a missing endpoint). On
PostgreSQL the routing tables are locked for the write; SQLite transactions are already
``BEGIN IMMEDIATE``. ``version`` counts this process's writes, so the routing worker
knows when to reload (it also reloads on a timer, for writes by other processes).

Webhook header values (typically an ``Authorization`` header) are sealed with the hub's
``SecretBox`` when one is given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from wellguard.adapters.routing.records import message_record
from wellguard.adapters.sql import schema as t
from wellguard.core.ingest.ports import JournalEntry
from wellguard.core.ingest.routing import (
    BUILTIN_ENDPOINT,
    Endpoint,
    EndpointKind,
    Route,
    RoutingTable,
)
from wellguard.core.secretbox import SecretBox
from wellguard.errors import InvalidInputError, NotFoundError, StorageError
from wellguard.model.message import MessageSource

__all__ = ["DeadLetter", "RoutingStore"]

_FALLBACK = "fallback_enabled"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message an endpoint did not take, with why."""

    id: int
    at: datetime
    endpoint: str
    seq: int
    reason: str
    message: dict[str, Any]
    body: bytes


class RoutingStore:
    """Routes, endpoints, the fallback flag, dead letters and the security inbox."""

    def __init__(
        self,
        engine: Engine,
        *,
        box: SecretBox | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._engine = engine
        self._box = box
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        self._version = 0
        self._version_lock = threading.Lock()

    @property
    def version(self) -> int:
        """Bumped by every configuration write through this store."""
        return self._version

    # -- configuration -------------------------------------------------------------------

    def load_table(self) -> RoutingTable:
        """The current routing table."""
        with self._guard(), self._engine.connect() as conn:
            return self._table(conn)

    def routed_sources(self) -> frozenset[MessageSource]:
        """The sources at least one enabled route takes (one small query, for the gateway:
        an event of a source no route takes is not journaled, as IoT Hub emits none)."""
        c = t.routing_routes.c
        query = select(c.source).where(c.enabled.is_(True)).distinct()
        with self._guard(), self._engine.connect() as conn:
            return frozenset(MessageSource(row.source) for row in conn.execute(query))

    def list_endpoints(self) -> list[Endpoint]:
        """Every endpoint by name, the built-in one included."""
        return list(self.load_table().endpoints.values())

    def get_endpoint(self, name: str) -> Endpoint:
        """One endpoint, or ``NotFoundError``."""
        endpoint = self.load_table().endpoints.get(name)
        if endpoint is None:
            raise NotFoundError("endpoint", name)
        return endpoint

    def put_endpoint(self, endpoint: Endpoint) -> bool:
        """Create or replace an endpoint; True when it was created."""
        if endpoint.kind is EndpointKind.BUILTIN:
            raise InvalidInputError("the built-in endpoint cannot be changed", field="kind")
        with self._write() as conn:
            table = self._table(conn)
            created = endpoint.name not in table.endpoints
            others = [e for e in table.endpoints.values() if e.name != endpoint.name]
            RoutingTable(table.routes, [*others, endpoint], fallback_enabled=True)
            values = {
                "kind": endpoint.kind.value,
                "url": endpoint.url,
                "headers": self._seal_headers(endpoint.name, endpoint.headers),
                "path": endpoint.path,
                "allow_http": endpoint.allow_http,
                "updated": self._clock(),
            }
            c = t.routing_endpoints.c
            if created:
                conn.execute(insert(t.routing_endpoints).values(name=endpoint.name, **values))
            else:
                conn.execute(
                    update(t.routing_endpoints).where(c.name == endpoint.name).values(**values)
                )
        return created

    def delete_endpoint(self, name: str) -> None:
        """Delete an endpoint that no route uses."""
        if name == BUILTIN_ENDPOINT:
            raise InvalidInputError("the built-in endpoint cannot be deleted", field="name")
        with self._write() as conn:
            table = self._table(conn)
            if name not in table.endpoints:
                raise NotFoundError("endpoint", name)
            users = table.users_of(name)
            if users:
                raise InvalidInputError(
                    f"endpoint {name!r} is used by route(s) {', '.join(users)}", field="name"
                )
            conn.execute(delete(t.routing_endpoints).where(t.routing_endpoints.c.name == name))

    def list_routes(self) -> list[Route]:
        """Every route by name."""
        return list(self.load_table().routes)

    def get_route(self, name: str) -> Route:
        """One route, or ``NotFoundError``."""
        for route in self.load_table().routes:
            if route.name == name:
                return route
        raise NotFoundError("route", name)

    def put_route(self, route: Route) -> bool:
        """Create or replace a route; True when it was created."""
        with self._write() as conn:
            table = self._table(conn)
            others = [r for r in table.routes if r.name != route.name]
            created = len(others) == len(table.routes)
            RoutingTable([*others, route], table.endpoints.values())
            values = {
                "source": route.source.value,
                "condition": route.condition,
                "endpoints": list(route.endpoints),
                "enabled": route.enabled,
                "updated": self._clock(),
            }
            c = t.routing_routes.c
            if created:
                conn.execute(insert(t.routing_routes).values(name=route.name, **values))
            else:
                conn.execute(update(t.routing_routes).where(c.name == route.name).values(**values))
        return created

    def delete_route(self, name: str) -> None:
        """Delete a route."""
        with self._write() as conn:
            result = conn.execute(delete(t.routing_routes).where(t.routing_routes.c.name == name))
            if result.rowcount != 1:
                raise NotFoundError("route", name)

    def fallback_enabled(self) -> bool:
        """Whether unmatched telemetry goes to the built-in endpoint."""
        with self._guard(), self._engine.connect() as conn:
            return self._fallback(conn)

    def set_fallback(self, enabled: bool) -> None:
        """Turn the fallback route on or off."""
        with self._write() as conn:
            c = t.routing_settings.c
            result = conn.execute(
                update(t.routing_settings).where(c.name == _FALLBACK).values(value=bool(enabled))
            )
            if result.rowcount != 1:
                conn.execute(insert(t.routing_settings).values(name=_FALLBACK, value=enabled))

    # -- dead letters and the security inbox --------------------------------------------

    def add_dead_letters(self, endpoint: str, entries: Sequence[JournalEntry], reason: str) -> int:
        """Keep messages an endpoint did not take; returns how many."""
        if not entries:
            return 0
        at = self._clock()
        rows = [
            {
                "at": at,
                "endpoint": endpoint,
                "seq": entry.seq,
                "reason": reason[:2000],
                "message": message_record(entry.seq, entry.message, with_body=False),
                "body": entry.message.body,
            }
            for entry in entries
        ]
        with self._guard(), self._engine.begin() as conn:
            conn.execute(insert(t.dead_letters), rows)
        return len(rows)

    def list_dead_letters(self, *, after: int | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters in the order they were kept, after id ``after``."""
        c = t.dead_letters.c
        query = select(t.dead_letters).order_by(c.id).limit(limit)
        if after is not None:
            query = query.where(c.id > after)
        with self._guard(), self._engine.connect() as conn:
            return [
                DeadLetter(
                    id=row.id,
                    at=row.at,
                    endpoint=row.endpoint,
                    seq=row.seq,
                    reason=row.reason,
                    message=dict(row.message),
                    body=bytes(row.body),
                )
                for row in conn.execute(query)
            ]

    def add_security_messages(self, entries: Sequence[JournalEntry]) -> int:
        """Put security messages in the inbox, once per journal seq; returns how many new."""
        if not entries:
            return 0
        c = t.security_inbox.c
        with self._guard(), self._engine.begin() as conn:
            seqs = [entry.seq for entry in entries]
            present = set(conn.execute(select(c.seq).where(c.seq.in_(seqs))).scalars())
            rows = {
                entry.seq: {
                    "seq": entry.seq,
                    "device_id": entry.message.device_id,
                    "module_id": entry.message.module_id,
                    "enqueued_at": entry.message.enqueued_at,
                    "system_properties": dict(entry.message.system_properties),
                    "app_properties": dict(entry.message.app_properties),
                    "body": entry.message.body,
                }
                for entry in entries
                if entry.seq not in present
            }
            if rows:
                conn.execute(insert(t.security_inbox), list(rows.values()))
        return len(rows)

    # -- mechanics ----------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StorageError(f"routing store failed: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._guard(), self._engine.begin() as conn:
            self._lock_tables(conn)
            yield conn
        self._bump()

    def _bump(self) -> None:
        with self._version_lock:
            self._version += 1

    def _lock_tables(self, conn: Connection) -> None:
        if self._postgres:
            conn.exec_driver_sql(
                "LOCK TABLE routing_endpoints, routing_routes, routing_settings "
                "IN SHARE ROW EXCLUSIVE MODE"
            )

    def _fallback(self, conn: Connection) -> bool:
        c = t.routing_settings.c
        value = conn.execute(select(c.value).where(c.name == _FALLBACK)).scalar_one_or_none()
        return True if value is None else bool(value)

    def _table(self, conn: Connection) -> RoutingTable:
        endpoints = [
            Endpoint(
                name=row.name,
                kind=EndpointKind(row.kind),
                url=row.url,
                headers=self._open_headers(row.name, row.headers),
                path=row.path,
                allow_http=row.allow_http,
            )
            for row in conn.execute(select(t.routing_endpoints))
        ]
        routes = [
            Route(
                name=row.name,
                source=MessageSource(row.source),
                condition=row.condition,
                endpoints=tuple(row.endpoints),
                enabled=row.enabled,
            )
            for row in conn.execute(select(t.routing_routes))
        ]
        return RoutingTable(routes, endpoints, fallback_enabled=self._fallback(conn))

    def _seal_headers(self, name: str, headers: dict[str, str] | Any) -> dict[str, Any]:
        if self._box is None:
            return {key: {"value": value} for key, value in headers.items()}
        context = f"routing-endpoint:{name}".encode()
        return {
            key: {"sealed": self._box.seal(value.encode(), context=context)}
            for key, value in headers.items()
        }

    def _open_headers(self, name: str, stored: dict[str, Any]) -> dict[str, str]:
        headers: dict[str, str] = {}
        context = f"routing-endpoint:{name}".encode()
        for key, item in stored.items():
            if "sealed" in item:
                if self._box is None:
                    raise StorageError(f"endpoint {name!r} has sealed headers but no key is given")
                headers[key] = self._box.open(item["sealed"], context=context).decode()
            else:
                headers[key] = item["value"]
        return headers

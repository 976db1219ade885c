"""Endpoint deliveries: one small class per endpoint kind, in a registry keyed by kind.

Each has one method, ``async deliver(entries)``, that returns once the endpoint has the
whole batch, or raises ``DeliveryFailedError`` when it will not take it (a permanent
refusal, or retries used up); the routing worker then dead-letters the batch. Any other
exception is a local failure the worker retries for a bounded time before it
dead-letters.

Blocking work (SQL, file appends with ``fsync``) runs in a thread so the event loop keeps
moving. A user-defined kind is a factory ``(Endpoint, DeliveryContext) -> delivery``
registered with ``register_endpoint_kind``, exactly as the built-in kinds are.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import orjson

from wellguard.adapters.routing.records import message_record
from wellguard.adapters.routing.retry import RetryPolicy
from wellguard.core.ingest.ports import JournalEntry
from wellguard.core.ingest.routing import SECURITY_ENDPOINT, Endpoint, EndpointKind, RoutingTable
from wellguard.errors import WellguardError

__all__ = [
    "ENDPOINT_KINDS",
    "BuiltinEndpoint",
    "DeliveryContext",
    "DeliveryFailedError",
    "EndpointDelivery",
    "EndpointFactory",
    "EndpointSet",
    "JsonLinesEndpoint",
    "SecurityInbox",
    "SecurityInboxEndpoint",
    "TelemetrySink",
    "WebhookEndpoint",
    "register_endpoint_kind",
]

Sleep = Callable[[float], Awaitable[None]]


class DeliveryFailedError(WellguardError):
    """An endpoint will not take a batch; the worker dead-letters it with ``reason``."""

    def __init__(self, reason: str, *, endpoint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.endpoint = endpoint


class EndpointDelivery(Protocol):
    """Delivers batches of journal entries to one endpoint."""

    async def deliver(self, entries: Sequence[JournalEntry]) -> None:
        """Return when the endpoint has all of ``entries``; raise ``DeliveryFailedError``
        when it refuses them for good."""


class TelemetrySink(Protocol):
    """The hub's telemetry store (``TelemetryStore``): idempotent by seq."""

    def insert_many(self, entries: Sequence[JournalEntry]) -> int: ...


class SecurityInbox(Protocol):
    """Where security messages wait for the security pipeline (``RoutingStore``)."""

    def add_security_messages(self, entries: Sequence[JournalEntry]) -> int: ...


class BuiltinEndpoint:
    """The built-in endpoint (IoT Hub's ``events``): the hub's telemetry store."""

    def __init__(self, store: TelemetrySink) -> None:
        self._store = store

    async def deliver(self, entries: Sequence[JournalEntry]) -> None:
        """Insert the batch (duplicates by seq are ignored by the store)."""
        await asyncio.to_thread(self._store.insert_many, list(entries))


class SecurityInboxEndpoint:
    """The reserved ``$security`` endpoint: ASC security messages for the security pipeline."""

    def __init__(self, inbox: SecurityInbox) -> None:
        self._inbox = inbox

    async def deliver(self, entries: Sequence[JournalEntry]) -> None:
        """Put the batch in the inbox (idempotent by seq)."""
        await asyncio.to_thread(self._inbox.add_security_messages, list(entries))


class JsonLinesEndpoint:
    """Appends one JSON object per message to a file, and fsyncs after each batch."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = asyncio.Lock()

    async def deliver(self, entries: Sequence[JournalEntry]) -> None:
        """Append the batch (see ``records`` for the object's fields)."""
        data = b"".join(orjson.dumps(message_record(e.seq, e.message)) + b"\n" for e in entries)
        async with self._lock:
            await asyncio.to_thread(self._append, data)

    def _append(self, data: bytes) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)


class WebhookEndpoint:
    """POSTs each batch as a JSON array; retries 408/429/5xx and network errors.

    2xx is done. Any other 4xx is a permanent refusal. Retries follow ``retry`` (a
    ``Retry-After`` in seconds is honoured up to its ``max_delay``); when they run out the
    batch is given up with ``DeliveryFailedError``. Redirects are not followed."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        client: httpx.AsyncClient,
        *,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._url = url
        self._headers = {**headers, "Content-Type": "application/json"}
        self._client = client
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    async def deliver(self, entries: Sequence[JournalEntry]) -> None:
        """POST the batch until it is taken, refused, or retries are used up."""
        payload = orjson.dumps([message_record(e.seq, e.message) for e in entries])
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                # Streamed and closed unread: only the status matters, and a receiver's
                # answer body (of any size) is never buffered.
                async with self._client.stream(
                    "POST",
                    self._url,
                    content=payload,
                    headers=self._headers,
                    follow_redirects=False,
                ) as response:
                    status = response.status_code
                    reason = response.reason_phrase
                    retry_after = _retry_after(response.headers.get("retry-after"))
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if 200 <= status < 300:
                    return
                problem = f"HTTP {status} {reason}".rstrip()
                if status not in (408, 429) and status < 500:
                    raise DeliveryFailedError(f"webhook refused the batch: {problem}")
            delay = self._retry.next_delay(
                attempt, self._clock() - started, retry_after=retry_after, rng=self._rng
            )
            if delay is None:
                raise DeliveryFailedError(
                    f"webhook unavailable after {attempt} attempt(s): {problem}"
                )
            await self._sleep(delay)


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


@dataclass(frozen=True)
class DeliveryContext:
    """What endpoint factories may use: stores, the HTTP client, the export folder."""

    telemetry: TelemetrySink
    security_inbox: SecurityInbox
    http: httpx.AsyncClient
    export_root: Path
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep


EndpointFactory = Callable[[Endpoint, DeliveryContext], EndpointDelivery]


def _builtin(_endpoint: Endpoint, context: DeliveryContext) -> EndpointDelivery:
    return BuiltinEndpoint(context.telemetry)


def _webhook(endpoint: Endpoint, context: DeliveryContext) -> EndpointDelivery:
    assert endpoint.url is not None
    return WebhookEndpoint(
        endpoint.url, endpoint.headers, context.http, retry=context.retry, sleep=context.sleep
    )


def _jsonl(endpoint: Endpoint, context: DeliveryContext) -> EndpointDelivery:
    assert endpoint.path is not None
    root = context.export_root.resolve()
    path = (root / endpoint.path).resolve()
    if not path.is_relative_to(root) or path == root:
        # A symlink inside the export folder must not lead the hub to write elsewhere.
        raise DeliveryFailedError(f"jsonl path {endpoint.path!r} leaves the export folder")
    return JsonLinesEndpoint(path)


ENDPOINT_KINDS: dict[str, EndpointFactory] = {
    EndpointKind.BUILTIN: _builtin,
    EndpointKind.WEBHOOK: _webhook,
    EndpointKind.JSONL: _jsonl,
}


def register_endpoint_kind(kind: str, factory: EndpointFactory) -> None:
    """Add (or replace) the factory of an endpoint kind."""
    ENDPOINT_KINDS[kind] = factory


class EndpointSet:
    """The deliveries of a routing table's endpoints, built once per endpoint definition."""

    def __init__(
        self,
        context: DeliveryContext,
        *,
        kinds: Mapping[str, EndpointFactory] | None = None,
    ) -> None:
        self._context = context
        self._kinds = ENDPOINT_KINDS if kinds is None else kinds
        self._security = SecurityInboxEndpoint(context.security_inbox)
        self._cache: dict[str, tuple[Endpoint, EndpointDelivery]] = {}

    def get(self, name: str, table: RoutingTable) -> EndpointDelivery:
        """The delivery for endpoint ``name`` as ``table`` defines it."""
        if name == SECURITY_ENDPOINT:
            return self._security
        endpoint = table.endpoints.get(name)
        if endpoint is None:
            raise DeliveryFailedError(f"no endpoint named {name!r}", endpoint=name)
        cached = self._cache.get(name)
        if cached is not None and cached[0] == endpoint:
            return cached[1]
        factory = self._kinds.get(endpoint.kind)
        if factory is None:
            raise DeliveryFailedError(f"no delivery for endpoint kind {endpoint.kind!r}")
        delivery = factory(endpoint, self._context)
        self._cache[name] = (endpoint, delivery)
        return delivery

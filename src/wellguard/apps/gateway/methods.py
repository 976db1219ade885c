"""Direct methods: the API's calls to devices, on this process's connections or, with
gateway workers, on the worker that holds the device (``GatewayCluster``)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from wellguard.apps.api.context import MethodResult, MethodTimeoutError
from wellguard.apps.gateway.peers import GatewayCluster
from wellguard.core.gateway import CounterName, SubscriptionKind, method_request_topic

if TYPE_CHECKING:
    from wellguard.apps.gateway.connection import DeviceConnection

__all__ = ["DirectMethods", "MethodTimeoutError"]


class DirectMethods:
    """``DeviceMethods`` of the API; calls wait for devices that are about to connect."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sessions: Mapping[str, DeviceConnection],
        count: Callable[[str, CounterName], None],
    ) -> None:
        self._loop = loop
        self._sessions = sessions
        self._count = count
        self.cluster: GatewayCluster | None = None
        self._pending: dict[str, tuple[asyncio.Future[tuple[int, Any]], str]] = {}
        self._ids = itertools.count(1)
        self._arrivals: dict[str, list[asyncio.Future[None]]] = {}

    def arrived(self, key: str) -> None:
        """``key`` is connected (here or in a worker): wake method calls waiting for it."""
        for waiter in self._arrivals.pop(key, []):
            if not waiter.done():
                waiter.set_result(None)

    def is_connected(self, device_id: str, module_id: str | None) -> bool:
        """True when the identity has a live connection subscribed to methods."""
        conn = self._sessions.get(device_id + (f"/{module_id}" if module_id else ""))
        return conn is not None and SubscriptionKind.METHODS in conn.subscriptions

    async def invoke(
        self,
        device_id: str,
        module_id: str | None,
        name: str,
        payload: object,
        *,
        response_timeout: float,
        connect_timeout: float,
    ) -> MethodResult | None:
        """Invoke a direct method; None when the device is not online for methods."""
        key = device_id + (f"/{module_id}" if module_id else "")
        deadline = self._loop.time() + connect_timeout
        cluster = self.cluster
        while True:
            rid = format(next(self._ids), "x")
            if self.is_connected(device_id, module_id):
                call = self._call(key, name, payload, rid, response_timeout)
                break
            if cluster is not None and cluster.reachable(key):
                call = cluster.invoke(key, name, payload, rid, response_timeout)
                break
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return None
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._arrivals.setdefault(key, []).append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                return None
        try:
            status, body = await call
        except TimeoutError:
            raise MethodTimeoutError(f"device {key!r} did not answer {name!r} in time") from None
        return MethodResult(status=status, payload=body)

    async def invoke_here(
        self, key: str, name: str, payload: object, rid: str, response_timeout: float
    ) -> tuple[int, Any] | None:
        """Run a method for the hub process on a connection of this worker; None when
        the device is not here or did not answer in time."""
        conn = self._sessions.get(key)
        if conn is None or SubscriptionKind.METHODS not in conn.subscriptions:
            return None
        try:
            return await self._call(key, name, payload, rid, response_timeout)
        except TimeoutError:
            return None

    async def _call(
        self, key: str, name: str, payload: object, rid: str, response_timeout: float
    ) -> tuple[int, Any]:
        """Send a method request on ``key``'s connection and wait for the device's status
        and payload (``TimeoutError`` when it does not answer in time)."""
        future: asyncio.Future[tuple[int, Any]] = self._loop.create_future()
        self._pending[rid] = (future, key)
        self._count(key, CounterName.METHOD_INVOKES)
        self._sessions[key].publish(method_request_topic(name, rid), orjson.dumps(payload), 0)
        try:
            return await asyncio.wait_for(future, response_timeout)
        finally:
            self._pending.pop(rid, None)

    def response(self, rid: str, status: int, payload: bytes) -> None:
        """A device answered a direct method."""
        pending = self._pending.get(rid)
        if pending is None or pending[0].done():
            return
        try:
            body = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            body = payload.decode("utf-8", "replace")
        pending[0].set_result((status, body))

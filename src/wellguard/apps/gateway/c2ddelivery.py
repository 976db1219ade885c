"""Cloud-to-device messages on live connections: sending the queue, completing on PUBACK.

A device subscribed to its C2D topic gets every queued, unexpired message it does not
already have in flight (at most 50 are queued per device), as QoS 1 PUBLISHes in IoT
Hub's topic form with the message id, ``to`` and the ack request among the properties.
Its PUBACK completes the message (and the feedback the service asked for); the store is
written off the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from wellguard.apps.gateway.metrics import GatewayMetrics
from wellguard.core.c2d import C2dService
from wellguard.core.gateway import CounterName, SubscriptionKind, c2d_topic
from wellguard.model.c2d import C2dMessage
from wellguard.model.message import SystemProperty

if TYPE_CHECKING:
    from wellguard.apps.gateway.connection import DeviceConnection

__all__ = ["C2dDelivery"]


class C2dDelivery:
    """Sends a connection's queued C2D messages and completes them when acknowledged."""

    def __init__(
        self,
        c2d: C2dService,
        *,
        run_blocking: Callable[..., Awaitable[Any]],
        background: Callable[..., None],
        count: Callable[[str, CounterName], None],
        metrics: GatewayMetrics,
    ) -> None:
        self._c2d = c2d
        self._run_blocking = run_blocking
        self._background = background
        self._count = count
        self._metrics = metrics

    async def deliver(self, conn: DeviceConnection) -> None:
        """Send the device's queued C2D messages it does not have in flight."""
        if conn.auth is None or conn.closed or conn.auth.identity.module_id:
            return
        identity = conn.auth.identity
        queued: list[C2dMessage] = await self._run_blocking(self._c2d.expire, identity.device_id)
        for message in queued:
            if conn.closed or SubscriptionKind.C2D not in conn.subscriptions:
                return
            if any(held.id == message.id for held in conn.c2d_in_flight.values()):
                continue  # sent and not acknowledged yet (at most 50 per device)
            system = {
                SystemProperty.MESSAGE_ID.value: message.message_id,
                **message.system_properties,
            }
            system[SystemProperty.TO.value] = f"/devices/{identity.device_id}/messages/deviceBound"
            app = dict(message.app_properties)
            if message.ack.value != "none":
                app["iothub-ack"] = message.ack.value  # the SDK exposes it as message.ack
            topic = c2d_topic(identity, system, app)
            packet_id = conn.publish(topic, message.body, 1)
            if packet_id is None:
                return
            conn.c2d_in_flight[packet_id] = message
            self._count(identity.key, CounterName.C2D)
            self._metrics.messages_out.inc()
            self._background(self._c2d.mark_delivered, message)

    def acknowledged(self, conn: DeviceConnection, packet_id: int) -> None:
        """The device PUBACKed a C2D message: complete it."""
        message = conn.c2d_in_flight.pop(packet_id, None)
        if message is None:
            return
        self._background(self._c2d.complete, message)

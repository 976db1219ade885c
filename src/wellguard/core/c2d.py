"""Cloud-to-device messaging: a bounded per-device queue with TTL and feedback.

Theory of operation: a service queues a message for a device (IoT Hub limits: 64 KB
body, 50 queued per device, TTL up to 48 hours, default 1 hour). The gateway delivers
queued messages while the device is subscribed; the device's PUBACK completes one,
and completion writes a ``success`` feedback record when the sender asked for it. A
message that outlives its TTL is dropped with an ``expired`` record. Undelivered or
unacknowledged messages stay queued across disconnects and hub restarts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from wellguard.core.registry.events import ChangeKind, RegistryChange, RegistryNotifier
from wellguard.errors import InvalidInputError, NotFoundError, RegistryError
from wellguard.model.c2d import C2dAck, C2dFeedback, C2dMessage, C2dOutcome

__all__ = [
    "DEFAULT_TTL",
    "MAX_BODY_BYTES",
    "MAX_QUEUED",
    "MAX_TTL",
    "C2dQueueFullError",
    "C2dService",
    "C2dStore",
]

MAX_BODY_BYTES = 64 * 1024
MAX_QUEUED = 50
DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(hours=48)
_SYSTEM_FIELDS = ("correlationId", "contentType", "contentEncoding", "userId")


class C2dQueueFullError(RegistryError):
    """The device already has the maximum number of queued messages."""

    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} already has {MAX_QUEUED} queued messages")
        self.device_id = device_id


class C2dStore(Protocol):
    """Where queued messages and feedback live."""

    def enqueue(self, message: C2dMessage, *, max_queued: int) -> C2dMessage | None: ...
    def queued(self, device_id: str) -> list[C2dMessage]: ...
    def remove(
        self,
        message_ids: list[int],
        feedback: list[tuple[C2dMessage, C2dOutcome, str]],
        at: datetime,
    ) -> None: ...
    def mark_delivered(self, message_id: int) -> None: ...
    def purge(self, device_id: str) -> int: ...
    def feedback(self, *, after: int | None, limit: int) -> list[C2dFeedback]: ...


class C2dService:
    """Queues, hands out, completes and expires C2D messages."""

    def __init__(
        self,
        store: C2dStore,
        clock: Callable[[], datetime],
        notifier: RegistryNotifier,
        device_exists: Callable[[str], bool],
    ) -> None:
        self._store = store
        self._clock = clock
        self._notifier = notifier
        self._device_exists = device_exists

    def send(
        self,
        device_id: str,
        body: bytes,
        *,
        message_id: str | None = None,
        ttl: timedelta | None = None,
        expiry: datetime | None = None,
        ack: C2dAck = C2dAck.NONE,
        system: Mapping[str, str] | None = None,
        app: Mapping[str, str] | None = None,
    ) -> C2dMessage:
        """Queue a message for a device; raise when the queue is full."""
        if not self._device_exists(device_id):
            raise NotFoundError("device", device_id)
        if len(body) > MAX_BODY_BYTES:
            raise InvalidInputError(f"C2D body larger than {MAX_BODY_BYTES} bytes", field="body")
        now = self._clock()
        if expiry is not None:
            expires_at = expiry
        else:
            expires_at = now + (ttl if ttl is not None else DEFAULT_TTL)
        if expires_at <= now:
            raise InvalidInputError("expiry is in the past", field="expiryTimeUtc")
        if expires_at - now > MAX_TTL:
            raise InvalidInputError("TTL is longer than 48 hours", field="ttl")
        system_props = {k: v for k, v in (system or {}).items() if k in _SYSTEM_FIELDS and v}
        app_props = dict(app or {})
        if len(app_props) > 64 or any(len(k) > 128 or len(v) > 1024 for k, v in app_props.items()):
            raise InvalidInputError("at most 64 properties of up to 128/1024 characters")
        mid = message_id or secrets.token_hex(16)
        if len(mid) > 128:
            raise InvalidInputError("messageId longer than 128 characters", field="messageId")
        message = C2dMessage(
            id=0,
            device_id=device_id,
            message_id=mid,
            body=body,
            enqueued_at=now,
            expires_at=expires_at,
            ack=ack,
            system_properties=system_props,
            app_properties=app_props,
        )
        self.expire(device_id)
        stored = self._store.enqueue(message, max_queued=MAX_QUEUED)
        if stored is None:
            raise C2dQueueFullError(device_id)
        self._notifier.publish(RegistryChange(ChangeKind.C2D_QUEUED, device_id=device_id))
        return stored

    def expire(self, device_id: str) -> list[C2dMessage]:
        """Drop messages past their TTL (with feedback); return those still queued."""
        now = self._clock()
        live: list[C2dMessage] = []
        dead: list[C2dMessage] = []
        for message in self._store.queued(device_id):
            (dead if message.expires_at <= now else live).append(message)
        if dead:
            self._store.remove(
                [m.id for m in dead],
                [
                    (m, C2dOutcome.EXPIRED, "message expired")
                    for m in dead
                    if m.ack.wants(C2dOutcome.EXPIRED)
                ],
                now,
            )
        return live

    def mark_delivered(self, message: C2dMessage) -> None:
        """Count a delivery attempt."""
        self._store.mark_delivered(message.id)

    def complete(self, message: C2dMessage) -> None:
        """The device acknowledged the message."""
        feedback = (
            [(message, C2dOutcome.SUCCESS, "Success")]
            if message.ack.wants(C2dOutcome.SUCCESS)
            else []
        )
        self._store.remove([message.id], feedback, self._clock())

    def purge(self, device_id: str) -> int:
        """Drop every queued message of a device; returns how many."""
        return self._store.purge(device_id)

    def feedback(self, *, after: int | None, limit: int) -> list[C2dFeedback]:
        """Feedback records, oldest first."""
        return self._store.feedback(after=after, limit=limit)

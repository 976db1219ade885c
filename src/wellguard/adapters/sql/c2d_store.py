"""The C2D queue and its feedback records on SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, delete, func, insert, select, update

from wellguard.adapters.sql.schema_hub import c2d_feedback, c2d_messages
from wellguard.model.c2d import C2dAck, C2dFeedback, C2dMessage, C2dOutcome

__all__ = ["SqlC2dStore"]


def _message(row: Row[Any]) -> C2dMessage:
    return C2dMessage(
        id=row.id,
        device_id=row.device_id,
        message_id=row.message_id,
        body=bytes(row.body),
        enqueued_at=row.enqueued_at,
        expires_at=row.expires_at,
        ack=C2dAck(row.ack),
        system_properties=row.system,
        app_properties=row.app,
        delivery_count=row.delivery_count,
    )


class SqlC2dStore:
    """Implements ``wellguard.core.c2d.C2dStore``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def enqueue(self, message: C2dMessage, *, max_queued: int) -> C2dMessage | None:
        """Queue ``message`` unless the device already has ``max_queued``."""
        c = c2d_messages.c
        with self._engine.begin() as conn:
            queued = conn.execute(
                select(func.count())
                .select_from(c2d_messages)
                .where(c.device_id == message.device_id)
            ).scalar_one()
            if queued >= max_queued:
                return None
            result = conn.execute(
                insert(c2d_messages)
                .values(
                    device_id=message.device_id,
                    message_id=message.message_id,
                    body=message.body,
                    system=message.system_properties,
                    app=message.app_properties,
                    enqueued_at=message.enqueued_at,
                    expires_at=message.expires_at,
                    ack=message.ack.value,
                    delivery_count=0,
                )
                .returning(c.id)
            )
            new_id = result.scalar_one()
        return C2dMessage(
            id=new_id,
            device_id=message.device_id,
            message_id=message.message_id,
            body=message.body,
            enqueued_at=message.enqueued_at,
            expires_at=message.expires_at,
            ack=message.ack,
            system_properties=message.system_properties,
            app_properties=message.app_properties,
        )

    def queued(self, device_id: str) -> list[C2dMessage]:
        """The device's queue, oldest first."""
        c = c2d_messages.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(c2d_messages).where(c.device_id == device_id).order_by(c.id))
            return [_message(row) for row in rows]

    def remove(
        self,
        message_ids: list[int],
        feedback: list[tuple[C2dMessage, C2dOutcome, str]],
        at: datetime,
    ) -> None:
        """Delete messages and write their feedback records, atomically."""
        with self._engine.begin() as conn:
            conn.execute(delete(c2d_messages).where(c2d_messages.c.id.in_(message_ids)))
            for message, outcome, description in feedback:
                conn.execute(
                    insert(c2d_feedback).values(
                        at=at,
                        device_id=message.device_id,
                        message_id=message.message_id,
                        outcome=outcome.value,
                        description=description,
                    )
                )

    def mark_delivered(self, message_id: int) -> None:
        """Count one delivery."""
        c = c2d_messages.c
        with self._engine.begin() as conn:
            conn.execute(
                update(c2d_messages)
                .where(c.id == message_id)
                .values(delivery_count=c.delivery_count + 1)
            )

    def purge(self, device_id: str) -> int:
        """Delete the device's whole queue."""
        with self._engine.begin() as conn:
            result = conn.execute(delete(c2d_messages).where(c2d_messages.c.device_id == device_id))
            return int(result.rowcount)

    def feedback(self, *, after: int | None, limit: int) -> list[C2dFeedback]:
        """Feedback records after id ``after``."""
        c = c2d_feedback.c
        query = select(c2d_feedback).order_by(c.id).limit(limit)
        if after is not None:
            query = query.where(c.id > after)
        with self._engine.connect() as conn:
            return [
                C2dFeedback(
                    id=row.id,
                    at=row.at,
                    device_id=row.device_id,
                    message_id=row.message_id,
                    outcome=C2dOutcome(row.outcome),
                    description=row.description,
                )
                for row in conn.execute(query)
            ]

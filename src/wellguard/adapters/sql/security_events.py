"""Hub security events on SQL, and the structured log line each one also becomes."""

from __future__ import annotations

import logging

import orjson
from sqlalchemy import Engine, insert, select

from wellguard.adapters.sql.schema import security_events
from wellguard.model.security_event import HubSecurityEvent

__all__ = ["SqlSecurityEventLog"]

_log = logging.getLogger("wellguard.security")


class SqlSecurityEventLog:
    """Records hub security events in the store and as JSON log lines."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, event: HubSecurityEvent) -> None:
        """Store one event (and log it)."""
        _log.warning(
            "%s",
            orjson.dumps(
                {
                    "event": "hub_security_event",
                    "at": event.at.isoformat(),
                    "kind": event.kind,
                    "reason": event.reason,
                    "identity": event.identity,
                    "source": event.source,
                    "detail": event.detail,
                }
            ).decode(),
        )
        with self._engine.begin() as conn:
            conn.execute(
                insert(security_events).values(
                    at=event.at,
                    kind=event.kind,
                    reason=event.reason,
                    identity=event.identity[:300] if event.identity else None,
                    source=event.source[:128],
                    detail=event.detail[:4000],
                )
            )

    def recent(self, *, after: int | None, limit: int) -> list[HubSecurityEvent]:
        """Events in order of recording, after id ``after``."""
        c = security_events.c
        query = select(security_events).order_by(c.id).limit(limit)
        if after is not None:
            query = query.where(c.id > after)
        with self._engine.connect() as conn:
            return [
                HubSecurityEvent(
                    id=row.id,
                    at=row.at,
                    kind=row.kind,
                    reason=row.reason,
                    identity=row.identity,
                    source=row.source,
                    detail=row.detail,
                )
                for row in conn.execute(query)
            ]

"""The events the gateway journals about devices: connection state and twin changes.

IoT Hub emits these only to routes that take their source, so they are journaled only
while an enabled route does: a fleet reconnecting after an outage would otherwise write,
fsync, read back and drop two events per device. Which sources routes take is re-read
every gateway sweep (``reload``, 0.5 s), in every gateway process, so a new route gets
the events from about a second after it is saved. Until the first read (or without a
loader) every event is journaled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any

import orjson

from wellguard.core.ingest.ports import IngestJournal
from wellguard.errors import WellguardError
from wellguard.model.message import DeviceMessage, MessageSource, SystemProperty

__all__ = ["DeviceEvents"]

_log = logging.getLogger("wellguard.gateway")
_JSON = {
    SystemProperty.CONTENT_TYPE.value: "application/json",
    SystemProperty.CONTENT_ENCODING.value: "utf-8",
}


class DeviceEvents:
    """Journals JSON events of routed sources (``emit`` never raises)."""

    def __init__(
        self,
        journal: IngestJournal,
        clock: Callable[[], datetime],
        routed_sources: Callable[[], Collection[MessageSource]] | None,
        run_blocking: Callable[..., Awaitable[Any]],
    ) -> None:
        self._journal = journal
        self._clock = clock
        self._routed_sources = routed_sources
        self._run_blocking = run_blocking
        self._routed: frozenset[MessageSource] | None = None  # None: not known, all

    async def reload(self) -> None:
        """Read which sources routes take now; a failed read keeps the last answer."""
        if self._routed_sources is None:
            return
        try:
            self._routed = frozenset(await self._run_blocking(self._routed_sources))
        except WellguardError as exc:
            _log.warning("cannot read the routed sources, keeping the last ones: %s", exc)

    def emit(
        self, device_id: str, module_id: str | None, source: MessageSource, body: dict[str, Any]
    ) -> None:
        """Journal one event, unless no route takes its source."""
        if self._routed is not None and source not in self._routed:
            return
        message = DeviceMessage(
            device_id=device_id,
            module_id=module_id,
            enqueued_at=self._clock(),
            source=source,
            body=orjson.dumps(body),
            system_properties=dict(_JSON),
        )
        try:
            self._journal.submit(message).add_done_callback(_ignore_result)
        except WellguardError:
            _log.warning("journal refused a %s event", source)


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()

"""The JSON form of a routed message, shared by webhooks, JSON Lines files and dead letters.

One object per message::

    {"seq": 42, "deviceId": "pump-7", "moduleId": null, "source": "DeviceMessages",
     "enqueuedTime": "2026-11-22T05:17:47.112167Z", "systemProperties": {...},
     "properties": {...}, "body": "...", "bodyEncoding": "utf-8"}

``body`` is the body as text when it is valid UTF-8 (``bodyEncoding`` ``utf-8``), else
base64 (``bodyEncoding`` ``base64``). ``seq`` is the ingest-journal sequence number:
delivery is at-least-once, so consumers deduplicate by it.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from wellguard.model.message import DeviceMessage

__all__ = ["encode_body", "iso_utc", "message_record"]


def iso_utc(moment: datetime) -> str:
    """``moment`` as ISO 8601 UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode_body(body: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 text when the body decodes, else base64."""
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def message_record(seq: int, message: DeviceMessage, *, with_body: bool = True) -> dict[str, Any]:
    """The JSON object of one routed message (without ``body`` when ``with_body`` is false)."""
    record: dict[str, Any] = {
        "seq": seq,
        "deviceId": message.device_id,
        "moduleId": message.module_id,
        "source": message.source.value,
        "enqueuedTime": iso_utc(message.enqueued_at),
        "systemProperties": dict(message.system_properties),
        "properties": dict(message.app_properties),
    }
    if with_body:
        record["body"], record["bodyEncoding"] = encode_body(message.body)
    return record

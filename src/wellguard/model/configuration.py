"""Automatic device configurations (IoT Hub's ``/configurations``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Configuration"]


@dataclass(frozen=True)
class Configuration:
    """A configuration: content applied to the twins its target condition selects."""

    configuration_id: str
    etag: str
    schema_version: str
    labels: dict[str, str]
    content: dict[str, Any]
    target_condition: str
    priority: int
    metrics: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None

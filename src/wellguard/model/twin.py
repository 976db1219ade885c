"""Device and module twins: tags, desired and reported properties, versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Twin"]


@dataclass(frozen=True)
class Twin:
    """The twin of a device (``module_id`` None) or of a module."""

    device_id: str
    module_id: str | None
    etag: str
    version: int
    tags: dict[str, Any] = field(default_factory=dict)
    desired: dict[str, Any] = field(default_factory=dict)
    desired_version: int = 1
    reported: dict[str, Any] = field(default_factory=dict)
    reported_version: int = 1

"""Registry change notifications: how live connections learn about administrative changes.

Theory of operation: after a change has committed, the registry tells every observer
what changed: which identity (created, changed or deleted), which twin, or that the
shared access policies changed. Observers must not block (the gateway hands the notice
to its event loop and re-checks the identity's live connections there); they must not
raise either — an observer's failure is logged and never undoes or fails the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from wellguard.model.twin import Twin

__all__ = ["ChangeKind", "RegistryChange", "RegistryNotifier"]

_log = logging.getLogger("wellguard.registry")


class ChangeKind(StrEnum):
    """What changed."""

    IDENTITY = "identity"  # creation, status, credentials, lifecycle, deletion
    POLICY = "policy"  # a shared access policy was created or replaced
    DESIRED = "desired"  # desired properties of a twin
    CERTIFICATE_REVOKED = "certificate_revoked"
    IP_FILTER = "ip_filter"
    C2D_QUEUED = "c2d_queued"


@dataclass(frozen=True)
class RegistryChange:
    """One committed change."""

    kind: ChangeKind
    device_id: str | None = None
    module_id: str | None = None
    twin: Twin | None = None
    patch: dict[str, Any] | None = None  # for DESIRED: what devices are sent


class RegistryNotifier:
    """Fan-out of committed changes to observers."""

    def __init__(self) -> None:
        self._observers: list[Callable[[RegistryChange], None]] = []

    def subscribe(self, observer: Callable[[RegistryChange], None]) -> None:
        """Call ``observer`` for every later change."""
        self._observers.append(observer)

    def publish(self, change: RegistryChange) -> None:
        """Tell every observer; never raises."""
        for observer in list(self._observers):
            try:
                observer(change)
            except Exception:  # an observer bug must not fail an admin action
                _log.exception("registry observer failed on %s", change.kind)

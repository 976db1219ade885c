"""What the gateway tells, and asks of, the hub's other gateway processes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from wellguard.core.gateway import SubscriptionKind

__all__ = ["GatewayCluster"]


class GatewayCluster(Protocol):
    """The other gateway processes of the hub (``wellguard.apps.gateway.cluster``)."""

    def claimed(self, key: str, kinds: Iterable[SubscriptionKind]) -> None: ...
    def released(self, key: str) -> None: ...
    def subscriptions(self, key: str, kinds: Iterable[SubscriptionKind]) -> None: ...
    def session(self, key: str, subscriptions: dict[str, int] | None) -> None: ...
    def admission(self, ip: str, flap: bool) -> None: ...
    def reachable(self, key: str) -> bool: ...
    async def invoke(
        self, key: str, name: str, payload: object, rid: str, response_timeout: float
    ) -> tuple[int, Any]: ...

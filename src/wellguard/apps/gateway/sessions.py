"""Persistent MQTT sessions: the subscriptions of ``clean_session=False`` clients, by
identity key, kept while they are away.

They live in memory for the gateway's lookups, in the store (so that they survive even a
hub crash), and, with gateway workers, in every gateway process: a device that comes
back on another worker keeps its subscriptions (the device SDK never subscribes again
after such a reconnect).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from wellguard.adapters.sql.hub_state import SqlSessionStore
from wellguard.apps.gateway.peers import GatewayCluster
from wellguard.core.gateway import SubscriptionKind

__all__ = ["PersistentSessions"]

_KINDS = {kind.value for kind in SubscriptionKind}
Subscriptions = dict[SubscriptionKind, int]


class PersistentSessions:
    """The persistent sessions this gateway process knows."""

    def __init__(
        self,
        store: SqlSessionStore,
        *,
        background: Callable[..., None],
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._background = background  # runs a blocking store write off the loop
        self._clock = clock
        self._sessions: dict[str, Subscriptions] = {}
        self.cluster: GatewayCluster | None = None

    def load(self) -> None:
        """Read every stored session (blocking: call off the loop, at start)."""
        for key, stored in self._store.load_all().items():
            self._set(key, stored)

    def get(self, key: str) -> Subscriptions | None:
        """The subscriptions kept for ``key``, if any."""
        return self._sessions.get(key)

    def remember(self, key: str, subscriptions: Subscriptions | None) -> None:
        """Keep (or, with none, drop) ``key``'s session: in memory, in the store and in
        the other gateway processes."""
        if subscriptions:
            if self._sessions.get(key) == subscriptions:
                return
            self._sessions[key] = dict(subscriptions)
        elif self._sessions.pop(key, None) is None:
            return
        stored = {kind.value: qos for kind, qos in (subscriptions or {}).items()} or None
        self._background(self._store.save, key, stored, self._clock())
        if self.cluster is not None:
            self.cluster.session(key, stored)

    def apply_remote(self, key: str, stored: Mapping[str, Any] | None) -> None:
        """Another gateway process changed (and stored) ``key``'s session."""
        self._set(key, stored or {})

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Every session, as stored (for a worker that joins)."""
        return {
            key: {kind.value: qos for kind, qos in kinds.items()}
            for key, kinds in self._sessions.items()
        }

    def _set(self, key: str, stored: Mapping[str, Any]) -> None:
        kinds = {SubscriptionKind(k): int(q) for k, q in stored.items() if k in _KINDS}
        if kinds:
            self._sessions[key] = kinds
        else:
            self._sessions.pop(key, None)

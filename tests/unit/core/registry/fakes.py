"""A clock the test moves, and the actor and start time the registry tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wellguard.core.registry import Actor

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = Actor(name="admin@test", source="127.0.0.1:50000")


class FakeClock:
    """A clock that stands still until the test advances it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

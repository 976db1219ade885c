"""Bounded retries with exponential backoff and jitter, for endpoints that can be down.

Theory of operation: attempt ``n`` (1-based) that failed waits
``min(max_delay, base_delay * 2**(n-1))``, of which the upper half is random ("equal
jitter": retries of many hubs do not line up, yet never come back immediately). A server
may ask for more with ``Retry-After``, up to ``max_delay``. Retrying stops after
``max_attempts`` attempts, or when the next wait would end past ``max_elapsed`` seconds
from the first attempt, whichever comes first; the caller then dead-letters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from wellguard.errors import ConfigError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one delivery (seconds)."""

    max_attempts: int = 6
    max_elapsed: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 15.0

    def __post_init__(self) -> None:
        if (
            self.max_attempts < 1
            or self.max_elapsed < 0
            or not (0 <= self.base_delay <= self.max_delay)
        ):
            raise ConfigError("retry policy needs max_attempts >= 1 and 0 <= base <= max delay")

    def next_delay(
        self,
        attempt: int,
        elapsed: float,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait after failed attempt ``attempt``, or ``None``: give up."""
        if attempt >= self.max_attempts:
            return None
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        draw = rng.random() if rng is not None else random.random()
        delay = ceiling / 2 + draw * ceiling / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        if elapsed + delay > self.max_elapsed:
            return None
        return delay

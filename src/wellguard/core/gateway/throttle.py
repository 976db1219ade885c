"""Message-rate throttling for the gateway: per device and hub-wide, sans-IO.

Theory of operation
-------------------
``TokenBucket`` is the classic bucket: ``burst`` tokens, refilled at ``rate_per_s``. Its
``take`` never refuses: it always takes the tokens and, when the bucket runs dry, lets the
balance go negative and returns how long the caller must hold the work so that the
long-run rate stays at ``rate_per_s``. The gateway turns that delay into backpressure
(it stops reading the device's socket and delays the PUBACK), which is what IoT Hub does
to a device over its quota. ``try_take`` is the refusing variant, for admission checks.

``DeviceThrottle`` adds the decision to give up on a device: it asks for a disconnect when
the device has been over its limit without a break for ``abuse_seconds``, or when the
delay it would have to absorb exceeds ``max_delay_s`` (a device that ignores TCP
backpressure and keeps queueing). ``HubThrottle`` is one bucket in front of the store for
all devices together; when its backlog would exceed ``max_delay_s`` it asks the gateway to
shed the message's connection instead of queueing without bound.

The gateway reads many PUBLISHes at once. ``DeviceThrottle.admit_together`` decides a
read's ``n`` messages in both throttles at one go, with the very decisions ``n`` pairs of
``admit`` calls would give. When both buckets hold ``n`` tokens (the usual case), none of
the ``n`` would be held, so it takes ``n`` tokens from each and is done; otherwise it
makes the ``n`` calls, stopping at the first disconnect.

Every method takes ``now``, monotonic seconds; time running backwards counts as no time.
Defaults: 100 messages/s per device with a burst of 200 (AWS IoT Core's per-connection
publish limit), 10 s of sustained excess or 5 s of queued delay before a disconnect;
2000 messages/s hub-wide with a burst of 4000 and 2 s of backlog.
"""

from __future__ import annotations

from dataclasses import dataclass

from wellguard.errors import InvalidInputError

__all__ = [
    "DEFAULT_DEVICE_BURST",
    "DEFAULT_DEVICE_RATE",
    "DEFAULT_HUB_BURST",
    "DEFAULT_HUB_RATE",
    "DeviceThrottle",
    "HubThrottle",
    "ThrottleDecision",
    "TokenBucket",
]

DEFAULT_DEVICE_RATE = 100.0
DEFAULT_DEVICE_BURST = 200.0
DEFAULT_HUB_RATE = 2000.0
DEFAULT_HUB_BURST = 4000.0
# Below this a computed wait is float noise, not throttling.
_EPSILON = 1e-9


class TokenBucket:
    """A token bucket that can go into debt; ``take`` returns the seconds to wait."""

    __slots__ = ("_last", "_tokens", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: float) -> None:
        if not rate_per_s > 0:
            raise InvalidInputError("rate_per_s must be positive", field="rate_per_s")
        if not burst >= 1:
            raise InvalidInputError("burst must be at least 1", field="burst")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._tokens = self.burst
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
        if self._last is None or now > self._last:
            self._last = now

    def wait_time(self, now: float, n: float = 1) -> float:
        """Seconds ``take(now, n)`` would return, without taking anything."""
        self._refill(now)
        deficit = n - self._tokens
        return deficit / self.rate_per_s if deficit > _EPSILON else 0.0

    def take(self, now: float, n: float = 1) -> float:
        """Take ``n`` tokens; 0.0 if they were there, else the seconds to hold the work."""
        wait = self.wait_time(now, n)
        self._tokens -= n
        return wait

    def try_take(self, now: float, n: float = 1) -> bool:
        """Take ``n`` tokens only if available now; never goes into debt."""
        if self.wait_time(now, n) > 0.0:
            return False
        self._tokens -= n
        return True


@dataclass(frozen=True, slots=True)
class ThrottleDecision:
    """Hold the message ``delay`` seconds; if ``disconnect``, drop the connection instead."""

    delay: float
    disconnect: bool = False


_GO = ThrottleDecision(0.0)


class DeviceThrottle:
    """One device's message rate, with sustained-abuse detection."""

    __slots__ = ("_bucket", "_over_since", "abuse_seconds", "max_delay_s")

    def __init__(
        self,
        rate_per_s: float = DEFAULT_DEVICE_RATE,
        burst: float = DEFAULT_DEVICE_BURST,
        *,
        abuse_seconds: float = 10.0,
        max_delay_s: float = 5.0,
    ) -> None:
        if not abuse_seconds > 0 or not max_delay_s > 0:
            raise InvalidInputError("abuse_seconds and max_delay_s must be positive")
        self._bucket = TokenBucket(rate_per_s, burst)
        self._over_since: float | None = None
        self.abuse_seconds = abuse_seconds
        self.max_delay_s = max_delay_s

    @property
    def over_since(self) -> float | None:
        """When the current unbroken stretch over the limit began, or None."""
        return self._over_since

    def admit(self, now: float, n: float = 1) -> ThrottleDecision:
        """Account one message (or ``n``) at ``now`` and say what to do with it."""
        wait = self._bucket.wait_time(now, n)
        if wait == 0.0:
            self._over_since = None
            self._bucket.take(now, n)
            return ThrottleDecision(0.0)
        if self._over_since is None:
            self._over_since = now
        if wait > self.max_delay_s or now - self._over_since >= self.abuse_seconds:
            return ThrottleDecision(wait, disconnect=True)
        self._bucket.take(now, n)
        return ThrottleDecision(wait)

    def admit_together(self, now: float, n: int, hub: HubThrottle) -> list[ThrottleDecision]:
        """Decide ``n`` messages that arrived together at ``now``, here and in ``hub``.

        Gives what ``n`` rounds of ``admit(now)`` here and ``hub.admit(now)`` would, each
        pair combined (the longer delay; a disconnect from either), in order and up to
        and including the first disconnect: the messages after it are not accounted.
        """
        bucket, shared = self._bucket, hub._bucket
        if bucket.wait_time(now, n) == 0.0 and shared.wait_time(now, n) == 0.0:
            # Each of the n finds a token in both buckets, so each single admit would say
            # "go" and reset the excess streak.
            self._over_since = None
            bucket.take(now, n)
            shared.take(now, n)
            return [_GO] * n
        decisions: list[ThrottleDecision] = []
        for _ in range(n):
            device = self.admit(now)
            total = hub.admit(now)
            decision = ThrottleDecision(
                max(device.delay, total.delay), device.disconnect or total.disconnect
            )
            decisions.append(decision)
            if decision.disconnect:
                break
        return decisions


class HubThrottle:
    """The hub-wide message rate that protects the store; sheds when the backlog is full."""

    __slots__ = ("_bucket", "max_delay_s")

    def __init__(
        self,
        rate_per_s: float = DEFAULT_HUB_RATE,
        burst: float = DEFAULT_HUB_BURST,
        *,
        max_delay_s: float = 2.0,
    ) -> None:
        if not max_delay_s > 0:
            raise InvalidInputError("max_delay_s must be positive", field="max_delay_s")
        self._bucket = TokenBucket(rate_per_s, burst)
        self.max_delay_s = max_delay_s

    def admit(self, now: float, n: float = 1) -> ThrottleDecision:
        """Account ``n`` messages from any device; a shed message takes no tokens."""
        wait = self._bucket.wait_time(now, n)
        if wait > self.max_delay_s:
            return ThrottleDecision(wait, disconnect=True)
        self._bucket.take(now, n)
        return ThrottleDecision(wait)

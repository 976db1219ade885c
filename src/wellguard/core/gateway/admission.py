"""Per-source-address admission control for new connections, sans-IO.

Theory of operation
-------------------
The gateway calls ``check(ip, now)`` when a TCP connection arrives, before TLS and before
any credential is looked at, and closes the socket when the answer is not ``allowed``.
Three things can keep an address out:

* a connect rate over ``max_connects_per_ip_per_s`` (a token bucket with ``burst``),
  refused as ``rate_limited`` without further penalty, since a fleet behind one NAT
  reconnecting after an outage looks like this too;
* ``failure_threshold`` authentication failures or protocol violations
  (``record_failure``) within ``failure_window_s``;
* ``flap_threshold`` flaps (``record_flap``: the gateway reports a connection that ended
  soon after it was accepted) within ``flap_window_s`` — EMQX's flapping detection.

The last two ban the address for ``ban_s`` seconds; bans lapse on their own.

Addresses are grouped before they are counted: IPv4-mapped IPv6 is its IPv4 address and
IPv6 is counted per /64, because one host commonly holds a whole /64 and could otherwise
rotate through it. Memory is bounded whatever the attacker does: at most
``max_tracked_ips`` address groups are tracked (least recently seen is forgotten first)
and at most as many bans are held (soonest to expire is dropped first — every ban cost
its owner ``failure_threshold`` failures). Failure and flap histories keep only the last
threshold-many timestamps.

Defaults: 50 connects/s per address with a burst of 100; 10 failures in 60 s or 15 flaps in
60 s (EMQX's defaults) ban for 300 s; 65,536 tracked addresses.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import StrEnum

from wellguard.core.gateway.throttle import TokenBucket
from wellguard.errors import InvalidInputError

__all__ = ["AdmissionControl", "AdmissionDecision", "AdmissionRefusal", "address_group"]


class AdmissionRefusal(StrEnum):
    """Why a connection was not admitted."""

    RATE_LIMITED = "rate_limited"
    BANNED = "banned"


@dataclass(frozen=True, slots=True)
class AdmissionDecision:
    """Whether to accept the connection; ``banned_until`` is monotonic seconds."""

    allowed: bool
    reason: AdmissionRefusal | None = None
    banned_until: float | None = None


def address_group(ip: str) -> str:
    """The key an address is counted under: IPv4 as is, IPv6 by its /64."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip[:64]  # not an address; still counted, bounded like one
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Track:
    # The histories are made at an address's first failure or flap: most addresses never
    # have one, and an empty deque costs ~600 bytes (a fleet is tens of thousands).
    __slots__ = ("bucket", "failures", "flaps")

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.failures: deque[float] | None = None
        self.flaps: deque[float] | None = None


class AdmissionControl:
    """Connect-rate limits and temporary bans per source address."""

    def __init__(
        self,
        max_connects_per_ip_per_s: float = 50.0,
        burst: float = 100.0,
        failure_threshold: int = 10,
        failure_window_s: float = 60.0,
        ban_s: float = 300.0,
        *,
        flap_threshold: int = 15,
        flap_window_s: float = 60.0,
        max_tracked_ips: int = 65_536,
    ) -> None:
        if failure_threshold < 1 or flap_threshold < 1 or max_tracked_ips < 1:
            raise InvalidInputError("thresholds and max_tracked_ips must be at least 1")
        if not (failure_window_s > 0 and flap_window_s > 0 and ban_s > 0):
            raise InvalidInputError("windows and ban_s must be positive")
        TokenBucket(max_connects_per_ip_per_s, burst)  # validate rate and burst up front
        self.max_connects_per_ip_per_s = max_connects_per_ip_per_s
        self.burst = burst
        self.failure_threshold = failure_threshold
        self.failure_window_s = failure_window_s
        self.ban_s = ban_s
        self.flap_threshold = flap_threshold
        self.flap_window_s = flap_window_s
        self.max_tracked_ips = max_tracked_ips
        self._tracks: OrderedDict[str, _Track] = OrderedDict()
        # Insertion order is expiry order, since every ban lasts ban_s from a monotonic now.
        self._bans: OrderedDict[str, float] = OrderedDict()

    @property
    def tracked(self) -> int:
        """How many address groups currently have state (for metrics and tests)."""
        return len(self._tracks)

    @property
    def banned(self) -> int:
        """How many address groups are banned or have a ban not yet swept."""
        return len(self._bans)

    def _track(self, key: str) -> _Track:
        track = self._tracks.get(key)
        if track is None:
            bucket = TokenBucket(self.max_connects_per_ip_per_s, self.burst)
            track = _Track(bucket)
            self._tracks[key] = track
            while len(self._tracks) > self.max_tracked_ips:
                self._tracks.popitem(last=False)
        else:
            self._tracks.move_to_end(key)
        return track

    def _sweep(self, now: float) -> None:
        while self._bans:
            key, until = next(iter(self._bans.items()))
            if until > now:
                break
            del self._bans[key]

    def _ban(self, key: str, now: float) -> None:
        self._bans.pop(key, None)
        self._bans[key] = now + self.ban_s
        while len(self._bans) > self.max_tracked_ips:
            self._bans.popitem(last=False)
        track = self._tracks.get(key)
        if track is not None:
            track.failures = track.flaps = None

    def banned_until(self, ip: str, now: float) -> float | None:
        """When the ban on ``ip``'s group ends, or None if it is not banned."""
        self._sweep(now)
        return self._bans.get(address_group(ip))

    def check(self, ip: str, now: float) -> AdmissionDecision:
        """Decide whether a new connection from ``ip`` may proceed (counts it if so)."""
        key = address_group(ip)
        self._sweep(now)
        until = self._bans.get(key)
        if until is not None:
            return AdmissionDecision(False, AdmissionRefusal.BANNED, until)
        if not self._track(key).bucket.try_take(now):
            return AdmissionDecision(False, AdmissionRefusal.RATE_LIMITED)
        return AdmissionDecision(True)

    def _record(self, ip: str, now: float, flaps: bool) -> AdmissionDecision:
        key = address_group(ip)
        self._sweep(now)
        if key in self._bans:
            return AdmissionDecision(False, AdmissionRefusal.BANNED, self._bans[key])
        track = self._track(key)
        if flaps:
            if track.flaps is None:
                track.flaps = deque(maxlen=self.flap_threshold)
            history, window = track.flaps, self.flap_window_s
        else:
            if track.failures is None:
                track.failures = deque(maxlen=self.failure_threshold)
            history, window = track.failures, self.failure_window_s
        history.append(now)
        if len(history) == history.maxlen and now - history[0] <= window:
            self._ban(key, now)
            return AdmissionDecision(False, AdmissionRefusal.BANNED, self._bans[key])
        return AdmissionDecision(True)

    def record_failure(self, ip: str, now: float) -> AdmissionDecision:
        """Count an auth failure or protocol violation; the result says if it banned."""
        return self._record(ip, now, flaps=False)

    def record_flap(self, ip: str, now: float) -> AdmissionDecision:
        """Count a connection that ended soon after it began; may ban like failures."""
        return self._record(ip, now, flaps=True)

"""Per-address admission: connect rate, failure and flap bans, expiry, bounded memory."""

from __future__ import annotations

import pytest

from wellguard.core.gateway import (
    AdmissionControl,
    AdmissionDecision,
    AdmissionRefusal,
    address_group,
)
from wellguard.errors import InvalidInputError

IP = "192.0.2.7"


def test_defaults() -> None:
    control = AdmissionControl()
    assert (control.max_connects_per_ip_per_s, control.burst) == (50.0, 100.0)
    assert (control.failure_threshold, control.failure_window_s, control.ban_s) == (10, 60.0, 300.0)
    assert (control.flap_threshold, control.flap_window_s) == (15, 60.0)
    assert control.max_tracked_ips == 65_536


def test_connect_rate_limit() -> None:
    control = AdmissionControl(max_connects_per_ip_per_s=2, burst=3)
    assert [control.check(IP, 0.0).allowed for _ in range(4)] == [True, True, True, False]
    refused = control.check(IP, 0.0)
    assert refused == AdmissionDecision(False, AdmissionRefusal.RATE_LIMITED, None)
    assert refused.reason == "rate_limited"
    assert control.check(IP, 0.5).allowed
    assert control.check("192.0.2.8", 0.0).allowed  # other addresses are unaffected


def test_failures_ban_then_ban_expires() -> None:
    control = AdmissionControl(failure_threshold=3, failure_window_s=10, ban_s=100)
    assert control.record_failure(IP, 0.0).allowed
    assert control.record_failure(IP, 1.0).allowed
    banned = control.record_failure(IP, 2.0)
    assert banned == AdmissionDecision(False, AdmissionRefusal.BANNED, 102.0)
    assert control.check(IP, 50.0) == AdmissionDecision(False, AdmissionRefusal.BANNED, 102.0)
    assert control.check(IP, 50.0).reason == "banned"
    assert control.banned_until(IP, 101.9) == 102.0
    assert control.check(IP, 102.0).allowed
    assert control.banned == 0
    # The history was cleared by the ban: it takes a full threshold again.
    assert control.record_failure(IP, 103.0).allowed


def test_failures_outside_the_window_do_not_add_up() -> None:
    control = AdmissionControl(failure_threshold=3, failure_window_s=10, ban_s=100)
    for t in (0.0, 6.0, 12.0, 18.0, 24.0):
        assert control.record_failure(IP, t).allowed
    assert not control.record_failure(IP, 26.0).allowed  # 18, 24, 26 within 10 s


def test_flaps_ban_separately() -> None:
    control = AdmissionControl(failure_threshold=2, flap_threshold=3, flap_window_s=60, ban_s=5)
    assert control.record_failure(IP, 0.0).allowed
    assert control.record_flap(IP, 1.0).allowed
    assert control.record_flap(IP, 2.0).allowed
    assert control.record_flap(IP, 3.0).reason is AdmissionRefusal.BANNED
    assert control.record_failure(IP, 4.0).reason is AdmissionRefusal.BANNED  # still banned
    assert control.check(IP, 8.0).allowed


def test_ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_group("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_group("2001:db8:1:2:bbbb::9%eth0") == "2001:db8:1:2::/64"
    assert address_group("::ffff:192.0.2.7") == IP
    assert address_group(IP) == IP
    assert address_group("not an address" * 10) == ("not an address" * 10)[:64]
    control = AdmissionControl(failure_threshold=2)
    control.record_failure("2001:db8:1:2::1", 0.0)
    assert not control.record_failure("2001:db8:1:2::ffff", 1.0).allowed
    assert not control.check("2001:db8:1:2:3:4:5:6", 2.0).allowed
    assert control.check("2001:db8:1:3::1", 2.0).allowed
    control.record_failure("::ffff:192.0.2.7", 0.0)
    assert not control.record_failure(IP, 0.0).allowed


def test_memory_is_bounded_under_address_spraying() -> None:
    control = AdmissionControl(failure_threshold=1, ban_s=1000, max_tracked_ips=100)
    for i in range(10_000):
        control.check(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", float(i) / 1000)
        control.record_failure(f"10.200.{i // 256 % 256}.{i % 256}", float(i) / 1000)
    assert control.tracked <= 100
    assert control.banned <= 100
    # The most recent bans are the ones kept (they expire last).
    assert control.banned_until("10.200.39.15", 10.0) is not None


def test_least_recently_seen_address_is_forgotten_first() -> None:
    control = AdmissionControl(max_connects_per_ip_per_s=1, burst=1, max_tracked_ips=2)
    assert control.check("192.0.2.1", 0.0).allowed
    assert control.check("192.0.2.2", 0.0).allowed
    assert not control.check("192.0.2.1", 0.0).allowed  # refreshes .1
    assert control.check("192.0.2.3", 0.0).allowed  # evicts .2
    assert control.check("192.0.2.2", 0.0).allowed  # .2 starts afresh
    assert not control.check("192.0.2.3", 0.0).allowed


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"max_tracked_ips": 0},
        {"ban_s": 0},
        {"failure_window_s": -1},
        {"max_connects_per_ip_per_s": 0},
        {"burst": 0},
    ],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        AdmissionControl(**kwargs)  # type: ignore[arg-type]

"""Token bucket, per-device throttle and hub throttle with an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellguard.core.gateway import (
    DEFAULT_DEVICE_BURST,
    DEFAULT_DEVICE_RATE,
    DeviceThrottle,
    HubThrottle,
    ThrottleDecision,
    TokenBucket,
)
from wellguard.errors import InvalidInputError


def test_bucket_burst_then_debt() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.0) == pytest.approx(0.2)  # queued behind the previous one
    assert bucket.take(0.3) == 0.0  # the debt of two is repaid and one more token earned


def test_bucket_refills_to_burst_only() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=2)
    bucket.take(0.0, 2)
    assert bucket.wait_time(1000.0, 2) == 0.0
    assert bucket.wait_time(1000.0, 3) == pytest.approx(1.0)


def test_bucket_clock_going_backwards_adds_nothing() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=1)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(1.0)
    assert bucket.wait_time(10.0) == pytest.approx(2.0)


def test_try_take_never_goes_into_debt() -> None:
    bucket = TokenBucket(rate_per_s=2, burst=1)
    assert bucket.try_take(0.0)
    assert not bucket.try_take(0.0)
    assert not bucket.try_take(0.4)
    assert bucket.try_take(0.5)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5), (float("nan"), 1)])
def test_bucket_rejects_bad_parameters(rate: float, burst: float) -> None:
    with pytest.raises(InvalidInputError):
        TokenBucket(rate, burst)


@given(st.lists(st.floats(0, 0.5, allow_nan=False), min_size=1, max_size=300))
def test_released_work_never_exceeds_burst_plus_rate(gaps: list[float]) -> None:
    rate, burst = 10.0, 5.0
    bucket = TokenBucket(rate, burst)
    now = start = 0.0
    for count, gap in enumerate(gaps, start=1):
        now += gap
        release = now + bucket.take(now)
        assert release >= now
        assert count <= burst + rate * (release - start) + 1e-6


def test_device_defaults() -> None:
    throttle = DeviceThrottle()
    assert (DEFAULT_DEVICE_RATE, DEFAULT_DEVICE_BURST) == (100.0, 200.0)
    assert throttle.abuse_seconds == 10.0
    decisions = [throttle.admit(0.0) for _ in range(200)]
    assert set(decisions) == {ThrottleDecision(0.0, disconnect=False)}
    assert throttle.admit(0.0).delay == pytest.approx(0.01)
    assert throttle.over_since == 0.0


def test_device_recovers_when_it_slows_down() -> None:
    throttle = DeviceThrottle(rate_per_s=10, burst=1, abuse_seconds=10)
    assert throttle.admit(0.0) == ThrottleDecision(0.0)
    assert throttle.admit(0.0).delay > 0
    assert throttle.over_since == 0.0
    assert throttle.admit(5.0) == ThrottleDecision(0.0)
    assert throttle.over_since is None


def test_sustained_excess_disconnects_after_abuse_seconds() -> None:
    throttle = DeviceThrottle(rate_per_s=10, burst=10, abuse_seconds=10, max_delay_s=1000)
    now, decision = 0.0, ThrottleDecision(0.0)
    # 20 msg/s against a limit of 10: over the limit from the 11th message on.
    while not decision.disconnect:
        decision = throttle.admit(now)
        now += 0.05
        assert now < 30
    assert throttle.over_since is not None
    assert now - 0.05 - throttle.over_since == pytest.approx(10.0, abs=0.06)


def test_queued_delay_cap_disconnects_immediately() -> None:
    throttle = DeviceThrottle(rate_per_s=10, burst=1, abuse_seconds=100, max_delay_s=0.5)
    delays = [throttle.admit(0.0) for _ in range(6)]
    assert [d.disconnect for d in delays] == [False] * 6
    assert delays[-1].delay == pytest.approx(0.5)
    refused = throttle.admit(0.0)
    assert refused.disconnect
    assert refused.delay == pytest.approx(0.6)


def test_device_throttle_rejects_bad_parameters() -> None:
    with pytest.raises(InvalidInputError):
        DeviceThrottle(abuse_seconds=0)
    with pytest.raises(InvalidInputError):
        HubThrottle(max_delay_s=0)


def test_hub_throttle_sheds_without_taking_tokens() -> None:
    hub = HubThrottle(rate_per_s=100, burst=100, max_delay_s=1.0)
    assert hub.admit(0.0, 100) == ThrottleDecision(0.0)
    assert hub.admit(0.0, 100).delay == pytest.approx(1.0)
    shed = hub.admit(0.0, 1)
    assert shed.disconnect
    assert shed.delay == pytest.approx(1.01)
    # The shed message took nothing: two seconds later the debt is fully repaid.
    assert hub.admit(2.0) == ThrottleDecision(0.0)


def _one_at_a_time(
    device: DeviceThrottle, hub: HubThrottle, now: float, n: int
) -> list[ThrottleDecision]:
    """What the gateway did before reads were decided together: one pair of admits each."""
    decisions = []
    for _ in range(n):
        mine, shared = device.admit(now), hub.admit(now)
        decisions.append(
            ThrottleDecision(max(mine.delay, shared.delay), mine.disconnect or shared.disconnect)
        )
        if decisions[-1].disconnect:
            break
    return decisions


def test_admit_together_within_the_burst_takes_n_tokens_at_once() -> None:
    device = DeviceThrottle(rate_per_s=10, burst=8, abuse_seconds=10)
    hub = HubThrottle(rate_per_s=100, burst=100)
    assert device.admit_together(0.0, 8, hub) == [ThrottleDecision(0.0)] * 8
    assert device.over_since is None
    # Both buckets are now down by 8: the ninth message waits a tenth of a second.
    assert device.admit_together(0.0, 1, hub)[0].delay == pytest.approx(0.1)
    assert hub.admit(0.0, 91) == ThrottleDecision(0.0)
    assert hub.admit(0.0).delay == pytest.approx(0.01)


def test_admit_together_holds_the_messages_past_the_burst_one_by_one() -> None:
    device = DeviceThrottle(rate_per_s=5, burst=10, abuse_seconds=10, max_delay_s=5)
    hub = HubThrottle(rate_per_s=1000, burst=1000)
    decisions = device.admit_together(0.0, 20, hub)
    assert [d.delay for d in decisions[:10]] == [0.0] * 10
    assert [d.delay for d in decisions[10:]] == pytest.approx([0.2 * k for k in range(1, 11)])
    assert not any(d.disconnect for d in decisions)
    assert device.over_since == 0.0


def test_admit_together_stops_at_the_first_disconnect() -> None:
    device = DeviceThrottle(rate_per_s=10, burst=1, abuse_seconds=100, max_delay_s=0.5)
    hub = HubThrottle(rate_per_s=1000, burst=1000)
    decisions = device.admit_together(0.0, 60, hub)
    assert len(decisions) == 7
    assert [d.disconnect for d in decisions] == [False] * 6 + [True]
    assert decisions[-1].delay == pytest.approx(0.6)


def test_admit_together_sheds_when_the_hub_backlog_is_full() -> None:
    device = DeviceThrottle(rate_per_s=1000, burst=1000)
    hub = HubThrottle(rate_per_s=10, burst=2, max_delay_s=0.2)
    decisions = device.admit_together(0.0, 10, hub)
    assert [d.delay for d in decisions] == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])
    assert [d.disconnect for d in decisions] == [False] * 4 + [True]


@given(
    st.lists(
        st.tuples(st.floats(0, 0.3, allow_nan=False), st.integers(1, 40)),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from([(5.0, 10.0), (10.0, 1.0), (100.0, 200.0)]),
    st.sampled_from([(50.0, 60.0), (1000.0, 1000.0)]),
    st.floats(0.5, 20),
)
def test_admit_together_decides_as_one_admit_at_a_time(
    reads: list[tuple[float, int]],
    device_limits: tuple[float, float],
    hub_limits: tuple[float, float],
    abuse_seconds: float,
) -> None:
    def throttles() -> tuple[DeviceThrottle, HubThrottle]:
        rate, burst = device_limits
        device = DeviceThrottle(rate, burst, abuse_seconds=abuse_seconds, max_delay_s=2.0)
        return device, HubThrottle(*hub_limits, max_delay_s=1.0)

    together, one_by_one = throttles(), throttles()
    now = 0.0
    for gap, n in reads:
        now += gap
        expected = _one_at_a_time(*one_by_one, now, n)
        got = together[0].admit_together(now, n, together[1])
        assert [d.disconnect for d in got] == [d.disconnect for d in expected]
        assert [d.delay for d in got] == pytest.approx([d.delay for d in expected], abs=1e-9)
        assert together[0].over_since == one_by_one[0].over_since
        # The buckets agree too: the next single message is decided alike.
        assert together[0]._bucket.wait_time(now) == pytest.approx(
            one_by_one[0]._bucket.wait_time(now), abs=1e-9
        )
        assert together[1]._bucket.wait_time(now) == pytest.approx(
            one_by_one[1]._bucket.wait_time(now), abs=1e-9
        )

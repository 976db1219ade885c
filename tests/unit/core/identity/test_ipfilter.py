"""IP filter: ordered rules, first match wins, IPv4/IPv6 and mapped addresses."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellguard.core.identity import (
    IpFilterAction,
    IpFilterDecision,
    IpFilterRule,
    evaluate_ip_filter,
)
from wellguard.errors import InvalidInputError

ACCEPT, REJECT = IpFilterAction.ACCEPT, IpFilterAction.REJECT

RULES = [
    IpFilterRule("block-bad-host", "10.1.2.3", REJECT),
    IpFilterRule("office", "10.1.0.0/16", ACCEPT),
    IpFilterRule("v6-lab", "2001:db8:1::/48", ACCEPT),
    IpFilterRule("v6-block", "2001:db8::/32", REJECT),
    IpFilterRule("mapped-form", "::ffff:192.168.7.0/120", ACCEPT),
]


@pytest.mark.parametrize(
    ("address", "accepted", "rule"),
    [
        ("10.1.2.3", False, "block-bad-host"),  # first match wins over "office"
        ("10.1.9.9", True, "office"),
        ("10.2.0.1", False, None),  # default
        ("::ffff:10.1.2.3", False, "block-bad-host"),  # mapped address is the IPv4 one
        ("::FFFF:10.1.200.1", True, "office"),
        ("[::ffff:10.1.0.1]", True, "office"),
        ("192.168.7.42", True, "mapped-form"),  # mapped rule is the IPv4 network
        ("::ffff:192.168.7.42", True, "mapped-form"),
        ("2001:db8:1::5", True, "v6-lab"),
        ("2001:db8:2::5", False, "v6-block"),
        ("[2001:db8:1::5]", True, "v6-lab"),
        ("2001:DB8:1:0::5", True, "v6-lab"),
        ("fe80::1%eth0", False, None),
        ("::1", False, None),
        (" 10.1.0.1 ", True, "office"),
    ],
)
def test_evaluate(address: str, accepted: bool, rule: str | None) -> None:
    assert evaluate_ip_filter(RULES, address, REJECT) == IpFilterDecision(accepted, rule)


def test_default_action_applies_when_nothing_matches() -> None:
    assert evaluate_ip_filter(RULES, "8.8.8.8", ACCEPT) == IpFilterDecision(True, None)
    assert evaluate_ip_filter([], "8.8.8.8", REJECT) == IpFilterDecision(False, None)
    assert evaluate_ip_filter([], "::1", IpFilterAction("accept")) == IpFilterDecision(True, None)


def test_order_decides() -> None:
    everything = IpFilterRule("all", "0.0.0.0/0", ACCEPT)
    nothing = IpFilterRule("none", "0.0.0.0/0", REJECT)
    assert evaluate_ip_filter([everything, nothing], "1.2.3.4", REJECT).accepted
    assert not evaluate_ip_filter([nothing, everything], "1.2.3.4", ACCEPT).accepted
    # IPv4 rules never match IPv6 peers and vice versa.
    assert evaluate_ip_filter([nothing], "2001:db8::1", ACCEPT) == IpFilterDecision(True, None)
    v6_all = IpFilterRule("v6", "::/0", REJECT)
    assert evaluate_ip_filter([v6_all], "1.2.3.4", ACCEPT) == IpFilterDecision(True, None)


@pytest.mark.parametrize(
    "address", ["", "not an ip", "1.2.3", "1.2.3.4:80", "256.1.1.1", "1.2.3.4/32", "[1.2.3.4"]
)
def test_unparseable_addresses_are_rejected(address: str) -> None:
    everything = IpFilterRule("all", "0.0.0.0/0", ACCEPT)
    assert evaluate_ip_filter([everything], address, ACCEPT) == IpFilterDecision(False, None)


def test_non_text_address_is_rejected() -> None:
    decision = evaluate_ip_filter([], None, ACCEPT)  # type: ignore[arg-type]
    assert decision == IpFilterDecision(False, None)


def test_rule_action_is_coerced_from_text() -> None:
    rule = IpFilterRule("r", "1.2.3.0/24", "reject")  # type: ignore[arg-type]
    assert rule.action is REJECT
    assert rule == IpFilterRule("r", "1.2.3.0/24", REJECT)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (("", "1.2.3.0/24", ACCEPT), "filterName"),
        (("x" * 129, "1.2.3.0/24", ACCEPT), "filterName"),
        (("r", "1.2.3.0/24", "allow"), "action"),
        (("r", "1.2.3.4/24", ACCEPT), "ipMask"),  # host bits set: say what you mean
        (("r", "1.2.3.0/33", ACCEPT), "ipMask"),
        (("r", "banana", ACCEPT), "ipMask"),
        (("r", "", ACCEPT), "ipMask"),
        (("r", None, ACCEPT), "ipMask"),
        (("r", "2001:db8::/129", ACCEPT), "ipMask"),
    ],
)
def test_rule_validation(arguments: tuple[object, ...], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        IpFilterRule(*arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


@given(st.ip_addresses(v=4), st.integers(0, 32))
def test_ipv4_and_its_mapped_form_decide_alike(address: IPv4Address, prefix: int) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    rules = [IpFilterRule("n", str(network), ACCEPT)]
    plain = evaluate_ip_filter(rules, str(address), REJECT)
    mapped = evaluate_ip_filter(rules, f"::ffff:{address}", REJECT)
    assert plain == mapped == IpFilterDecision(True, "n")


@given(
    st.lists(
        st.tuples(st.sampled_from(["0.0.0.0/0", "::/0"]), st.sampled_from(IpFilterAction)),
        max_size=6,
    ),
    st.ip_addresses(),
    st.sampled_from(IpFilterAction),
)
def test_first_rule_of_the_address_family_decides(
    rules: list[tuple[str, IpFilterAction]],
    address: IPv4Address | IPv6Address,
    default: IpFilterAction,
) -> None:
    mapped = address.ipv4_mapped if isinstance(address, IPv6Address) else None
    family = "0.0.0.0/0" if address.version == 4 or mapped is not None else "::/0"
    expected = IpFilterDecision(default is ACCEPT, None)
    for index, (network, action) in enumerate(rules):
        if network == family:
            expected = IpFilterDecision(action is ACCEPT, f"r{index}")
            break
    built = [IpFilterRule(f"r{i}", network, action) for i, (network, action) in enumerate(rules)]
    assert evaluate_ip_filter(built, str(address), default) == expected

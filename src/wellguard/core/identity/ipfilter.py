"""IP filter rules, evaluated the way IoT Hub's IP filter is: in order, first match wins.

Theory of operation
-------------------
A rule names a network (IPv4 or IPv6 CIDR, or a single address) and an action. The
gateway asks ``evaluate_ip_filter`` when it accepts a TCP connection and the API
middleware asks it per request; both pass the peer address as text, exactly as the
socket reported it. Rules are tried in list order and the first whose network holds the
address decides; when none does, the configured default applies.

Dual-stack sockets report IPv4 peers as IPv4-mapped IPv6 (``::ffff:192.0.2.7``); such an
address is treated as the IPv4 address it maps, and a rule written in mapped form is
treated as the IPv4 network it maps, so one rule covers both listeners. An address that
cannot be parsed is rejected with no rule named: a filter must fail closed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from wellguard.errors import InvalidInputError

__all__ = ["IpFilterAction", "IpFilterDecision", "IpFilterRule", "evaluate_ip_filter"]

_MAX_NAME_LENGTH = 128
_MAPPED_V4 = ipaddress.IPv6Network("::ffff:0:0/96")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpFilterAction(StrEnum):
    """What a matching rule does with the connection."""

    ACCEPT = "accept"
    REJECT = "reject"


def _unmap_network(network: _Network) -> _Network:
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED_V4):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _unmap_address(address: _Address) -> _Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class IpFilterRule:
    """One named rule: a network in CIDR form and the action for addresses inside it."""

    name: str
    cidr: str
    action: IpFilterAction
    network: _Network = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= _MAX_NAME_LENGTH:
            raise InvalidInputError(
                f"rule name must be 1-{_MAX_NAME_LENGTH} characters", field="filterName"
            )
        try:
            action = IpFilterAction(self.action)
        except ValueError:
            raise InvalidInputError("action must be 'accept' or 'reject'", field="action") from None
        if not isinstance(self.cidr, str):
            raise InvalidInputError("ipMask must be text", field="ipMask")
        try:
            network = ipaddress.ip_network(self.cidr.strip(), strict=True)
        except ValueError as error:
            raise InvalidInputError(
                f"ipMask {self.cidr[:64]!r} is not an IPv4 or IPv6 network: {error}",
                field="ipMask",
            ) from None
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "network", _unmap_network(network))


@dataclass(frozen=True)
class IpFilterDecision:
    """Whether the address may connect, and the name of the rule that decided (if any)."""

    accepted: bool
    rule: str | None


def _parse_address(text: str) -> _Address | None:
    if not isinstance(text, str):
        return None
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        return _unmap_address(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def evaluate_ip_filter(
    rules: Sequence[IpFilterRule], address: str, default: IpFilterAction
) -> IpFilterDecision:
    """Decide for ``address``: the first rule whose network holds it, else ``default``."""
    parsed = _parse_address(address)
    if parsed is None:
        return IpFilterDecision(accepted=False, rule=None)
    for rule in rules:
        network = rule.network
        if network.version == parsed.version and parsed in network:
            return IpFilterDecision(accepted=rule.action is IpFilterAction.ACCEPT, rule=rule.name)
    return IpFilterDecision(accepted=IpFilterAction(default) is IpFilterAction.ACCEPT, rule=None)

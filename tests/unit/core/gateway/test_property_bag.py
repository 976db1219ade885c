"""The url-encoded property bag: mapping, reserved keys, limits, and the round trip."""

from __future__ import annotations

import contextlib
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellguard.core.gateway import (
    MAX_APP_PROPERTIES,
    MAX_BAG_BYTES,
    MAX_PROPERTY_KEY_CHARS,
    MAX_PROPERTY_VALUE_CHARS,
    encode_property_bag,
    parse_property_bag,
)
from wellguard.errors import InvalidInputError
from wellguard.model.message import SystemProperty as S


def test_empty() -> None:
    assert parse_property_bag("") == ({}, {})
    assert encode_property_bag({}, {}) == ""


def test_every_short_name() -> None:
    bag = (
        "%24.mid=m&%24.cid=c&%24.uid=u&%24.to=t&%24.ct=application%2Fjson&%24.ce=utf-8"
        "&%24.exp=e&%24.ctime=ct&%24.ifid=i&%24.schema=sc&%24.sub=comp&k=v"
    )
    system, app = parse_property_bag(bag)
    assert system == {
        S.MESSAGE_ID: "m",
        S.CORRELATION_ID: "c",
        S.USER_ID: "u",
        S.TO: "t",
        S.CONTENT_TYPE: "application/json",
        S.CONTENT_ENCODING: "utf-8",
        S.EXPIRY_TIME: "e",
        S.CREATION_TIME: "ct",
        S.INTERFACE_ID: "i",
        S.DATA_SCHEMA: "sc",
        S.COMPONENT_NAME: "comp",
    }
    assert app == {"k": "v"}
    # Keys are plain str (serializers such as orjson refuse str subclasses as keys).
    assert all(type(key) is str for key in system)


def test_unencoded_dollar_names_and_creation_time_alias() -> None:
    system, app = parse_property_bag("$.mid=1&iothub-creation-time-utc=2024-01-01T00:00:00Z")
    assert system == {S.MESSAGE_ID: "1", S.CREATION_TIME: "2024-01-01T00:00:00Z"}
    assert app == {}


def test_reserved_and_unknown_keys_are_dropped() -> None:
    bag = "%24.on=out&%24.ifname=x&%24foo=1&iothub-connection-device-id=evil&iothub-ack=full&a=1"
    assert parse_property_bag(bag) == ({}, {"a": "1"})


def test_plus_is_not_a_space_and_missing_equals_is_empty() -> None:
    assert parse_property_bag("a+b=1+1&flag&c=") == ({}, {"a+b": "1+1", "flag": "", "c": ""})


def test_empty_entries_are_skipped_and_slashes_tolerated() -> None:
    assert parse_property_bag("&a=1&&b=x/y&") == ({}, {"a": "1", "b": "x/y"})


@pytest.mark.parametrize(
    "bag",
    [
        "a=1&a=2",
        "%24.ctime=1&iothub-creation-time-utc=2",
        "=v",
        "a=%FF",
        "%C3=1",
        "a=%00",
        "%00=1",
        "k" * (MAX_PROPERTY_KEY_CHARS + 1) + "=1",
        "k=" + "v" * (MAX_PROPERTY_VALUE_CHARS + 1),
        "&".join(f"k{i}=v" for i in range(MAX_APP_PROPERTIES + 1)),
        "&".join(f"k{i}=" + "v" * 1000 for i in range(9)),
    ],
)
def test_refused_bags(bag: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_property_bag(bag)


def test_limits_are_inclusive() -> None:
    bag = "&".join(f"k{i}=v" for i in range(MAX_APP_PROPERTIES))
    assert len(parse_property_bag(bag)[1]) == MAX_APP_PROPERTIES
    key, value = "k" * MAX_PROPERTY_KEY_CHARS, "v" * MAX_PROPERTY_VALUE_CHARS
    assert parse_property_bag(f"{key}={value}") == ({}, {key: value})
    big = "a=" + "v" * (MAX_BAG_BYTES - 2)
    with pytest.raises(InvalidInputError):  # value too long, but not the bag
        parse_property_bag(big)
    with pytest.raises(InvalidInputError):  # the bag is measured in UTF-8 bytes
        parse_property_bag("a=" + "ü" * (MAX_BAG_BYTES // 2))


def test_encode_order_and_escaping() -> None:
    bag = encode_property_bag(
        {S.CONTENT_TYPE: "application/json", S.MESSAGE_ID: "a b", S.TO: "/d"},
        {"z": "1", "a&=": "x y+ü"},
    )
    assert bag == ("%24.mid=a%20b&%24.to=%2Fd&%24.ct=application%2Fjson&a%26%3D=x%20y%2B%C3%BC&z=1")


@pytest.mark.parametrize(
    ("system", "app"),
    [
        ({"bogus": "1"}, {}),
        ({}, {"": "1"}),
        ({}, {"$.mid": "1"}),
        ({}, {"iothub-creation-time-utc": "1"}),
        ({}, {"k": "\x00"}),
        ({}, {"k": "\ud800"}),
        ({S.MESSAGE_ID: "v" * (MAX_PROPERTY_VALUE_CHARS + 1)}, {}),
        ({}, {f"k{i}": "" for i in range(MAX_APP_PROPERTIES + 1)}),
        ({}, {f"k{i}": "€" * 300 for i in range(10)}),
    ],
)
def test_encode_refusals(system: dict[str, str], app: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError):
        encode_property_bag(system, app)


_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")
_KEYS = st.text(_TEXT, min_size=1, max_size=MAX_PROPERTY_KEY_CHARS).filter(
    lambda key: not key.startswith(("$", "iothub-"))
)
_VALUES = st.text(_TEXT, max_size=200)


@given(
    st.dictionaries(st.sampled_from(list(S)), _VALUES, max_size=5),
    st.dictionaries(_KEYS, _VALUES, max_size=MAX_APP_PROPERTIES),
)
def test_round_trip(system: dict[str, str], app: dict[str, str]) -> None:
    # An upper bound on the encoded size: "%24.schema" is the longest system key.
    encoded = [quote(k, safe="") + "=" + quote(v, safe="") for k, v in app.items()]
    encoded += ["%24.schema=" + quote(v, safe="") for v in system.values()]
    if sum(map(len, encoded)) + len(encoded) > MAX_BAG_BYTES:
        # Possibly too big once encoded; the only refusal allowed is for the size.
        with contextlib.suppress(InvalidInputError):
            encode_property_bag(system, app)
        return
    bag = encode_property_bag(system, app)
    assert len(bag) <= MAX_BAG_BYTES
    assert bag.isascii()
    assert "/" not in bag  # the SDK splits C2D topics on '/'
    assert parse_property_bag(bag) == (system, app)


@given(st.text(max_size=400))
def test_arbitrary_bags_parse_or_are_refused(text: str) -> None:
    try:
        system, app = parse_property_bag(text)
    except InvalidInputError:
        return
    assert len(app) <= MAX_APP_PROPERTIES
    assert set(system) <= {str(p) for p in S}

"""Property tests: round trips for valid packets, only ``ProtocolError`` for anything else."""

from __future__ import annotations

import contextlib
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from wellguard.core.mqtt import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketDecoder,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ServerConnection,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
    encode,
    topic_matches,
    validate_topic_filter,
)
from wellguard.errors import ProtocolError

_text_char = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_level = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#/"), max_size=8)
topic_names = st.lists(_level, min_size=1, max_size=5).map("/".join).filter(bool)
topic_filters = st.builds(
    lambda levels, tail: "/".join([*levels, *tail]) or "#",
    st.lists(st.one_of(_level, st.just("+")), max_size=5),
    st.lists(st.just("#"), max_size=1),
).filter(bool)
strings = st.text(_text_char, max_size=30)
packet_ids = st.integers(1, 0xFFFF)
qos = st.integers(0, 2)
payloads = st.binary(max_size=300)


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    level = draw(qos)
    return Publish(
        draw(topic_names),
        draw(payloads),
        level,
        draw(st.booleans()),
        draw(st.booleans()) if level else False,
        draw(packet_ids) if level else None,
    )


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    username = draw(st.none() | strings)
    clean = draw(st.booleans())
    client_id = draw(strings)
    return Connect(
        client_id if client_id or clean else "c",
        clean,
        draw(st.integers(0, 0xFFFF)),
        username,
        draw(st.none() | st.binary(max_size=40)) if username is not None else None,
        draw(st.none() | st.builds(Will, topic_names, payloads, qos, st.booleans())),
    )


client_packets: st.SearchStrategy[Packet] = st.one_of(
    connects(),
    publishes(),
    st.builds(PubAck, packet_ids),
    st.builds(PubRec, packet_ids),
    st.builds(PubRel, packet_ids),
    st.builds(PubComp, packet_ids),
    st.builds(
        Subscribe, packet_ids, st.lists(st.tuples(topic_filters, qos), min_size=1).map(tuple)
    ),
    st.builds(Unsubscribe, packet_ids, st.lists(topic_filters, min_size=1).map(tuple)),
    st.just(PingReq()),
    st.just(Disconnect()),
)
server_packets: st.SearchStrategy[Packet] = st.one_of(
    st.builds(ConnAck, st.just(False), st.integers(0, 5)),
    st.just(ConnAck(True, 0)),
    publishes(),
    st.builds(PubAck, packet_ids),
    st.builds(PubRel, packet_ids),
    st.builds(
        SubAck, packet_ids, st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1).map(tuple)
    ),
    st.builds(UnsubAck, packet_ids),
    st.just(PingResp()),
)


def _feed_in_pieces(decoder: PacketDecoder, data: bytes, cuts: list[int]) -> list[Packet]:
    packets: list[Packet] = []
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        packets += decoder.feed(data[start:cut])
        start = max(start, cut)
    return packets + decoder.feed(data[start:])


@given(st.lists(client_packets, max_size=8), st.lists(st.integers(0, 10_000), max_size=6))
def test_client_packets_round_trip(packets: list[Packet], cuts: list[int]) -> None:
    data = b"".join(map(encode, packets))
    decoder = PacketDecoder(1 << 20, server_side=True)
    assert _feed_in_pieces(decoder, data, cuts) == packets
    assert decoder.buffered == 0


@given(st.lists(server_packets, max_size=8), st.lists(st.integers(0, 10_000), max_size=6))
def test_server_packets_round_trip(packets: list[Packet], cuts: list[int]) -> None:
    data = b"".join(map(encode, packets))
    assert _feed_in_pieces(PacketDecoder(1 << 20, server_side=False), data, cuts) == packets


@given(st.binary(max_size=400), st.booleans(), st.lists(st.integers(0, 500), max_size=5))
def test_arbitrary_bytes_raise_only_protocol_error(
    data: bytes, server_side: bool, cuts: list[int]
) -> None:
    decoder = PacketDecoder(256, server_side=server_side)
    with contextlib.suppress(ProtocolError):
        _feed_in_pieces(decoder, data, cuts)


@settings(max_examples=300)
@given(
    st.lists(client_packets, min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_corrupted_valid_streams_raise_only_protocol_error(
    packets: list[Packet], flips: list[tuple[int, int]]
) -> None:
    data = bytearray(b"".join(map(encode, packets)))
    for index, value in flips:
        data[index % len(data)] = value
    with contextlib.suppress(ProtocolError):
        PacketDecoder(1 << 16, server_side=True).feed(bytes(data))


@given(
    st.sampled_from([b"", encode(Connect("well-01", keep_alive=30))]),
    st.binary(max_size=300),
    st.lists(st.integers(0, 400), max_size=4),
)
def test_server_connection_raises_only_protocol_error(
    prefix: bytes, data: bytes, cuts: list[int]
) -> None:
    conn = ServerConnection(now=0.0, max_packet_size=256)
    stream = prefix + data
    start = 0
    try:
        for now, cut in enumerate(sorted(c % (len(stream) + 1) for c in cuts)):
            for event in conn.receive_data(stream[start:cut], float(now)):
                if isinstance(event, Connect):
                    conn.accept()
                elif isinstance(event, Publish) and event.packet_id is not None:
                    conn.puback(event.packet_id)
            start = max(start, cut)
        conn.receive_data(stream[start:], 99.0)
    except ProtocolError:
        pass
    conn.data_to_send()


def _reference_match(topic_filter: str, name: str) -> bool:
    """Spec 4.7 as a regular expression, to check ``topic_matches`` against."""
    if name.startswith("$") and topic_filter[0] in "+#":
        return False
    levels = topic_filter.split("/")
    multi = levels[-1] == "#"
    if multi:
        levels.pop()
    pattern = "/".join("[^/]*" if level == "+" else re.escape(level) for level in levels)
    if multi:
        pattern = pattern + "(/.*)?" if levels else ".*"
    return re.fullmatch(pattern, name, re.DOTALL) is not None


@given(topic_filters, topic_names, st.booleans())
def test_topic_matches_agrees_with_reference(topic_filter: str, name: str, derive: bool) -> None:
    validate_topic_filter(topic_filter)
    if derive:
        # Make matches likely: fill the filter's wildcards with parts of the random name.
        levels = [name if level == "+" else level for level in topic_filter.split("/")]
        name = "/".join(level.replace("/", "") for level in levels if level != "#") or name
    assert topic_matches(topic_filter, name) is _reference_match(topic_filter, name)
    assert topic_matches(name, name)

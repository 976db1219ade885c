"""MQTT 3.1.1 in Azure IoT Hub's device dialect, sans-IO: packets, codec, server session.

``PacketDecoder`` and ``encode`` turn bytes into packets and back; ``ServerConnection``
is the per-connection state machine the gateway drives; ``topics`` holds the topic name
and filter rules. Nothing here does IO or reads a clock: callers pass ``now``.
"""

from wellguard.core.mqtt.codec import MAX_REMAINING_LENGTH, PacketDecoder, encode
from wellguard.core.mqtt.packets import (
    ConnAck,
    ConnAckCode,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    SubAckCode,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
)
from wellguard.core.mqtt.session import ConnectionState, Event, InFlight, ServerConnection
from wellguard.core.mqtt.topics import topic_matches, validate_topic_filter, validate_topic_name

__all__ = [
    "MAX_REMAINING_LENGTH",
    "ConnAck",
    "ConnAckCode",
    "Connect",
    "ConnectionState",
    "Disconnect",
    "Event",
    "InFlight",
    "Packet",
    "PacketDecoder",
    "PacketType",
    "PingReq",
    "PingResp",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "ServerConnection",
    "SubAck",
    "SubAckCode",
    "Subscribe",
    "UnsubAck",
    "Unsubscribe",
    "Will",
    "encode",
    "topic_matches",
    "validate_topic_filter",
    "validate_topic_name",
]

"""SQL tables of the hub's device-facing state: C2D queue and feedback, IP filter rules,
per-device counters. Same ``metadata`` as the registry tables."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from wellguard.adapters.sql.schema import ID, UtcDateTime, metadata

__all__ = [
    "c2d_feedback",
    "c2d_messages",
    "device_counters",
    "ip_filter_rules",
    "mqtt_sessions",
    "telemetry",
]

_SEQ = BigInteger().with_variant(Integer, "sqlite")

c2d_messages = Table(
    "c2d_messages",
    metadata,
    Column("id", _SEQ, primary_key=True, autoincrement=True),
    Column("device_id", String(ID), nullable=False),
    Column("message_id", String(128), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("system", JSON, nullable=False),
    Column("app", JSON, nullable=False),
    Column("enqueued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("ack", String(16), nullable=False),
    Column("delivery_count", Integer, nullable=False, default=0),
    Index("ix_c2d_messages_device", "device_id", "id"),
)

c2d_feedback = Table(
    "c2d_feedback",
    metadata,
    Column("id", _SEQ, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("device_id", String(ID), nullable=False),
    Column("message_id", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("description", Text, nullable=False),
)

ip_filter_rules = Table(
    "ip_filter_rules",
    metadata,
    Column("position", Integer, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("cidr", String(64), nullable=False),
    Column("action", String(16), nullable=False),
)

device_counters = Table(
    "device_counters",
    metadata,
    Column("device_id", String(300), primary_key=True),
    Column("bucket_start", UtcDateTime(), primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
    Index("ix_device_counters_bucket", "bucket_start"),
)

# The built-in telemetry endpoint (IoT Hub's "events"): seq is the journal's, so
# at-least-once delivery from the routing worker cannot store a message twice.
telemetry = Table(
    "telemetry",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("device_id", String(ID), nullable=False),
    Column("module_id", String(ID), nullable=False),
    Column("enqueued_at", UtcDateTime(), nullable=False),
    Column("message_id", String(128)),
    Column("system", JSON, nullable=False),
    Column("app", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Index("ix_telemetry_device_time", "device_id", "enqueued_at", "seq"),
    Index("ix_telemetry_device_seq", "device_id", "seq"),
)

# MQTT sessions of clean_session=False clients: their subscriptions outlive connections
# and hub restarts (the Azure device SDK never resubscribes on reconnect).
mqtt_sessions = Table(
    "mqtt_sessions",
    metadata,
    Column("identity", String(300), primary_key=True),
    Column("subscriptions", JSON, nullable=False),
    Column("updated", UtcDateTime(), nullable=False),
)

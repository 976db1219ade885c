"""SQL schema of the registry (SQLAlchemy Core; portable between SQLite and PostgreSQL).

Timestamps are stored as naive UTC and come back timezone-aware (``UtcDateTime``).
Secrets (symmetric keys) are stored sealed by ``SecretBox``; the column names say so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

__all__ = [
    "audit_log",
    "certificates",
    "configurations",
    "devices",
    "metadata",
    "modules",
    "policies",
    "security_events",
    "twins",
]


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC without zone (SQLite has none) and returns aware datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 128

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(ID), primary_key=True),
    Column("generation_id", String(64), nullable=False),
    Column("etag", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", String(512)),
    Column("status_updated", UtcDateTime(), nullable=False),
    Column("auth_type", String(32), nullable=False),
    Column("primary_key_sealed", Text),
    Column("secondary_key_sealed", Text),
    Column("primary_thumbprint", String(64)),
    Column("secondary_thumbprint", String(64)),
    Column("connection_state", String(16), nullable=False),
    Column("connection_state_updated", UtcDateTime()),
    Column("last_activity", UtcDateTime()),
    Column("c2d_count", Integer, nullable=False, default=0),
    Column("iot_edge", Boolean, nullable=False, default=False),
    Column("lifecycle", String(16), nullable=False),
    Column("created", UtcDateTime(), nullable=False),
    Column("updated", UtcDateTime(), nullable=False),
)

modules = Table(
    "modules",
    metadata,
    Column("device_id", String(ID), primary_key=True),
    Column("module_id", String(ID), primary_key=True),
    Column("generation_id", String(64), nullable=False),
    Column("etag", String(64), nullable=False),
    Column("auth_type", String(32), nullable=False),
    Column("primary_key_sealed", Text),
    Column("secondary_key_sealed", Text),
    Column("primary_thumbprint", String(64)),
    Column("secondary_thumbprint", String(64)),
    Column("managed_by", String(ID)),
    Column("connection_state", String(16), nullable=False),
    Column("connection_state_updated", UtcDateTime()),
    Column("last_activity", UtcDateTime()),
    Column("c2d_count", Integer, nullable=False, default=0),
    Column("created", UtcDateTime(), nullable=False),
    Column("updated", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(["device_id"], ["devices.device_id"], ondelete="CASCADE"),
)

# module_id is '' for the device twin so that the primary key has no NULL in it.
twins = Table(
    "twins",
    metadata,
    Column("device_id", String(ID), primary_key=True),
    Column("module_id", String(ID), primary_key=True),
    Column("etag", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("desired", JSON, nullable=False),
    Column("desired_version", BigInteger, nullable=False),
    Column("reported", JSON, nullable=False),
    Column("reported_version", BigInteger, nullable=False),
    ForeignKeyConstraint(["device_id"], ["devices.device_id"], ondelete="CASCADE"),
)

policies = Table(
    "policies",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("rights", String(128), nullable=False),
    Column("primary_key_sealed", Text, nullable=False),
    Column("secondary_key_sealed", Text, nullable=False),
)

certificates = Table(
    "certificates",
    metadata,
    Column("serial", String(48), primary_key=True),  # decimal text: 159-bit serials overflow BIGINT
    Column("device_id", String(ID), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("sha256_thumbprint", String(64), nullable=False),
    Column("pem", Text, nullable=False),
    Column("revoked_at", UtcDateTime()),
    Column("revocation_reason", String(32)),
    Index("ix_certificates_device", "device_id"),
)

configurations = Table(
    "configurations",
    metadata,
    Column("configuration_id", String(ID), primary_key=True),
    Column("etag", String(64), nullable=False),
    Column("schema_version", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("content", JSON, nullable=False),
    Column("target_condition", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("created", UtcDateTime(), nullable=False),
    Column("updated", UtcDateTime(), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=False),
    Column("source", String(128), nullable=False),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Hub security events: refused connections, failed authentications, denied operations.
security_events = Table(
    "security_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UtcDateTime(), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("identity", String(300)),
    Column("source", String(128), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_security_events_at", "at"),
    Index("ix_security_events_identity", "identity"),
)


# -- message routing (wellguard.adapters.routing) ------------------------------------------

routing_endpoints = Table(
    "routing_endpoints",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("url", String(2048)),
    # {header: {"sealed": token}} under the master key, or {header: {"value": text}}
    Column("headers", JSON, nullable=False),
    Column("path", String(512)),
    Column("allow_http", Boolean, nullable=False, default=False),
    Column("updated", UtcDateTime(), nullable=False),
)

routing_routes = Table(
    "routing_routes",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("condition", Text, nullable=False),
    Column("endpoints", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("updated", UtcDateTime(), nullable=False),
)

routing_settings = Table(
    "routing_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
)

# Batches an endpoint refused or could not take after its retries: one row per message.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UtcDateTime(), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("message", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Index("ix_dead_letters_endpoint", "endpoint", "id"),
)

# ASC security messages, keyed by their ingest-journal sequence number (idempotent).
security_inbox = Table(
    "security_inbox",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("device_id", String(ID), nullable=False),
    Column("module_id", String(ID)),
    Column("enqueued_at", UtcDateTime(), nullable=False),
    Column("system_properties", JSON, nullable=False),
    Column("app_properties", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
)

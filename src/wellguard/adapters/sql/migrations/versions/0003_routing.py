"""message routing: endpoints, routes, settings, dead letters, security inbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

import wellguard.adapters.sql.schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _routing_endpoints() -> None:
    op.create_table(
        "routing_endpoints",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=True),
        sa.Column("allow_http", sa.Boolean(), nullable=False),
        sa.Column("updated", wellguard.adapters.sql.schema.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_routing_endpoints")),
    )


def _routing_routes() -> None:
    op.create_table(
        "routing_routes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated", wellguard.adapters.sql.schema.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_routing_routes")),
    )


def _routing_settings() -> None:
    op.create_table(
        "routing_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_routing_settings")),
    )


def _dead_letters() -> None:
    op.create_table(
        "dead_letters",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", wellguard.adapters.sql.schema.UtcDateTime(), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index("ix_dead_letters_endpoint", ["endpoint", "id"], unique=False)


def _security_inbox() -> None:
    op.create_table(
        "security_inbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("module_id", sa.String(length=128), nullable=True),
        sa.Column("enqueued_at", wellguard.adapters.sql.schema.UtcDateTime(), nullable=False),
        sa.Column("system_properties", sa.JSON(), nullable=False),
        sa.Column("app_properties", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_security_inbox")),
    )


_TABLES: dict[str, Callable[[], None]] = {
    "routing_endpoints": _routing_endpoints,
    "routing_routes": _routing_routes,
    "routing_settings": _routing_settings,
    "dead_letters": _dead_letters,
    "security_inbox": _security_inbox,
}


def upgrade() -> None:
    for create in _TABLES.values():
        create()


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_dead_letters_endpoint")
    for name in reversed(list(_TABLES)):
        op.drop_table(name)

"""Alembic environment: runs on the connection that ``wellguard.adapters.sql.engine`` hands in."""

from __future__ import annotations

from alembic import context

import wellguard.adapters.sql.schema_hub  # noqa: F401  (registers its tables)
from wellguard.adapters.sql.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through wellguard.adapters.sql.engine.migrate")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

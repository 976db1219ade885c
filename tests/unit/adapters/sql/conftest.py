"""SQL store fixtures: every test runs on SQLite (a file) and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.postgres import PostgresServer, find_postgres_binaries, start_postgres
from tests.support.requirements import require
from wellguard.adapters.sql.engine import open_engine, sqlite_url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session."""
    binaries = find_postgres_binaries()
    require(binaries is not None, "PostgreSQL", "apt-get install postgresql")
    assert binaries is not None
    server = start_postgres(binaries)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> str:
    """The database the SQL tests share; each test starts from an empty schema."""
    return postgres_server.create_database()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database (not migrated), from ``open_engine``."""
    if request.param == "sqlite":
        sqlite_engine = open_engine(sqlite_url(tmp_path / "registry.db"))
        yield sqlite_engine
        sqlite_engine.dispose()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database: str = request.getfixturevalue("postgres_database")
    server.reset_schema(database)
    pg_engine = open_engine(server.url(database))
    yield pg_engine
    pg_engine.dispose()

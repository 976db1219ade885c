"""Registry service fixtures: a registry on an SQLite file, a clock the test moves, a CA."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.core.registry.fakes import START, FakeClock
from wellguard.adapters.sql.engine import migrate, open_engine, sqlite_url
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.core.pki import CertificateAuthority, create_issuing_ca, create_root_ca
from wellguard.core.registry import Registry
from wellguard.core.secretbox import SecretBox


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlRegistryStore]:
    engine = open_engine(sqlite_url(tmp_path / "registry.db"))
    migrate(engine)
    yield SqlRegistryStore(engine, SecretBox(bytes(range(32))))
    engine.dispose()


@pytest.fixture
def registry(store: SqlRegistryStore, clock: FakeClock) -> Registry:
    return Registry(store, clock)


@pytest.fixture(scope="session")
def issuing_ca() -> CertificateAuthority:
    root = create_root_ca("Registry Test Root CA", now=START - timedelta(days=1))
    return create_issuing_ca(root, "Registry Test Issuing CA", now=START - timedelta(days=1))

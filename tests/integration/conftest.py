"""Integration fixtures: a real hub over real TLS on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hubproc import HubProcess, start_hub


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub for the session (tests use their own device ids)."""
    data = tmp_path_factory.mktemp("hub") / "data"
    process = start_hub(data)
    yield process
    process.stop()


@pytest.fixture
def fresh_hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub of the test's own, for tests that stop it or tamper with its files."""
    process = start_hub(tmp_path / "data")
    yield process
    process.stop()

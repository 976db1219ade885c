"""An authenticator over a real registry on an SQLite file, counting what it reads."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy.engine import Engine

from tests.unit.core.registry.fakes import START, FakeClock
from wellguard.adapters.sql.engine import migrate, open_engine, sqlite_url
from wellguard.adapters.sql.registry_store import SqlRegistryStore
from wellguard.apps.gateway.auth import AuthenticatedDevice, DeviceAuthenticator
from wellguard.apps.gateway.authcache import AuthRecordCache
from wellguard.core.gateway import ClaimedIdentity
from wellguard.core.registry import Registry
from wellguard.core.secretbox import SecretBox
from wellguard.model.device import Device, Module
from wellguard.model.policy import SharedAccessPolicy

HUB = "hub.test"
TTL = 30.0


class CountingStore(SqlRegistryStore):
    """The SQL store, counting the reads authentication makes."""

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        super().__init__(engine, box)
        self.reads = {"get_device": 0, "get_module": 0, "list_policies": 0}

    def get_device(self, device_id: str) -> Device | None:
        self.reads["get_device"] += 1
        return super().get_device(device_id)

    def get_devices(self, device_ids: Collection[str]) -> dict[str, Device]:
        self.reads["get_device"] += 1  # one read, however many ids
        return super().get_devices(device_ids)

    def get_module(self, device_id: str, module_id: str) -> Module | None:
        self.reads["get_module"] += 1
        return super().get_module(device_id, module_id)

    def list_policies(self) -> list[SharedAccessPolicy]:
        self.reads["list_policies"] += 1
        return super().list_policies()


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    engine = open_engine(sqlite_url(tmp_path / "registry.db"))
    migrate(engine)
    yield CountingStore(engine, SecretBox(bytes(range(32))))
    engine.dispose()


@pytest.fixture
def registry(store: CountingStore, clock: FakeClock) -> Registry:
    return Registry(store, clock)


@pytest.fixture
def cache(ticker: Ticker) -> AuthRecordCache:
    return AuthRecordCache(ttl_seconds=TTL, max_entries=1000, clock=ticker)


class GatewayPath(DeviceAuthenticator):
    """``authenticate`` as the gateway does it: held records on the event loop, else a
    batched ``prefetch`` and the held records again."""

    def authenticate(
        self,
        claimed: ClaimedIdentity,
        password: bytes | None,
        chain: Sequence[x509.Certificate],
    ) -> AuthenticatedDevice:
        auth = self.try_authenticate(claimed, password, chain)
        if auth is None:
            self.prefetch([claimed])
            auth = self.try_authenticate(claimed, password, chain)
        assert auth is not None, "prefetch left a record out"
        return auth


@pytest.fixture(params=["authenticate", "gateway-path"])
def authenticator(
    request: pytest.FixtureRequest, registry: Registry, clock: FakeClock, cache: AuthRecordCache
) -> DeviceAuthenticator:
    kind = DeviceAuthenticator if request.param == "authenticate" else GatewayPath
    return kind(
        registry,
        trusted_cas=[],
        revoked_serials=set,
        hub_hosts=[HUB],
        clock=clock,
        max_ttl_seconds=86_400,
        clock_skew_seconds=300,
        cache=cache,
    )

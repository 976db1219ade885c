"""The authentication record cache: races with invalidation, expiry, the size bound."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection

import pytest

from tests.unit.apps.gateway.conftest import Ticker
from tests.unit.core.registry.fakes import START
from wellguard.apps.gateway.authcache import AuthRecordCache
from wellguard.model.device import (
    Authentication,
    AuthType,
    ConnectionState,
    Device,
    DeviceStatus,
    LifecycleState,
    Module,
)
from wellguard.model.policy import AccessRights, SharedAccessPolicy

KEY = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="
POLICY = SharedAccessPolicy("device", AccessRights.DEVICE_CONNECT, KEY, KEY)


def device(device_id: str, status: DeviceStatus = DeviceStatus.ENABLED) -> Device:
    return Device(
        device_id=device_id,
        generation_id="1",
        etag="e",
        status=status,
        status_reason=None,
        status_updated=START,
        authentication=Authentication(type=AuthType.SAS, primary_key=KEY, secondary_key=KEY),
        connection_state=ConnectionState.DISCONNECTED,
        connection_state_updated=None,
        last_activity=None,
        c2d_count=0,
        iot_edge=False,
        lifecycle=LifecycleState.PROVISIONED,
        created=START,
        updated=START,
    )


def module(device_id: str, module_id: str) -> Module:
    return Module(
        device_id=device_id,
        module_id=module_id,
        generation_id="1",
        etag="e",
        authentication=Authentication(type=AuthType.SAS, primary_key=KEY, secondary_key=KEY),
        managed_by=None,
        connection_state=ConnectionState.DISCONNECTED,
        connection_state_updated=None,
        last_activity=None,
        c2d_count=0,
        created=START,
        updated=START,
    )


class Loader:
    """A store stand-in: answers from a dict and counts the calls."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.modules: dict[tuple[str, str], Module] = {}
        self.calls = 0
        self.during: Callable[[], None] | None = None  # runs inside the next load

    def device(self, device_id: str) -> Device | None:
        self._call()
        return self.devices.get(device_id)

    def module(self, device_id: str, module_id: str) -> Module | None:
        self._call()
        return self.modules.get((device_id, module_id))

    def many(self, device_ids: Collection[str]) -> dict[str, Device]:
        self._call()
        return {i: self.devices[i] for i in device_ids if i in self.devices}

    def _call(self) -> None:
        self.calls += 1
        during, self.during = self.during, None
        if during is not None:
            during()


@pytest.fixture
def cache(ticker: Ticker) -> AuthRecordCache:
    return AuthRecordCache(ttl_seconds=30, max_entries=10, clock=ticker)


def test_hits_do_not_load(cache: AuthRecordCache) -> None:
    loader = Loader()
    loader.devices["d"] = device("d")
    for _ in range(3):
        assert cache.device("d", loader.device) == loader.devices["d"]
        assert cache.device("nobody", loader.device) is None
    assert loader.calls == 2


def test_an_invalidation_during_a_load_keeps_the_loaded_record_out(
    cache: AuthRecordCache,
) -> None:
    # The reader fetched the record before the change committed; the change was announced
    # before the reader stored it. Storing it then would keep the old record alive.
    loader = Loader()
    loader.devices["d"] = device("d")
    loader.during = lambda: cache.forget_device("d")
    assert cache.device("d", loader.device) is not None
    cache.device("d", loader.device)
    assert loader.calls == 2
    cache.device("d", loader.device)
    assert loader.calls == 2  # the load after the change was kept


def test_an_invalidation_of_another_device_does_not_void_a_load(
    cache: AuthRecordCache,
) -> None:
    loader = Loader()
    loader.during = lambda: cache.forget_device("other")
    cache.device("d", loader.device)
    cache.device("d", loader.device)
    assert loader.calls == 1


def test_clear_during_a_load_keeps_the_loaded_record_out(cache: AuthRecordCache) -> None:
    loader = Loader()
    loader.during = cache.clear
    cache.device("d", loader.device)
    cache.device("d", loader.device)
    assert loader.calls == 2


def test_an_invalidation_during_a_module_load_keeps_it_out(cache: AuthRecordCache) -> None:
    loader = Loader()
    loader.devices["d"] = device("d")
    loader.modules["d", "m"] = module("d", "m")
    cache.device("d", loader.device)
    loader.during = lambda: cache.forget_device("d")
    cache.module("d", "m", loader.module)
    cache.device("d", loader.device)
    cache.module("d", "m", loader.module)
    cache.module("d", "m", loader.module)
    assert loader.calls == 4


def test_a_policy_change_during_a_load_keeps_the_loaded_policies_out(
    cache: AuthRecordCache,
) -> None:
    calls = []

    def load() -> list[SharedAccessPolicy]:
        calls.append(1)
        if len(calls) == 1:
            cache.forget_policies()
        return [SharedAccessPolicy("device", AccessRights.DEVICE_CONNECT, KEY, KEY)]

    assert set(cache.policies(load)) == {"device"}
    cache.policies(load)
    cache.policies(load)
    assert len(calls) == 2


def test_a_failed_load_stores_nothing_and_leaves_no_trace(cache: AuthRecordCache) -> None:
    def broken(device_id: str) -> Device | None:
        raise OSError("database gone")

    with pytest.raises(OSError, match="database gone"):
        cache.device("d", broken)
    loader = Loader()
    loader.devices["d"] = device("d")
    cache.device("d", loader.device)
    cache.device("d", loader.device)
    assert loader.calls == 1


def test_forgetting_a_device_forgets_its_modules(cache: AuthRecordCache) -> None:
    loader = Loader()
    loader.devices["d"] = device("d")
    loader.modules["d", "m"] = module("d", "m")
    cache.device("d", loader.device)
    cache.module("d", "m", loader.module)
    cache.module("d", "ghost", loader.module)
    assert len(cache) == 3
    cache.forget_device("d")
    assert len(cache) == 0
    cache.device("d", loader.device)
    cache.module("d", "m", loader.module)
    assert loader.calls == 5


def test_modules_of_an_unknown_or_unheld_device_are_not_held(cache: AuthRecordCache) -> None:
    loader = Loader()
    loader.modules["d", "m"] = module("d", "m")
    cache.device("d", loader.device)  # no such device
    cache.module("d", "m", loader.module)
    cache.module("x", "m", loader.module)  # device never looked up
    assert len(cache) == 1


def test_a_record_under_another_id_is_not_held(cache: AuthRecordCache) -> None:
    loader = Loader()
    loader.devices["D"] = device("d")  # a store that matched case-insensitively
    assert cache.device("D", loader.device) == device("d")
    cache.device("D", loader.device)
    assert loader.calls == 2


def test_fresh_reads_load_and_refresh(cache: AuthRecordCache) -> None:
    loader = Loader()
    loader.devices["d"] = device("d")
    cache.device("d", loader.device)
    loader.devices["d"] = device("d", DeviceStatus.DISABLED)
    assert cache.device("d", loader.device, fresh=True) == loader.devices["d"]
    assert cache.device("d", loader.device) == loader.devices["d"]
    assert loader.calls == 2


def test_entries_expire_from_when_their_read_began(ticker: Ticker) -> None:
    cache = AuthRecordCache(ttl_seconds=30, clock=ticker)
    loader = Loader()

    def slow() -> None:
        ticker.now += 10

    loader.during = slow
    cache.device("d", loader.device)
    ticker.now += 19
    cache.device("d", loader.device)
    assert loader.calls == 1
    ticker.now += 1
    cache.device("d", loader.device)
    assert loader.calls == 2


def test_eviction_takes_the_oldest_devices_with_their_modules(ticker: Ticker) -> None:
    cache = AuthRecordCache(ttl_seconds=30, max_entries=4, clock=ticker)
    loader = Loader()
    for name in ("a", "b", "c"):
        loader.devices[name] = device(name)
    cache.device("a", loader.device)
    cache.module("a", "m1", loader.module)
    cache.device("b", loader.device)
    cache.module("b", "m1", loader.module)
    assert len(cache) == 4
    cache.device("c", loader.device)
    assert len(cache) == 3  # "a" and its module went
    calls = loader.calls
    cache.device("b", loader.device)
    cache.module("b", "m1", loader.module)
    assert loader.calls == calls
    cache.device("a", loader.device)
    assert loader.calls == calls + 1


def test_concurrent_loads_and_invalidations_keep_the_count_and_bound(ticker: Ticker) -> None:
    cache = AuthRecordCache(ttl_seconds=30, max_entries=50, clock=ticker)
    loader = Loader()
    ids = [f"d{n}" for n in range(200)]
    for device_id in ids:
        loader.devices[device_id] = device(device_id)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for n in range(2000):
                device_id = ids[(n * 7 + seed * 13) % len(ids)]
                if n % 5 == 0:
                    cache.forget_device(device_id)
                cache.device(device_id, loader.device)
                cache.module(device_id, f"m{n % 3}", loader.module)
                assert len(cache) <= 50
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for device_id in ids:
        cache.forget_device(device_id)
    assert len(cache) == 0


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (-1, 10), (30, 0)])
def test_bounds_must_be_positive(ttl: float, size: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        AuthRecordCache(ttl_seconds=ttl, max_entries=size)


def test_the_default_clock_is_monotonic() -> None:
    cache = AuthRecordCache()
    loader = Loader()
    cache.device("d", loader.device)
    cache.device("d", loader.device)
    assert loader.calls == 1


# -- many at once, and peeks ------------------------------------------------------------------


def test_load_devices_holds_found_and_missing_ids_in_one_load(cache: AuthRecordCache) -> None:
    loader = Loader()
    loader.devices["a"] = device("a")
    loader.devices["b"] = device("b")
    assert cache.peek_device("a") == (False, None)
    cache.load_devices(["a", "b", "ghost", "a"], loader.many)
    assert loader.calls == 1
    assert cache.peek_device("a") == (True, loader.devices["a"])
    assert cache.peek_device("ghost") == (True, None)  # "no such device" is held too
    assert cache.device("b", loader.device) == loader.devices["b"]
    assert loader.calls == 1
    cache.load_devices([], loader.many)
    assert loader.calls == 1


def test_an_invalidation_during_load_devices_keeps_only_that_device_out(
    cache: AuthRecordCache,
) -> None:
    loader = Loader()
    loader.devices["a"] = device("a")
    loader.devices["b"] = device("b")
    loader.during = lambda: cache.forget_device("a")
    cache.load_devices(["a", "b"], loader.many)
    assert cache.peek_device("a") == (False, None)
    assert cache.peek_device("b")[0]


def test_clear_during_load_devices_keeps_everything_out(cache: AuthRecordCache) -> None:
    loader = Loader()
    loader.devices["a"] = device("a")
    loader.during = cache.clear
    cache.load_devices(["a", "b"], loader.many)
    assert cache.peek_device("a") == (False, None)
    assert cache.peek_device("b") == (False, None)


def test_a_failed_load_devices_stores_nothing_and_leaves_no_trace(cache: AuthRecordCache) -> None:
    def broken(device_ids: Collection[str]) -> dict[str, Device]:
        raise OSError("database gone")

    with pytest.raises(OSError, match="database gone"):
        cache.load_devices(["a", "b"], broken)
    assert len(cache) == 0
    loader = Loader()
    loader.devices["a"] = device("a")
    cache.load_devices(["a"], loader.many)  # no load left registered in flight
    assert cache.peek_device("a")[0]


def test_peeks_never_load_and_respect_expiry(ticker: Ticker) -> None:
    cache = AuthRecordCache(ttl_seconds=30, max_entries=10, clock=ticker)
    loader = Loader()
    loader.devices["d"] = device("d")
    loader.modules["d", "m"] = module("d", "m")
    assert cache.peek_policies() is None
    assert cache.peek_module("d", "m") == (False, None)
    cache.device("d", loader.device)
    cache.module("d", "m", loader.module)
    cache.policies(lambda: [POLICY])
    assert cache.peek_module("d", "m") == (True, loader.modules["d", "m"])
    assert cache.peek_module("d", "other") == (False, None)
    assert set(cache.peek_policies() or {}) == {POLICY.name}
    ticker.now += 31
    assert cache.peek_device("d") == (False, None)
    assert cache.peek_module("d", "m") == (False, None)
    assert cache.peek_policies() is None
    assert loader.calls == 2

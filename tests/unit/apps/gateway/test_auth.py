"""Device authentication reads the registry once, and sees every change at the next connect."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.unit.apps.gateway.conftest import HUB, TTL, CountingStore, Ticker
from tests.unit.core.registry.fakes import ADMIN, START, FakeClock
from wellguard.apps.gateway.auth import AuthenticatedDevice, DeviceAuthenticator
from wellguard.apps.gateway.authcache import AuthRecordCache
from wellguard.core.gateway import ClaimedIdentity
from wellguard.core.identity.sas import generate_sas_token
from wellguard.core.identity.x509 import certificate_thumbprints
from wellguard.core.pki import create_self_signed_device_certificate
from wellguard.core.registry import AuthSpec, Registry
from wellguard.core.registry.events import ChangeKind, RegistryChange
from wellguard.errors import AuthError, AuthFailureReason
from wellguard.model.device import AuthType, DeviceStatus, LifecycleState

EXPIRY = int((START + timedelta(hours=1)).timestamp())


def claim(authenticator: DeviceAuthenticator, client_id: str) -> ClaimedIdentity:
    return authenticator.claim(client_id, f"{HUB}/{client_id}/?api-version=2021-04-12")


def token(client_id: str, key: str, key_name: str | None = None) -> bytes:
    device, _, module = client_id.partition("/")
    resource = f"{HUB}/devices/{device}" + (f"/modules/{module}" if module else "")
    return generate_sas_token(resource, key, EXPIRY, key_name).encode()


def connect(authenticator: DeviceAuthenticator, client_id: str, key: str) -> AuthenticatedDevice:
    return authenticator.authenticate(claim(authenticator, client_id), token(client_id, key), ())


def refusal(authenticator: DeviceAuthenticator, client_id: str, key: str) -> AuthFailureReason:
    with pytest.raises(AuthError) as info:
        connect(authenticator, client_id, key)
    return info.value.reason


def sas_device(registry: Registry, device_id: str = "well-01") -> str:
    device = registry.create_device(device_id, AuthSpec(AuthType.SAS), actor=ADMIN)
    assert device.authentication.primary_key is not None
    return device.authentication.primary_key


def sas_module(registry: Registry, device_id: str = "well-01", module_id: str = "pump") -> str:
    module = registry.create_module(device_id, module_id, AuthSpec(AuthType.SAS), actor=ADMIN)
    assert module.authentication.primary_key is not None
    return module.authentication.primary_key


def other_process(store: CountingStore, clock: FakeClock) -> Registry:
    """A registry on the same database whose notices this authenticator never hears."""
    return Registry(store, clock)


# -- reads ----------------------------------------------------------------------------------


def test_repeated_connects_read_the_registry_once(
    registry: Registry, store: CountingStore, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    for _ in range(5):
        connect(authenticator, "well-01", key)
    assert store.reads == {"get_device": 1, "get_module": 0, "list_policies": 1}


def test_repeated_module_connects_read_the_registry_once(
    registry: Registry, store: CountingStore, authenticator: DeviceAuthenticator
) -> None:
    sas_device(registry)
    key = sas_module(registry)
    for _ in range(5):
        connect(authenticator, "well-01/pump", key)
    assert store.reads == {"get_device": 1, "get_module": 1, "list_policies": 1}


def test_a_refusal_from_the_cache_has_the_same_reason_as_from_the_store(
    registry: Registry, store: CountingStore, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    registry.create_device(
        "well-02", AuthSpec(AuthType.SAS), actor=ADMIN, status=DeviceStatus.DISABLED
    )
    registry.create_device("well-03", AuthSpec(AuthType.CERTIFICATE_AUTHORITY), actor=ADMIN)
    cases = {
        ("nobody", key): AuthFailureReason.UNKNOWN_DEVICE,
        ("well-01/ghost", key): AuthFailureReason.UNKNOWN_DEVICE,
        ("well-01", sas_device(registry, "well-04")): AuthFailureReason.BAD_SIGNATURE,
        ("well-02", key): AuthFailureReason.DISABLED_DEVICE,
        ("well-03", key): AuthFailureReason.WRONG_AUTH_TYPE,
    }
    for (client_id, presented), reason in cases.items():
        assert refusal(authenticator, client_id, presented) is reason
        reads = dict(store.reads)
        assert refusal(authenticator, client_id, presented) is reason
        assert store.reads == reads, client_id  # the second answer came from the cache


def test_an_unknown_policy_refusal_is_the_same_from_the_cache(
    registry: Registry, store: CountingStore, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    presented = token("well-01", key, key_name="nosuchpolicy")
    for _ in range(2):
        with pytest.raises(AuthError) as info:
            authenticator.authenticate(claim(authenticator, "well-01"), presented, ())
        assert info.value.reason is AuthFailureReason.UNKNOWN_POLICY
    assert store.reads["list_policies"] == 1


# -- changes announced by the registry ------------------------------------------------------


def test_disabling_a_device_is_seen_by_the_next_connect(
    registry: Registry, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    connect(authenticator, "well-01", key)
    registry.set_status("well-01", DeviceStatus.DISABLED, "stolen", actor=ADMIN)
    assert refusal(authenticator, "well-01", key) is AuthFailureReason.DISABLED_DEVICE
    registry.set_status("well-01", DeviceStatus.ENABLED, None, actor=ADMIN)
    connect(authenticator, "well-01", key)


def test_rotated_keys_are_seen_by_the_next_connect(
    registry: Registry, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    connect(authenticator, "well-01", key)
    registry.rotate_keys("well-01", actor=ADMIN)
    connect(authenticator, "well-01", key)  # the old primary is the secondary now
    newest = registry.rotate_keys("well-01", actor=ADMIN).authentication.primary_key
    assert newest is not None
    assert refusal(authenticator, "well-01", key) is AuthFailureReason.BAD_SIGNATURE
    connect(authenticator, "well-01", newest)


def test_updated_keys_are_seen_by_the_next_connect(
    registry: Registry, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    connect(authenticator, "well-01", key)
    registry.update_device(
        "well-01",
        AuthSpec(AuthType.SELF_SIGNED, primary_thumbprint="AB" * 20),
        actor=ADMIN,
        expected_etag=None,
        status=DeviceStatus.ENABLED,
        status_reason=None,
        iot_edge=False,
    )
    assert refusal(authenticator, "well-01", key) is AuthFailureReason.WRONG_AUTH_TYPE


def test_deleting_a_device_is_seen_by_the_next_connect(
    registry: Registry, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    module_key = sas_module(registry)
    connect(authenticator, "well-01", key)
    connect(authenticator, "well-01/pump", module_key)
    registry.delete_device("well-01", actor=ADMIN, expected_etag=None)
    assert refusal(authenticator, "well-01", key) is AuthFailureReason.UNKNOWN_DEVICE
    assert refusal(authenticator, "well-01/pump", module_key) is AuthFailureReason.UNKNOWN_DEVICE


def test_decommissioning_is_seen_by_the_next_connect_of_the_device_and_its_modules(
    registry: Registry, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    module_key = sas_module(registry)
    connect(authenticator, "well-01", key)
    connect(authenticator, "well-01/pump", module_key)
    registry.set_lifecycle("well-01", LifecycleState.DECOMMISSIONED, "scrapped", actor=ADMIN)
    assert refusal(authenticator, "well-01", key) is AuthFailureReason.DISABLED_DEVICE
    assert refusal(authenticator, "well-01/pump", module_key) is AuthFailureReason.DISABLED_DEVICE


def test_module_changes_are_seen_by_the_next_connect(
    registry: Registry, authenticator: DeviceAuthenticator
) -> None:
    sas_device(registry)
    key = sas_module(registry)
    connect(authenticator, "well-01/pump", key)
    new_key = sas_device(registry, "spare-1")
    registry.update_module(
        "well-01",
        "pump",
        AuthSpec(AuthType.SAS, primary_key=new_key),
        actor=ADMIN,
        expected_etag=None,
        managed_by=None,
    )
    assert refusal(authenticator, "well-01/pump", key) is AuthFailureReason.BAD_SIGNATURE
    connect(authenticator, "well-01/pump", new_key)
    registry.delete_module("well-01", "pump", actor=ADMIN, expected_etag=None)
    assert refusal(authenticator, "well-01/pump", key) is AuthFailureReason.UNKNOWN_DEVICE


def test_a_device_created_after_an_unknown_device_refusal_connects_at_once(
    registry: Registry, store: CountingStore, authenticator: DeviceAuthenticator
) -> None:
    stranger = sas_device(registry, "spare-1")
    for _ in range(3):
        assert refusal(authenticator, "well-01", stranger) is AuthFailureReason.UNKNOWN_DEVICE
    assert store.reads["get_device"] == 1  # "no such device" is cached...
    key = sas_device(registry)
    connect(authenticator, "well-01", key)  # ...and forgotten when the device is created


def test_a_module_created_after_an_unknown_module_refusal_connects_at_once(
    registry: Registry, store: CountingStore, authenticator: DeviceAuthenticator
) -> None:
    device_key = sas_device(registry)
    for _ in range(3):
        reason = refusal(authenticator, "well-01/pump", device_key)
        assert reason is AuthFailureReason.UNKNOWN_DEVICE
    assert store.reads["get_module"] == 1
    key = sas_module(registry)
    connect(authenticator, "well-01/pump", key)


def test_a_new_policy_is_seen_by_the_next_connect(
    registry: Registry, authenticator: DeviceAuthenticator
) -> None:
    sas_device(registry)
    claimed = claim(authenticator, "well-01")
    with pytest.raises(AuthError) as info:
        authenticator.authenticate(claimed, token("well-01", sas_device(registry, "x")), ())
    assert info.value.reason is AuthFailureReason.BAD_SIGNATURE  # policies are now cached
    policies = {p.name: p for p in registry.ensure_default_policies(actor=ADMIN)}
    presented = token("well-01", policies["device"].primary_key, key_name="device")
    authenticator.authenticate(claimed, presented, ())


def test_a_notice_from_elsewhere_is_applied_through_on_change(
    registry: Registry, store: CountingStore, clock: FakeClock, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    connect(authenticator, "well-01", key)
    other_process(store, clock).set_status("well-01", DeviceStatus.DISABLED, None, actor=ADMIN)
    connect(authenticator, "well-01", key)  # not told yet: the cached record still says yes
    authenticator.on_change(RegistryChange(ChangeKind.IDENTITY, device_id="well-01"))
    assert refusal(authenticator, "well-01", key) is AuthFailureReason.DISABLED_DEVICE


def test_a_policy_notice_drops_the_policies(
    registry: Registry, store: CountingStore, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    connect(authenticator, "well-01", key)
    authenticator.on_change(RegistryChange(ChangeKind.POLICY))
    connect(authenticator, "well-01", key)
    assert store.reads["list_policies"] == 2
    assert store.reads["get_device"] == 1


def test_other_notices_keep_the_cache(
    registry: Registry, store: CountingStore, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    connect(authenticator, "well-01", key)
    for kind in (ChangeKind.DESIRED, ChangeKind.C2D_QUEUED, ChangeKind.IP_FILTER):
        authenticator.on_change(RegistryChange(kind, device_id="well-01"))
    connect(authenticator, "well-01", key)
    assert store.reads == {"get_device": 1, "get_module": 0, "list_policies": 1}


def test_an_identity_notice_without_a_device_drops_everything(
    registry: Registry, store: CountingStore, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    connect(authenticator, "well-01", key)
    authenticator.on_change(RegistryChange(ChangeKind.IDENTITY))
    connect(authenticator, "well-01", key)
    assert store.reads == {"get_device": 2, "get_module": 0, "list_policies": 2}


def test_x509_thumbprint_changes_are_seen_by_the_next_connect(
    registry: Registry, authenticator: DeviceAuthenticator
) -> None:
    cert, _key = create_self_signed_device_certificate("well-01", now=START - timedelta(days=1))
    other, _ = create_self_signed_device_certificate("well-01", now=START - timedelta(days=1))
    spec = AuthSpec(AuthType.SELF_SIGNED, primary_thumbprint=certificate_thumbprints(cert)[0])
    registry.create_device("well-01", spec, actor=ADMIN)
    claimed = claim(authenticator, "well-01")
    authenticator.authenticate(claimed, None, (cert,))
    registry.update_device(
        "well-01",
        replace(spec, primary_thumbprint=certificate_thumbprints(other)[0]),
        actor=ADMIN,
        expected_etag=None,
        status=DeviceStatus.ENABLED,
        status_reason=None,
        iot_edge=False,
    )
    with pytest.raises(AuthError) as info:
        authenticator.authenticate(claimed, None, (cert,))
    assert info.value.reason is AuthFailureReason.THUMBPRINT_MISMATCH
    authenticator.authenticate(claimed, None, (other,))


# -- expiry, size, live re-checks -----------------------------------------------------------


def test_records_are_read_again_after_the_ttl(
    registry: Registry,
    store: CountingStore,
    clock: FakeClock,
    ticker: Ticker,
    authenticator: DeviceAuthenticator,
) -> None:
    key = sas_device(registry)
    connect(authenticator, "well-01", key)
    ticker.now += TTL - 1
    connect(authenticator, "well-01", key)
    assert store.reads == {"get_device": 1, "get_module": 0, "list_policies": 1}
    # A change this process never hears of holds only until the entry expires.
    other_process(store, clock).set_status("well-01", DeviceStatus.DISABLED, None, actor=ADMIN)
    before = dict(store.reads)
    ticker.now += 1
    assert refusal(authenticator, "well-01", key) is AuthFailureReason.DISABLED_DEVICE
    assert store.reads["get_device"] == before["get_device"] + 1
    assert store.reads["list_policies"] == before["list_policies"] + 1


def test_the_cache_holds_at_most_max_entries(
    registry: Registry, store: CountingStore, clock: FakeClock, ticker: Ticker
) -> None:
    cache = AuthRecordCache(ttl_seconds=TTL, max_entries=3, clock=ticker)
    authenticator = DeviceAuthenticator(
        registry,
        trusted_cas=[],
        revoked_serials=set,
        hub_hosts=[HUB],
        clock=clock,
        max_ttl_seconds=86_400,
        clock_skew_seconds=300,
        cache=cache,
    )
    keys = {f"well-{n}": sas_device(registry, f"well-{n}") for n in range(5)}
    for device_id, key in keys.items():
        connect(authenticator, device_id, key)
        assert len(cache) <= 3
    assert store.reads["get_device"] == 5
    connect(authenticator, "well-4", keys["well-4"])  # among the newest: held
    assert store.reads["get_device"] == 5
    connect(authenticator, "well-0", keys["well-0"])  # the oldest went first
    assert store.reads["get_device"] == 6
    assert len(cache) == 3


def test_recheck_reads_the_store_not_the_cache(
    registry: Registry, store: CountingStore, clock: FakeClock, authenticator: DeviceAuthenticator
) -> None:
    key = sas_device(registry)
    auth = connect(authenticator, "well-01", key)
    other_process(store, clock).set_status("well-01", DeviceStatus.DISABLED, None, actor=ADMIN)
    with pytest.raises(AuthError) as info:
        authenticator.recheck(auth)
    assert info.value.reason is AuthFailureReason.DISABLED_DEVICE
    # What the re-check read replaced the cached record.
    assert refusal(authenticator, "well-01", key) is AuthFailureReason.DISABLED_DEVICE


def test_recheck_of_a_module_reads_its_records_afresh(
    registry: Registry, store: CountingStore, clock: FakeClock, authenticator: DeviceAuthenticator
) -> None:
    sas_device(registry)
    key = sas_module(registry)
    auth = connect(authenticator, "well-01/pump", key)
    other_process(store, clock).delete_module("well-01", "pump", actor=ADMIN, expected_etag=None)
    with pytest.raises(AuthError) as info:
        authenticator.recheck(auth)
    assert info.value.reason is AuthFailureReason.UNKNOWN_DEVICE

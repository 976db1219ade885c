"""The registry service: IoT Hub's rules for identities, twins and configurations."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509

from tests.unit.core.registry.fakes import ADMIN, START, FakeClock
from wellguard.core.pki import (
    CertificateAuthority,
    RevocationReason,
    certificate_from_pem,
    certificates_from_pem,
    create_device_key_and_csr,
    crl_revoked_serials,
)
from wellguard.core.registry import AuthSpec, Registry
from wellguard.core.registry.certificates import DeviceCertificates
from wellguard.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
)
from wellguard.model.configuration import Configuration
from wellguard.model.device import AuthType, DeviceStatus, LifecycleState

SAS = AuthSpec(AuthType.SAS)
KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(100, 132))).decode()
THUMBPRINT = "ab:cd:" + "0123456789abcdef" * 2 + "0123"  # 40 hex digits, SHA-1


def actions(registry: Registry) -> list[str]:
    return [entry.record.action for entry in registry.store.iter_audit()]


def settings(registry: Registry, device_id: str, auth: AuthSpec, **changes: Any) -> Any:
    """update_device with the device's current settings, apart from ``changes``."""
    current = registry.get_device(device_id)
    arguments: dict[str, Any] = {
        "actor": ADMIN,
        "expected_etag": current.etag,
        "status": current.status,
        "status_reason": current.status_reason,
        "iot_edge": current.iot_edge,
        **changes,
    }
    return registry.update_device(device_id, auth, **arguments)


# -- identities -----------------------------------------------------------------------


def test_sas_devices_get_distinct_hub_generated_32_byte_keys(registry: Registry) -> None:
    first = registry.create_device("well-01", SAS, actor=ADMIN)
    second = registry.create_device("well-02", SAS, actor=ADMIN)

    keys = [
        key
        for device in (first, second)
        for key in (device.authentication.primary_key, device.authentication.secondary_key)
    ]
    assert all(key is not None and len(base64.b64decode(key, validate=True)) == 32 for key in keys)
    assert len(set(keys)) == 4
    assert registry.get_device("well-01") == first
    assert first.created == first.updated == first.status_updated == START
    assert first.lifecycle is LifecycleState.PROVISIONED
    assert registry.get_twin("well-01")[0].version == 1


def test_explicit_keys_are_kept(registry: Registry) -> None:
    device = registry.create_device(
        "well-01", AuthSpec(AuthType.SAS, primary_key=KEY_A, secondary_key=KEY_B), actor=ADMIN
    )

    assert (device.authentication.primary_key, device.authentication.secondary_key) == (
        KEY_A,
        KEY_B,
    )


@pytest.mark.parametrize(
    ("primary", "secondary", "field"),
    [
        ("not base64!", None, "primaryKey"),
        (KEY_A, base64.b64encode(b"8 bytes!").decode(), "secondaryKey"),
        (KEY_A[:-1], None, "primaryKey"),
        (base64.b64encode(bytes(65)).decode(), None, "primaryKey"),
    ],
    ids=["not-base64", "too-short", "bad-padding", "too-long"],
)
def test_explicit_keys_must_be_base64_of_16_to_64_bytes(
    registry: Registry, primary: str, secondary: str | None, field: str
) -> None:
    spec = AuthSpec(AuthType.SAS, primary_key=primary, secondary_key=secondary)

    with pytest.raises(InvalidInputError) as caught:
        registry.create_device("well-01", spec, actor=ADMIN)

    assert caught.value.field == field
    with pytest.raises(NotFoundError):
        registry.get_device("well-01")
    assert actions(registry) == []


def test_self_signed_devices_need_a_thumbprint_stored_normalised(registry: Registry) -> None:
    with pytest.raises(InvalidInputError):
        registry.create_device("well-01", AuthSpec(AuthType.SELF_SIGNED), actor=ADMIN)
    with pytest.raises(InvalidInputError):
        registry.create_device(
            "well-01", AuthSpec(AuthType.SELF_SIGNED, primary_thumbprint="abc"), actor=ADMIN
        )

    device = registry.create_device(
        "well-01", AuthSpec(AuthType.SELF_SIGNED, primary_thumbprint=THUMBPRINT), actor=ADMIN
    )

    expected = THUMBPRINT.replace(":", "").upper()
    assert device.authentication.primary_thumbprint == expected
    assert registry.get_device("well-01").authentication.primary_thumbprint == expected
    assert device.authentication.primary_key is None


def test_device_ids_are_validated_and_unique(registry: Registry) -> None:
    with pytest.raises(InvalidInputError):
        registry.create_device("well/01", SAS, actor=ADMIN)
    registry.create_device("well-01", SAS, actor=ADMIN)
    with pytest.raises(AlreadyExistsError):
        registry.create_device("well-01", SAS, actor=ADMIN)
    assert actions(registry) == ["device.create"]


def test_update_without_keys_keeps_the_current_ones(registry: Registry, clock: FakeClock) -> None:
    created = registry.create_device("well-01", SAS, actor=ADMIN)
    clock.advance(60)

    kept = settings(registry, "well-01", SAS, iot_edge=True)
    new_primary = settings(registry, "well-01", AuthSpec(AuthType.SAS, primary_key=KEY_A))

    assert kept.authentication == created.authentication
    assert kept.iot_edge is True
    assert kept.etag != created.etag
    assert kept.updated == START + timedelta(seconds=60)
    assert new_primary.authentication.primary_key == KEY_A
    assert new_primary.authentication.secondary_key == created.authentication.secondary_key
    assert registry.get_device("well-01") == new_primary
    details = [e.record.details for e in registry.store.iter_audit()][1:]
    assert [d["credentials_changed"] for d in details] == [False, True]


def test_update_checks_the_etag(registry: Registry) -> None:
    created = registry.create_device("well-01", SAS, actor=ADMIN)
    settings(registry, "well-01", SAS, iot_edge=True)

    with pytest.raises(PreconditionFailedError):
        settings(registry, "well-01", SAS, expected_etag=created.etag, iot_edge=False)
    with pytest.raises(NotFoundError):
        registry.update_device(
            "ghost",
            SAS,
            actor=ADMIN,
            expected_etag=None,
            status=DeviceStatus.ENABLED,
            status_reason=None,
            iot_edge=False,
        )

    assert registry.get_device("well-01").iot_edge is True


def test_disable_and_enable_record_the_reason_and_when(
    registry: Registry, clock: FakeClock
) -> None:
    created = registry.create_device("well-01", SAS, actor=ADMIN)

    clock.advance(10)
    disabled = registry.set_status("well-01", DeviceStatus.DISABLED, "pump stolen", actor=ADMIN)
    clock.advance(10)
    untouched = settings(registry, "well-01", SAS, iot_edge=True)
    clock.advance(10)
    enabled = registry.set_status("well-01", DeviceStatus.ENABLED, "recovered", actor=ADMIN)

    assert (disabled.status, disabled.status_reason) == (DeviceStatus.DISABLED, "pump stolen")
    assert disabled.status_updated == START + timedelta(seconds=10)
    assert untouched.status_updated == disabled.status_updated
    assert (enabled.status, enabled.status_reason) == (DeviceStatus.ENABLED, "recovered")
    assert enabled.status_updated == START + timedelta(seconds=30)
    assert enabled.authentication == created.authentication
    assert registry.get_device("well-01") == enabled
    entries = list(registry.store.iter_audit())
    assert [(e.record.action, e.record.details.get("reason")) for e in entries] == [
        ("device.create", None),
        ("device.disable", "pump stolen"),
        ("device.update", None),
        ("device.enable", "recovered"),
    ]


def test_rotating_keys_keeps_the_old_primary_as_secondary(registry: Registry) -> None:
    created = registry.create_device("well-01", SAS, actor=ADMIN)

    rotated = registry.rotate_keys("well-01", actor=ADMIN)

    assert rotated.authentication.secondary_key == created.authentication.primary_key
    assert rotated.authentication.primary_key not in {
        created.authentication.primary_key,
        created.authentication.secondary_key,
    }
    assert registry.get_device("well-01") == rotated
    registry.create_device("cam-01", AuthSpec(AuthType.CERTIFICATE_AUTHORITY), actor=ADMIN)
    with pytest.raises(InvalidInputError):
        registry.rotate_keys("cam-01", actor=ADMIN)


# -- lifecycle ------------------------------------------------------------------------

P, A, M, R, D = (
    LifecycleState.PROVISIONED,
    LifecycleState.ACTIVE,
    LifecycleState.MAINTENANCE,
    LifecycleState.RETIRED,
    LifecycleState.DECOMMISSIONED,
)


@pytest.mark.parametrize(
    "path", [(A,), (A, M, A), (A, M, R, A), (R,), (A, R, A, M), (D,), (A, M, D), (R, D)]
)
def test_allowed_lifecycle_paths(registry: Registry, path: tuple[LifecycleState, ...]) -> None:
    registry.create_device("well-01", SAS, actor=ADMIN)

    for state in path:
        device = registry.set_lifecycle("well-01", state, None, actor=ADMIN)
        assert device.lifecycle is state

    assert registry.get_device("well-01").lifecycle is path[-1]
    assert actions(registry) == ["device.create"] + ["device.lifecycle"] * len(path)


@pytest.mark.parametrize(
    ("path", "refused"),
    [((), M), ((A,), P), ((A, M), P), ((R,), M), ((R,), P), ((D,), A), ((D,), P)],
)
def test_refused_lifecycle_transitions(
    registry: Registry, path: tuple[LifecycleState, ...], refused: LifecycleState
) -> None:
    registry.create_device("well-01", SAS, actor=ADMIN)
    for state in path:
        registry.set_lifecycle("well-01", state, None, actor=ADMIN)
    before = registry.get_device("well-01")

    with pytest.raises(InvalidInputError):
        registry.set_lifecycle("well-01", refused, None, actor=ADMIN)

    assert registry.get_device("well-01") == before


def test_decommissioning_disables_and_wipes_credentials(
    registry: Registry, clock: FakeClock
) -> None:
    registry.create_device("well-01", SAS, actor=ADMIN)
    registry.set_lifecycle("well-01", A, None, actor=ADMIN)
    clock.advance(5)

    device = registry.set_lifecycle("well-01", D, "sold for scrap", actor=ADMIN)

    assert device.status is DeviceStatus.DISABLED
    assert device.status_reason == "sold for scrap"
    assert device.status_updated == START + timedelta(seconds=5)
    assert device.authentication.type is AuthType.NONE
    assert device.authentication.primary_key is None
    assert device.authentication.secondary_key is None
    assert registry.get_device("well-01") == device
    last = list(registry.store.iter_audit())[-1].record
    assert (last.action, last.details) == (
        "device.lifecycle",
        {"from": "active", "to": "decommissioned", "reason": "sold for scrap"},
    )


def test_decommissioning_is_final(registry: Registry) -> None:
    registry.create_device("well-01", SAS, actor=ADMIN)
    registry.create_module("well-01", "agent", SAS, actor=ADMIN)
    decommissioned = registry.set_lifecycle("well-01", D, None, actor=ADMIN)

    # The same state again is no change at all.
    assert registry.set_lifecycle("well-01", D, None, actor=ADMIN) == decommissioned
    for state in (P, A, M, R):
        with pytest.raises(InvalidInputError):
            registry.set_lifecycle("well-01", state, None, actor=ADMIN)
    # Re-enabling would let the module (whose keys survive) connect again, and a PUT would
    # hand out fresh keys: neither may bring the device back.
    with pytest.raises(InvalidInputError):
        registry.set_status("well-01", DeviceStatus.ENABLED, None, actor=ADMIN)
    with pytest.raises(InvalidInputError):
        settings(registry, "well-01", SAS, status=DeviceStatus.ENABLED)
    with pytest.raises(InvalidInputError):
        settings(registry, "well-01", SAS)

    assert registry.get_device("well-01") == decommissioned
    registry.delete_device("well-01", actor=ADMIN, expected_etag=decommissioned.etag)
    with pytest.raises(NotFoundError):
        registry.get_device("well-01")


def test_deleting_a_device_deletes_its_modules_and_twins(registry: Registry) -> None:
    registry.create_device("well-01", SAS, actor=ADMIN)
    registry.create_module("well-01", "agent", SAS, actor=ADMIN)

    registry.delete_device("well-01", actor=ADMIN, expected_etag=None)

    with pytest.raises(NotFoundError):
        registry.get_twin("well-01")
    with pytest.raises(NotFoundError):
        registry.get_module("well-01", "agent")
    with pytest.raises(NotFoundError):
        registry.delete_device("well-01", actor=ADMIN, expected_etag=None)


# -- twins ----------------------------------------------------------------------------


def patch(registry: Registry, *, tags: Any = None, desired: Any = None, **kwargs: Any) -> Any:
    kwargs.setdefault("expected_etag", None)
    twin, _ = registry.update_twin(
        "well-01",
        kwargs.pop("module_id", None),
        tags=tags,
        desired=desired,
        replace_all=kwargs.pop("replace_all", False),
        actor=ADMIN,
        **kwargs,
    )
    return twin


@pytest.fixture
def twin_device(registry: Registry) -> Registry:
    registry.create_device("well-01", SAS, actor=ADMIN)
    patch(
        registry,
        tags={"site": {"name": "north", "zone": 3}, "owner": "ops"},
        desired={"interval": 30, "limits": {"max": 8.5, "min": 0.5}, "mode": "auto"},
    )
    return registry


def test_patch_merges_objects_and_null_removes(twin_device: Registry) -> None:
    before, _ = twin_device.get_twin("well-01")

    after = patch(
        twin_device,
        tags={"site": {"zone": None, "well": "7"}, "owner": None},
        desired={"limits": {"max": 9, "unit": "bar"}, "mode": None, "label": "Brunnen 7 ✓"},
    )

    assert after.tags == {"site": {"name": "north", "well": "7"}}
    assert after.desired == {
        "interval": 30,
        "limits": {"max": 9, "min": 0.5, "unit": "bar"},
        "label": "Brunnen 7 ✓",
    }
    assert after.desired_version == before.desired_version + 1
    assert after.version == before.version + 1
    assert after.etag != before.etag
    assert twin_device.get_twin("well-01")[0] == after


def test_desired_version_moves_only_when_desired_properties_change(
    twin_device: Registry,
) -> None:
    before, _ = twin_device.get_twin("well-01")

    tags_only = patch(twin_device, tags={"owner": "field team"}, desired={"interval": 30})

    assert tags_only.desired_version == before.desired_version
    assert tags_only.version == before.version + 1
    assert tags_only.tags["owner"] == "field team"


def test_a_patch_that_changes_nothing_keeps_the_twin_and_is_not_audited(
    twin_device: Registry,
) -> None:
    before, _ = twin_device.get_twin("well-01")
    audited = actions(twin_device)

    after = patch(
        twin_device,
        tags={"site": {"name": "north"}, "absent": None},
        desired={"limits": {"max": 8.5}},
        expected_etag=before.etag,
    )

    assert after == before
    assert twin_device.get_twin("well-01")[0] == before
    assert actions(twin_device) == audited


def test_put_replaces_tags_and_desired_properties(twin_device: Registry) -> None:
    before, _ = twin_device.get_twin("well-01")

    after = patch(twin_device, tags={"owner": "ops"}, desired={"interval": 60}, replace_all=True)

    assert after.tags == {"owner": "ops"}
    assert after.desired == {"interval": 60}
    assert after.desired_version == before.desired_version + 1
    assert twin_device.get_twin("well-01")[0] == after
    assert actions(twin_device)[-1] == "twin.replace"
    with pytest.raises(InvalidInputError):
        patch(twin_device, desired={"interval": None}, replace_all=True)


def test_the_version_a_client_echoes_back_is_not_stored(twin_device: Registry) -> None:
    before, _ = twin_device.get_twin("well-01")

    after = patch(twin_device, desired={"$version": 99, "interval": 45})

    assert after.desired == {**before.desired, "interval": 45}
    assert after.desired_version == before.desired_version + 1


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep: {"l1": {"l2": ... {"lN": 1}}}."""
    doc: dict[str, Any] = {f"l{depth}": 1}
    for level in range(depth - 1, 0, -1):
        doc = {f"l{level}": doc}
    return doc


@pytest.mark.parametrize(
    ("tags", "desired"),
    [
        ({"$secret": 1}, None),
        (None, {"outer": {"$inner": 1}}),
        ({"a.b": 1}, None),
        (None, {"with space": 1}),
        (nested(11), None),
        (None, nested(11)),
        (["not", "an", "object"], None),
        (None, "not an object"),
        (None, [1, 2]),
    ],
    ids=[
        "dollar-tag",
        "nested-dollar-desired",
        "dot",
        "space",
        "deep-tags",
        "deep-desired",
        "tags-array",
        "desired-string",
        "desired-array",
    ],
)
def test_bad_twin_documents_are_refused_with_a_precise_error(
    twin_device: Registry, tags: Any, desired: Any
) -> None:
    before, _ = twin_device.get_twin("well-01")

    for replace_all in (False, True):
        with pytest.raises(InvalidInputError) as caught:
            patch(twin_device, tags=tags, desired=desired, replace_all=replace_all)
        assert caught.value.field is not None
        assert caught.value.field.split(".")[0] in {"tags", "desired"}

    assert twin_device.get_twin("well-01")[0] == before


def test_ten_levels_of_nesting_are_allowed(twin_device: Registry) -> None:
    after = patch(twin_device, tags=nested(10), desired=nested(10))

    assert after.tags["l1"] == nested(10)["l1"]
    assert twin_device.get_twin("well-01")[0] == after


def test_twin_updates_check_the_etag(twin_device: Registry) -> None:
    before, _ = twin_device.get_twin("well-01")
    current = patch(twin_device, desired={"interval": 40}, expected_etag=before.etag)

    with pytest.raises(PreconditionFailedError):
        patch(twin_device, desired={"interval": 50}, expected_etag=before.etag)
    with pytest.raises(PreconditionFailedError):
        patch(twin_device, desired={"interval": 50}, expected_etag=before.etag, replace_all=True)

    assert twin_device.get_twin("well-01")[0] == current


def test_module_twins_are_patched_on_their_own(twin_device: Registry) -> None:
    twin_device.create_module("well-01", "agent", SAS, actor=ADMIN)
    device_twin, _ = twin_device.get_twin("well-01")

    module_twin = patch(twin_device, module_id="agent", desired={"scan": "hourly"})

    assert module_twin.module_id == "agent"
    assert module_twin.desired == {"scan": "hourly"}
    assert twin_device.get_twin("well-01", "agent")[0] == module_twin
    assert twin_device.get_twin("well-01")[0] == device_twin
    with pytest.raises(NotFoundError):
        patch(twin_device, module_id="ghost", desired={"scan": "daily"})


# -- configurations -------------------------------------------------------------------


def configuration(configuration_id: str = "firmware-2", priority: int = 10) -> Configuration:
    return Configuration(
        configuration_id=configuration_id,
        etag="",
        schema_version="1.0",
        labels={"release": "2"},
        content={"deviceContent": {"properties.desired.firmware": "2.0"}},
        target_condition="tags.site = 'north'",
        priority=priority,
    )


def test_configurations_are_created_updated_and_deleted_with_etags(
    registry: Registry, clock: FakeClock
) -> None:
    created, was_new = registry.put_configuration(configuration(), actor=ADMIN, expected_etag=None)
    assert was_new is True
    assert created.created == created.updated == START
    assert created.etag

    clock.advance(60)
    updated, was_new = registry.put_configuration(
        configuration(priority=20), actor=ADMIN, expected_etag=created.etag
    )
    assert was_new is False
    assert (updated.priority, updated.created, updated.updated) == (
        20,
        START,
        START + timedelta(seconds=60),
    )
    assert updated.etag != created.etag

    with pytest.raises(PreconditionFailedError):
        registry.put_configuration(
            configuration(priority=30), actor=ADMIN, expected_etag=created.etag
        )
    with pytest.raises(InvalidInputError):
        registry.put_configuration(configuration("Upper-Case"), actor=ADMIN, expected_etag=None)
    assert registry.get_configuration("firmware-2") == updated

    with pytest.raises(PreconditionFailedError):
        registry.delete_configuration("firmware-2", actor=ADMIN, expected_etag=created.etag)
    registry.delete_configuration("firmware-2", actor=ADMIN, expected_etag=updated.etag)
    with pytest.raises(NotFoundError):
        registry.get_configuration("firmware-2")
    assert actions(registry) == ["configuration.put"] * 2 + ["configuration.delete"]


# -- audit ----------------------------------------------------------------------------


def test_audit_records_who_when_and_from_where_and_verifies(
    registry: Registry, clock: FakeClock
) -> None:
    registry.create_device("well-01", SAS, actor=ADMIN)
    clock.advance(1)
    registry.set_status("well-01", DeviceStatus.DISABLED, "maintenance", actor=ADMIN)
    clock.advance(1)
    registry.record(ADMIN, "hub.backup", "hub", file="backup-1.tar")

    checked, broken = registry.verify_audit()

    assert (checked, broken) == (3, None)
    entries = list(registry.store.iter_audit())
    assert [e.record.at for e in entries] == [START + timedelta(seconds=s) for s in (0, 1, 2)]
    assert {(e.record.actor, e.record.source) for e in entries} == {(ADMIN.name, ADMIN.source)}
    assert entries[-1].record.details == {"file": "backup-1.tar"}


# -- certificates ---------------------------------------------------------------------


@pytest.fixture
def certificates(
    registry: Registry, issuing_ca: CertificateAuthority, clock: FakeClock
) -> DeviceCertificates:
    return DeviceCertificates(registry, issuing_ca, clock, validity_days=30)


def test_certificates_are_issued_only_to_certificate_authority_devices(
    registry: Registry, certificates: DeviceCertificates
) -> None:
    registry.create_device("well-01", SAS, actor=ADMIN)
    _key, csr = create_device_key_and_csr("well-01")

    with pytest.raises(InvalidInputError):
        certificates.issue("well-01", csr, actor=ADMIN)
    with pytest.raises(NotFoundError):
        certificates.issue("ghost", csr, actor=ADMIN)
    assert certificates.list(device_id=None, after=None, limit=10) == []


def test_the_csr_common_name_must_be_the_device_id(
    registry: Registry, certificates: DeviceCertificates
) -> None:
    registry.create_device("cam-01", AuthSpec(AuthType.CERTIFICATE_AUTHORITY), actor=ADMIN)
    _key, csr = create_device_key_and_csr("cam-02")

    with pytest.raises(InvalidInputError, match="does not match"):
        certificates.issue("cam-01", csr, actor=ADMIN)


def test_an_issued_certificate_is_recorded_and_chains_to_the_issuing_ca(
    registry: Registry,
    certificates: DeviceCertificates,
    issuing_ca: CertificateAuthority,
) -> None:
    registry.create_device("cam-01", AuthSpec(AuthType.CERTIFICATE_AUTHORITY), actor=ADMIN)
    key, csr = create_device_key_and_csr("cam-01")

    bundle = certificates.issue("cam-01", csr, actor=ADMIN)

    cert = certificate_from_pem(bundle.record.pem.encode())
    assert cert.serial_number == bundle.record.serial
    assert cert.issuer == issuing_ca.certificate.subject
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "cam-01"
    assert bundle.record.not_after - bundle.record.not_before >= timedelta(days=30)
    assert certificates_from_pem(bundle.chain_pem.encode()) == [issuing_ca.certificate]
    assert certificates.list(device_id="cam-01", after=None, limit=10) == [bundle.record]
    assert actions(registry)[-1] == "certificate.issue"


def test_revoked_certificates_appear_in_the_signed_crl(
    registry: Registry,
    certificates: DeviceCertificates,
    issuing_ca: CertificateAuthority,
    clock: FakeClock,
) -> None:
    for device_id in ("cam-01", "cam-02"):
        registry.create_device(device_id, AuthSpec(AuthType.CERTIFICATE_AUTHORITY), actor=ADMIN)
    issued = {
        name: certificates.issue(device, create_device_key_and_csr(device)[1], actor=ADMIN).record
        for name, device in (("old", "cam-01"), ("new", "cam-01"), ("other", "cam-02"))
    }
    assert crl_revoked_serials(certificates.crl(), issuing_ca.certificate) == frozenset()

    clock.advance(60)
    revoked = certificates.revoke(issued["old"].serial, RevocationReason.SUPERSEDED, actor=ADMIN)
    clock.advance(60)
    again = certificates.revoke(issued["old"].serial, RevocationReason.KEY_COMPROMISE, actor=ADMIN)

    assert revoked.revoked_at == START + timedelta(seconds=60)
    assert again == revoked
    assert crl_revoked_serials(certificates.crl(), issuing_ca.certificate, now=clock()) == {
        issued["old"].serial
    }

    assert certificates.revoke_all_for("cam-01", RevocationReason.KEY_COMPROMISE, actor=ADMIN) == 1
    assert crl_revoked_serials(certificates.crl(), issuing_ca.certificate) == {
        issued["old"].serial,
        issued["new"].serial,
    }
    assert certificates.revoke_all_for("cam-01", RevocationReason.KEY_COMPROMISE, actor=ADMIN) == 0
    assert actions(registry).count("certificate.revoke") == 2
    with pytest.raises(NotFoundError):
        certificates.revoke(12345, RevocationReason.UNSPECIFIED, actor=ADMIN)

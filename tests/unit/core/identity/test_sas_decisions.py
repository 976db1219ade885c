"""The device-connect and service-caller decisions built on SAS tokens."""

from __future__ import annotations

import pytest

from tests.unit.core.identity.factories import (
    DEVICE_KEY,
    DEVICE_KEY2,
    HUB,
    HUB_HOSTS,
    MAX_TTL,
    MODULE_KEY,
    NOW,
    NOW_S,
    OTHER_KEY,
    make_device,
    make_module,
    policies,
)
from wellguard.core.identity import generate_sas_token, verify_device_sas, verify_service_sas
from wellguard.errors import AuthError, AuthFailureReason
from wellguard.model.device import Authentication, AuthType, Device, DeviceStatus, Module
from wellguard.model.policy import AccessRights, SharedAccessPolicy

R = AuthFailureReason
POLICIES = policies()
SOON = NOW_S + 3600
THUMB = "AB" * 20


def _device_token(
    resource: str = f"{HUB}/devices/well-01",
    key: str = DEVICE_KEY,
    expiry: int = SOON,
    key_name: str | None = None,
) -> str:
    return generate_sas_token(resource, key, expiry, key_name)


def _connect(
    token: str,
    *,
    device: Device | None = None,
    module: Module | None = None,
    device_id: str = "well-01",
    module_id: str | None = None,
    use_default_device: bool = True,
) -> None:
    verify_device_sas(
        token,
        device=device if device is not None or not use_default_device else make_device(),
        module=module,
        device_id=device_id,
        module_id=module_id,
        hub_hosts=HUB_HOSTS,
        now=NOW,
        policies=POLICIES,
        max_ttl_seconds=MAX_TTL,
    )


def _refused(token: str, **kwargs: object) -> AuthError:
    with pytest.raises(AuthError) as caught:
        _connect(token, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == "unauthorized"
    return caught.value


# --- devices ----------------------------------------------------------------------------


def test_device_connects_with_either_key_on_any_hub_host() -> None:
    _connect(_device_token())
    _connect(_device_token(key=DEVICE_KEY2))
    _connect(_device_token(f"{HUB}:8443/devices/well-01"))
    _connect(_device_token(f"https://{HUB.upper()}/devices/well-01/"))


def test_missing_token() -> None:
    assert _refused("").reason is R.MISSING_CREDENTIALS


def test_malformed_token_carries_the_identity() -> None:
    error = _refused("SharedAccessSignature nonsense")
    assert error.reason is R.MALFORMED_TOKEN
    assert error.identity == "well-01"


def test_unknown_device() -> None:
    assert _refused(_device_token(), use_default_device=False).reason is R.UNKNOWN_DEVICE
    # A record for a different id is not the device asked for.
    assert _refused(_device_token(), device=make_device("well-02")).reason is R.UNKNOWN_DEVICE


def test_disabled_device() -> None:
    device = make_device(status=DeviceStatus.DISABLED)
    assert _refused(_device_token(), device=device).reason is R.DISABLED_DEVICE


def test_certificate_identity_cannot_use_a_device_token() -> None:
    device = make_device(
        authentication=Authentication(AuthType.SELF_SIGNED, primary_thumbprint=THUMB)
    )
    error = _refused(_device_token(), device=device)
    assert error.reason is R.WRONG_AUTH_TYPE


def test_token_for_another_device() -> None:
    error = _refused(_device_token(f"{HUB}/devices/well-02"))
    assert error.reason is R.WRONG_RESOURCE
    # Segment-wise prefix: a token for "well-0" does not cover "well-01".
    assert _refused(_device_token(f"{HUB}/devices/well-0")).reason is R.WRONG_RESOURCE
    assert _refused(_device_token("evil.example/devices/well-01")).reason is R.WRONG_RESOURCE


def test_hub_wide_token_signed_with_the_device_key_covers_the_device() -> None:
    _connect(_device_token(HUB))


def test_expired_and_overlong_tokens() -> None:
    assert _refused(_device_token(expiry=NOW_S - 301)).reason is R.EXPIRED_TOKEN
    assert _refused(_device_token(expiry=NOW_S + MAX_TTL + 301)).reason is R.EXPIRED_TOKEN


def test_bad_signature() -> None:
    assert _refused(_device_token(key=OTHER_KEY)).reason is R.BAD_SIGNATURE


def test_check_order() -> None:
    forged_stale_foreign = _device_token(f"{HUB}/devices/x", OTHER_KEY, 5)
    disabled = make_device(status=DeviceStatus.DISABLED)
    x509_disabled = make_device(
        status=DeviceStatus.DISABLED,
        authentication=Authentication(AuthType.SELF_SIGNED, primary_thumbprint=THUMB),
    )
    assert _refused("x", use_default_device=False).reason is R.MALFORMED_TOKEN
    assert _refused(forged_stale_foreign, use_default_device=False).reason is R.UNKNOWN_DEVICE
    assert _refused(forged_stale_foreign, device=disabled).reason is R.DISABLED_DEVICE
    assert _refused(forged_stale_foreign, device=x509_disabled).reason is R.DISABLED_DEVICE
    assert _refused(forged_stale_foreign).reason is R.WRONG_RESOURCE
    assert _refused(_device_token(key=OTHER_KEY, expiry=5)).reason is R.EXPIRED_TOKEN


# --- modules ----------------------------------------------------------------------------


def test_module_connects_with_its_own_key() -> None:
    token = _device_token(f"{HUB}/devices/well-01/modules/agent", MODULE_KEY)
    _connect(token, module=make_module(), module_id="agent")


def test_module_refused_with_the_device_key() -> None:
    token = _device_token(f"{HUB}/devices/well-01/modules/agent", DEVICE_KEY)
    error = _refused(token, module=make_module(), module_id="agent")
    assert error.reason is R.BAD_SIGNATURE
    assert error.identity == "well-01/agent"


def test_module_token_does_not_cover_the_device_or_other_modules() -> None:
    token = _device_token(f"{HUB}/devices/well-01/modules/agent", MODULE_KEY)
    assert _refused(token).reason is R.WRONG_RESOURCE
    other = make_module(module_id="other")
    assert _refused(token, module=other, module_id="other").reason is R.WRONG_RESOURCE


def test_unknown_module() -> None:
    token = _device_token(f"{HUB}/devices/well-01/modules/agent", MODULE_KEY)
    assert _refused(token, module_id="agent").reason is R.UNKNOWN_DEVICE
    wrong = make_module(module_id="other")
    assert _refused(token, module=wrong, module_id="agent").reason is R.UNKNOWN_DEVICE
    elsewhere = make_module(device_id="well-02")
    assert _refused(token, module=elsewhere, module_id="agent").reason is R.UNKNOWN_DEVICE


def test_module_of_a_disabled_device() -> None:
    token = _device_token(f"{HUB}/devices/well-01/modules/agent", MODULE_KEY)
    device = make_device(status=DeviceStatus.DISABLED)
    error = _refused(token, device=device, module=make_module(), module_id="agent")
    assert error.reason is R.DISABLED_DEVICE


def test_module_with_certificate_auth_cannot_use_a_token() -> None:
    module = make_module(authentication=Authentication(AuthType.NONE))
    token = _device_token(f"{HUB}/devices/well-01/modules/agent", MODULE_KEY)
    assert _refused(token, module=module, module_id="agent").reason is R.WRONG_AUTH_TYPE


# --- policy tokens for devices ----------------------------------------------------------


def test_policy_token_with_device_connect() -> None:
    device_policy = POLICIES["device"]
    token = _device_token(key=device_policy.secondary_key, key_name="device")
    _connect(token)
    # A policy token bypasses the identity's own auth type.
    x509_device = make_device(
        authentication=Authentication(AuthType.SELF_SIGNED, primary_thumbprint=THUMB)
    )
    _connect(token, device=x509_device)
    module_token = _device_token(
        f"{HUB}/devices/well-01/modules/agent",
        POLICIES["iothubowner"].primary_key,
        SOON,
        "iothubowner",
    )
    _connect(module_token, module=make_module(), module_id="agent")


def test_policy_token_failures() -> None:
    unknown = _device_token(key=DEVICE_KEY, key_name="nobody")
    assert _refused(unknown).reason is R.UNKNOWN_POLICY
    service = _device_token(key=POLICIES["service"].primary_key, key_name="service")
    assert _refused(service).reason is R.INSUFFICIENT_RIGHTS
    wrong_key = _device_token(key=DEVICE_KEY, key_name="device")
    assert _refused(wrong_key).reason is R.BAD_SIGNATURE


# --- service callers --------------------------------------------------------------------


def _service(token: str, required: AccessRights = AccessRights.REGISTRY_READ) -> SharedAccessPolicy:
    return verify_service_sas(
        token,
        policies=POLICIES,
        hub_hosts=HUB_HOSTS,
        now=NOW,
        required=required,
        max_ttl_seconds=MAX_TTL,
    )


def _service_refused(token: str, required: AccessRights = AccessRights.REGISTRY_READ) -> AuthError:
    with pytest.raises(AuthError) as caught:
        _service(token, required)
    return caught.value


@pytest.mark.parametrize("host", HUB_HOSTS)
def test_service_token_returns_its_policy(host: str) -> None:
    owner = POLICIES["iothubowner"]
    token = generate_sas_token(host, owner.primary_key, SOON, "iothubowner")
    assert _service(token, AccessRights.REGISTRY_WRITE | AccessRights.SERVICE_CONNECT) is owner
    assert _service(token, AccessRights.NONE) is owner


def test_service_token_failures() -> None:
    owner = POLICIES["iothubowner"]
    assert _service_refused("").reason is R.MISSING_CREDENTIALS
    assert _service_refused("SharedAccessSignature x=y").reason is R.MALFORMED_TOKEN
    no_skn = generate_sas_token(HUB, owner.primary_key, SOON)
    assert _service_refused(no_skn).reason is R.MISSING_CREDENTIALS
    unknown = generate_sas_token(HUB, owner.primary_key, SOON, "nobody")
    error = _service_refused(unknown)
    assert (error.reason, error.identity) == (R.UNKNOWN_POLICY, "nobody")
    reader = POLICIES["registryRead"]
    weak = generate_sas_token(HUB, reader.primary_key, SOON, "registryRead")
    assert _service(weak).name == "registryRead"
    assert _service_refused(weak, AccessRights.REGISTRY_WRITE).reason is R.INSUFFICIENT_RIGHTS
    scoped = generate_sas_token(f"{HUB}/devices/well-01", owner.primary_key, SOON, "iothubowner")
    assert _service_refused(scoped).reason is R.WRONG_RESOURCE
    other_hub = generate_sas_token("other.local", owner.primary_key, SOON, "iothubowner")
    assert _service_refused(other_hub).reason is R.WRONG_RESOURCE
    stale = generate_sas_token(HUB, owner.primary_key, NOW_S - 400, "iothubowner")
    assert _service_refused(stale).reason is R.EXPIRED_TOKEN
    forged = generate_sas_token(HUB, OTHER_KEY, SOON, "iothubowner")
    error = _service_refused(forged)
    assert (error.reason, error.identity) == (R.BAD_SIGNATURE, "iothubowner")

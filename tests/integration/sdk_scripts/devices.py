"""Device identities through IoTHubRegistryManager: create, read, update and delete,
with and without etags."""

from __future__ import annotations

from typing import Any

from scenario import emit, read_arguments, refusal, registry_manager


def identity(device: Any) -> dict[str, Any]:
    """What a caller reads back from a device identity."""
    auth = device.authentication
    keys = auth.symmetric_key
    prints = auth.x509_thumbprint
    return {
        "deviceId": device.device_id,
        "etag": device.etag,
        "status": device.status,
        "statusReason": device.status_reason,
        "type": auth.type,
        "primaryKey": keys.primary_key if keys else None,
        "secondaryKey": keys.secondary_key if keys else None,
        "primaryThumbprint": prints.primary_thumbprint if prints else None,
        "secondaryThumbprint": prints.secondary_thumbprint if prints else None,
        "connectionState": device.connection_state,
    }


def main() -> None:
    args = read_arguments()
    rm = registry_manager(args["connection_string"], args["root_ca"])
    given, generated, x509, ca = (f"{args['prefix']}-{n}" for n in ("given", "gen", "x509", "ca"))
    prints = args["thumbprints"]
    out: dict[str, Any] = {}

    out["given"] = identity(
        rm.create_device_with_sas(given, args["primary_key"], args["secondary_key"], "enabled")
    )
    out["generated"] = identity(rm.create_device_with_sas(generated, None, None, "enabled"))
    out["generated_read"] = identity(rm.get_device(generated))
    out["x509"] = identity(rm.create_device_with_x509(x509, prints[0], prints[1], "enabled"))
    out["ca"] = identity(rm.create_device_with_certificate_authority(ca, "disabled"))
    out["duplicate"] = refusal(rm.create_device_with_sas, given, None, None, "enabled")
    out["missing"] = refusal(rm.get_device, f"{args['prefix']}-missing")
    out["listed"] = sorted(d.device_id for d in rm.get_devices())
    out["listed_top_2"] = len(rm.get_devices(2))

    # SAS: disable with the current etag, then a writer holding the old etag is refused.
    first_etag = out["given"]["etag"]
    out["sas_disabled"] = identity(
        rm.update_device_with_sas(given, first_etag, None, None, "disabled", False, "paused")
    )
    out["sas_stale"] = refusal(rm.update_device_with_sas, given, first_etag, None, None, "enabled")
    out["sas_after_stale"] = identity(rm.get_device(given))
    new_keys = args["new_keys"]
    out["sas_wildcard"] = identity(
        rm.update_device_with_sas(given, None, new_keys[0], new_keys[1], "enabled")
    )

    # X.509 thumbprints: replaced with the etag; a stale etag is refused; restating only
    # the primary removes the secondary.
    x509_etag = out["x509"]["etag"]
    out["x509_updated"] = identity(
        rm.update_device_with_x509(x509, x509_etag, prints[2], prints[3], "enabled")
    )
    out["x509_stale"] = refusal(
        rm.update_device_with_x509, x509, x509_etag, prints[0], prints[1], "enabled"
    )
    out["x509_wildcard"] = identity(
        rm.update_device_with_x509(x509, None, prints[0], None, "disabled")
    )

    # Certificate authority: enable with the etag, then unconditionally disable.
    ca_etag = out["ca"]["etag"]
    out["ca_enabled"] = identity(
        rm.update_device_with_certificate_authority(ca, ca_etag, "enabled")
    )
    out["ca_stale"] = refusal(rm.update_device_with_certificate_authority, ca, ca_etag, "disabled")
    out["ca_wildcard"] = identity(rm.update_device_with_certificate_authority(ca, None, "disabled"))

    # Delete: a stale etag is refused and the device stays; the current etag deletes it.
    out["delete_stale"] = refusal(rm.delete_device, given, first_etag)
    current = rm.get_device(given)
    out["still_there"] = current.device_id
    rm.delete_device(given, current.etag)
    out["deleted_with_etag"] = refusal(rm.get_device, given)
    rm.delete_device(generated)
    out["deleted_without_etag"] = refusal(rm.get_device, generated)
    out["delete_gone"] = refusal(rm.delete_device, generated)
    for device_id in (x509, ca):
        rm.delete_device(device_id)
    emit(out)


if __name__ == "__main__":
    main()

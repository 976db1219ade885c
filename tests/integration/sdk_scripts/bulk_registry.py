"""Bulk registry operations through IoTHubRegistryManager.bulk_create_or_update_devices:
creates, an update with the etag, a delete, and entries that fail on their own."""

from __future__ import annotations

from typing import Any

from azure.iot.hub.models import (
    AuthenticationMechanism,
    ExportImportDevice,
    PropertyContainer,
    SymmetricKey,
)
from scenario import emit, read_arguments, refusal, registry_manager


def outcome(result: Any) -> dict[str, Any]:
    """What the SDK made of a BulkRegistryOperationResult."""
    return {
        "isSuccessful": result.is_successful,
        "errors": [
            {
                "deviceId": error.device_id,
                "moduleId": error.module_id,
                "errorCode": error.error_code,
                "errorStatus": error.error_status,
                "operation": error.operation,
            }
            for error in result.errors or []
        ],
    }


def main() -> None:
    args = read_arguments()
    rm = registry_manager(args["connection_string"], args["root_ca"])
    prefix = args["prefix"]
    given, generated, updated, deleted, existing = (
        f"{prefix}-{name}" for name in ("given", "gen", "upd", "del", "exists")
    )
    for device_id in (updated, deleted, existing):
        rm.create_device_with_sas(device_id, None, None, "enabled")
    etag = rm.get_device(updated).etag
    out: dict[str, Any] = {}

    keys = AuthenticationMechanism(
        type="sas",
        symmetric_key=SymmetricKey(primary_key=args["primary_key"], secondary_key=None),
    )
    out["mixed"] = outcome(
        rm.bulk_create_or_update_devices(
            [
                ExportImportDevice(id=given, import_mode="create", authentication=keys),
                ExportImportDevice(
                    id=generated,
                    import_mode="create",
                    status="disabled",
                    tags={"site": "permian"},
                    properties=PropertyContainer(desired={"rate": 5}),
                ),
                ExportImportDevice(
                    id=updated,
                    import_mode="updateIfMatchETag",
                    e_tag=etag,
                    status="disabled",
                    status_reason="bulk",
                ),
                ExportImportDevice(id=deleted, import_mode="delete"),
                ExportImportDevice(id=existing, import_mode="create"),
            ]
        )
    )
    out["given"] = rm.get_device(given).authentication.symmetric_key.primary_key
    generated_device = rm.get_device(generated)
    out["generated"] = {
        "status": generated_device.status,
        "primaryKey": generated_device.authentication.symmetric_key.primary_key,
    }
    twin = rm.get_twin(generated)
    out["generated_twin"] = {"tags": twin.tags, "desired": twin.properties.desired}
    updated_device = rm.get_device(updated)
    out["updated"] = {
        "status": updated_device.status,
        "statusReason": updated_device.status_reason,
        "etagChanged": updated_device.etag != etag,
    }
    out["deleted"] = refusal(rm.get_device, deleted)

    # The etag the first call consumed is stale now; the other entry still applies.
    out["stale"] = outcome(
        rm.bulk_create_or_update_devices(
            [
                ExportImportDevice(id=updated, import_mode="updateIfMatchETag", e_tag=etag),
                ExportImportDevice(id=existing, import_mode="delete"),
            ]
        )
    )
    out["stale_kept"] = rm.get_device(updated).status
    out["existing_deleted"] = refusal(rm.get_device, existing)

    too_many = [
        ExportImportDevice(id=f"{prefix}-many-{n}", import_mode="create") for n in range(101)
    ]
    out["too_many"] = outcome(rm.bulk_create_or_update_devices(too_many))
    out["too_many_created"] = refusal(rm.get_device, f"{prefix}-many-0")

    # Leave the shared hub as it was found.
    out["cleanup"] = outcome(
        rm.bulk_create_or_update_devices(
            [
                ExportImportDevice(id=device_id, import_mode="delete")
                for device_id in (given, generated, updated)
            ]
        )
    )
    emit(out)


if __name__ == "__main__":
    main()

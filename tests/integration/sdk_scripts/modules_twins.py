"""Module identities, device and module twins, and direct methods to an offline device."""

from __future__ import annotations

from typing import Any

from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties
from scenario import emit, read_arguments, refusal, registry_manager, twin_view


def module_view(module: Any) -> dict[str, Any]:
    """What a caller reads back from a module identity."""
    keys = module.authentication.symmetric_key
    return {
        "deviceId": module.device_id,
        "moduleId": module.module_id,
        "managedBy": module.managed_by,
        "etag": module.etag,
        "type": module.authentication.type,
        "primaryKey": keys.primary_key if keys else None,
        "secondaryKey": keys.secondary_key if keys else None,
    }


def modules(rm: Any, device_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["created"] = module_view(rm.create_module_with_sas(device_id, "agent", "ops", None, None))
    rm.create_module_with_sas(device_id, "telemetry", None, None, None)
    out["read"] = module_view(rm.get_module(device_id, "agent"))
    out["listed"] = sorted(m.module_id for m in rm.get_modules(device_id))
    etag = out["created"]["etag"]
    out["updated"] = module_view(
        rm.update_module_with_sas(device_id, "agent", "fleet", etag, None, None)
    )
    out["update_stale"] = refusal(
        rm.update_module_with_sas, device_id, "agent", "rogue", etag, None, None
    )
    out["after_stale"] = module_view(rm.get_module(device_id, "agent"))
    out["delete_stale"] = refusal(rm.delete_module, device_id, "telemetry", "c3RhbGU=")
    rm.delete_module(device_id, "telemetry")
    out["deleted"] = refusal(rm.get_module, device_id, "telemetry")
    out["listed_after_delete"] = sorted(m.module_id for m in rm.get_modules(device_id))
    return out


def device_twin(rm: Any, device_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    first = rm.get_twin(device_id)
    out["initial"] = twin_view(first)
    patch = Twin(
        tags={"site": "permian", "rack": {"row": 3, "slot": 4}},
        properties=TwinProperties(desired={"rate": 5, "mode": "eco"}),
    )
    out["patched"] = twin_view(rm.update_twin(device_id, patch, first.etag))
    out["patch_stale"] = refusal(rm.update_twin, device_id, Twin(tags={"x": 1}), first.etag)
    removal = Twin(
        tags={"rack": {"slot": None}, "operator": "acme"},
        properties=TwinProperties(desired={"mode": None}),
    )
    out["nulls_removed"] = twin_view(rm.update_twin(device_id, removal))
    before_replace = out["nulls_removed"]["etag"]
    replacement = Twin(tags={"site": "eagleford"}, properties=TwinProperties(desired={"rate": 9}))
    out["replaced"] = twin_view(rm.replace_twin(device_id, replacement, before_replace))
    out["replace_stale"] = refusal(rm.replace_twin, device_id, Twin(tags={}), before_replace)
    out["reported_by_service"] = refusal(
        rm.update_twin, device_id, Twin(properties=TwinProperties(reported={"fw": "9"}))
    )
    out["final"] = twin_view(rm.get_twin(device_id))
    return out


def module_twin(rm: Any, device_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    first = rm.get_module_twin(device_id, "agent")
    out["initial"] = twin_view(first)
    patch = Twin(tags={"role": "security"}, properties=TwinProperties(desired={"scan": 60}))
    out["patched"] = twin_view(rm.update_module_twin(device_id, "agent", patch, first.etag))
    out["patch_stale"] = refusal(
        rm.update_module_twin, device_id, "agent", Twin(tags={"x": 1}), first.etag
    )
    current = out["patched"]["etag"]
    replacement = Twin(tags={"tier": "gold"}, properties=TwinProperties(desired={"level": 2}))
    out["replaced"] = twin_view(rm.replace_module_twin(device_id, "agent", replacement, current))
    out["replace_stale"] = refusal(
        rm.replace_module_twin, device_id, "agent", Twin(tags={}), current
    )
    out["device_twin_tags"] = rm.get_twin(device_id).tags
    return out


def methods(rm: Any, device_id: str, missing_id: str) -> dict[str, Any]:
    def request() -> CloudToDeviceMethod:
        return CloudToDeviceMethod(
            method_name="reboot", payload={"delay": 1}, response_timeout_in_seconds=5
        )

    return {
        "device": refusal(rm.invoke_device_method, device_id, request()),
        "module": refusal(rm.invoke_device_module_method, device_id, "agent", request()),
        "unknown_device": refusal(rm.invoke_device_method, missing_id, request()),
    }


def main() -> None:
    args = read_arguments()
    rm = registry_manager(args["connection_string"], args["root_ca"])
    device_id = args["device_id"]
    rm.create_device_with_sas(device_id, None, None, "enabled")
    out = {
        "modules": modules(rm, device_id),
        "twin": device_twin(rm, device_id),
        "module_twin": module_twin(rm, device_id),
        "methods": methods(rm, device_id, f"{device_id}-missing"),
    }
    rm.delete_device(device_id)
    emit(out)


if __name__ == "__main__":
    main()

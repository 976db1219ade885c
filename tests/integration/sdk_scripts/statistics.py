"""Registry and service statistics as devices are added, disabled and deleted."""

from __future__ import annotations

from typing import Any

from scenario import emit, read_arguments, registry_manager


def counts(rm: Any) -> dict[str, int]:
    """Both statistics calls, flattened."""
    registry = rm.get_device_registry_statistics()
    service = rm.get_service_statistics()
    return {
        "total": registry.total_device_count,
        "enabled": registry.enabled_device_count,
        "disabled": registry.disabled_device_count,
        "connected": service.connected_device_count,
    }


def main() -> None:
    args = read_arguments()
    rm = registry_manager(args["connection_string"], args["root_ca"])
    steps = {"empty": counts(rm)}
    rm.create_device_with_sas("pump-a", None, None, "enabled")
    rm.create_device_with_sas("pump-b", None, None, "enabled")
    rm.create_device_with_certificate_authority("pump-c", "disabled")
    steps["three_added"] = counts(rm)
    rm.update_device_with_sas("pump-a", None, None, None, "disabled")
    steps["one_disabled"] = counts(rm)
    rm.delete_device("pump-b")
    steps["one_deleted"] = counts(rm)
    emit(steps)


if __name__ == "__main__":
    main()

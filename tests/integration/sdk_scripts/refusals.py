"""Callers the hub must refuse: a wrong key, and a read-only policy that tries to write."""

from __future__ import annotations

from typing import Any

from scenario import emit, read_arguments, refusal, registry_manager


def main() -> None:
    args = read_arguments()
    ca = args["root_ca"]
    owner = registry_manager(args["connection_string"], ca)
    forged = registry_manager(args["wrong_key_connection_string"], ca)
    reader = registry_manager(args["read_only_connection_string"], ca)
    device_id, new_id = args["device_id"], args["new_device_id"]
    owner.create_device_with_sas(device_id, None, None, "enabled")
    out: dict[str, Any] = {
        "wrong_key": refusal(forged.get_device, device_id),
        "read_only_get": reader.get_device(device_id).device_id,
        "read_only_create": refusal(reader.create_device_with_sas, new_id, None, None, "enabled"),
        "created_anyway": refusal(owner.get_device, new_id),
    }
    owner.delete_device(device_id)
    emit(out)


if __name__ == "__main__":
    main()

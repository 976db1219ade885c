"""Automatic device configurations through IoTHubConfigurationManager."""

from __future__ import annotations

from typing import Any

from azure.iot.hub.models import Configuration, ConfigurationContent
from scenario import configuration_manager, emit, read_arguments, refusal


def view(conf: Any) -> dict[str, Any]:
    """What a caller reads back from a configuration."""
    return {
        "id": conf.id,
        "etag": conf.etag,
        "priority": conf.priority,
        "targetCondition": conf.target_condition,
        "labels": conf.labels,
        "deviceContent": conf.content.device_content if conf.content else None,
    }


def main() -> None:
    args = read_arguments()
    cm = configuration_manager(args["connection_string"], args["root_ca"])
    conf_id = args["configuration_id"]
    wanted = Configuration(
        id=conf_id,
        labels={"team": "field-ops"},
        content=ConfigurationContent(device_content={"properties.desired.sampling": {"hz": 2}}),
        target_condition="tags.site = 'permian' AND properties.reported.fw >= '2.0'",
        priority=3,
    )
    out: dict[str, Any] = {"created": view(cm.create_configuration(wanted))}
    out["read"] = view(cm.get_configuration(conf_id))
    out["listed"] = [c.id for c in cm.get_configurations()]

    current = cm.get_configuration(conf_id)
    first_etag = current.etag
    current.priority = 7
    current.labels = {"team": "field-ops", "rollout": "wave-2"}
    out["updated"] = view(cm.update_configuration(current, first_etag))
    current.priority = 1
    out["update_stale"] = refusal(cm.update_configuration, current, first_etag)
    out["after_stale"] = view(cm.get_configuration(conf_id))

    out["delete_stale"] = refusal(cm.delete_configuration, conf_id, first_etag)
    cm.delete_configuration(conf_id, out["updated"]["etag"])
    out["deleted"] = refusal(cm.get_configuration, conf_id)

    broken = Configuration(
        id=args["broken_id"],
        content=ConfigurationContent(device_content={"properties.desired.x": 1}),
        target_condition="tags.site = ",
        priority=1,
    )
    out["bad_condition"] = refusal(cm.create_configuration, broken)
    out["bad_condition_stored"] = refusal(cm.get_configuration, args["broken_id"])
    emit(out)


if __name__ == "__main__":
    main()

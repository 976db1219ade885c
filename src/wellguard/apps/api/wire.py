"""IoT Hub's JSON shapes for devices, modules, twins and configurations, both ways.

Field names, casing and nesting follow IoT Hub's service REST API (api-version
2021-04-12) so that Microsoft's service SDK reads them. Dates are ISO-8601 with ``Z`` or
null, never an empty string (the SDK's deserializer breaks on that).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from wellguard.core.registry import AuthSpec
from wellguard.core.registry.bulk import ImportEntry, ImportMode, ImportResult, check_entry_count
from wellguard.core.registry.specs import DeviceSettings
from wellguard.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    RegistryError,
)
from wellguard.model.certificate import IssuedCertificate
from wellguard.model.configuration import Configuration
from wellguard.model.device import Authentication, AuthType, Device, DeviceStatus, Module
from wellguard.model.ids import validate_device_id, validate_module_id
from wellguard.model.twin import Twin

__all__ = [
    "auth_spec_from_json",
    "certificate_to_json",
    "configuration_from_json",
    "configuration_to_json",
    "device_settings_from_json",
    "device_to_json",
    "expected_etag",
    "format_time",
    "import_entries_from_json",
    "import_result_to_json",
    "module_to_json",
    "registry_error_code",
    "twin_to_json",
]


def expected_etag(if_match: str | None) -> str | None:
    """IoT Hub's If-Match: absent or ``*`` (quoted or not) is a wildcard; quotes optional."""
    if if_match is None:
        return None
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return None if value in ("*", "") else value


def format_time(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, or None."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _auth_to_json(auth: Authentication) -> dict[str, Any]:
    return {
        "symmetricKey": {"primaryKey": auth.primary_key, "secondaryKey": auth.secondary_key},
        "x509Thumbprint": {
            "primaryThumbprint": auth.primary_thumbprint,
            "secondaryThumbprint": auth.secondary_thumbprint,
        },
        "type": auth.type.value,
    }


def device_to_json(device: Device) -> dict[str, Any]:
    """A device as IoT Hub renders it."""
    return {
        "deviceId": device.device_id,
        "generationId": device.generation_id,
        "etag": device.etag,
        "connectionState": device.connection_state.value,
        "status": device.status.value,
        "statusReason": device.status_reason,
        "connectionStateUpdatedTime": format_time(device.connection_state_updated),
        "statusUpdatedTime": format_time(device.status_updated),
        "lastActivityTime": format_time(device.last_activity),
        "cloudToDeviceMessageCount": device.c2d_count,
        "authentication": _auth_to_json(device.authentication),
        "capabilities": {"iotEdge": device.iot_edge},
        "deviceScope": None,
        "parentScopes": [],
        "lifecycleState": device.lifecycle.value,
    }


def module_to_json(module: Module) -> dict[str, Any]:
    """A module identity as IoT Hub renders it."""
    return {
        "moduleId": module.module_id,
        "managedBy": module.managed_by,
        "deviceId": module.device_id,
        "generationId": module.generation_id,
        "etag": module.etag,
        "connectionState": module.connection_state.value,
        "connectionStateUpdatedTime": format_time(module.connection_state_updated),
        "lastActivityTime": format_time(module.last_activity),
        "cloudToDeviceMessageCount": module.c2d_count,
        "authentication": _auth_to_json(module.authentication),
    }


def twin_to_json(twin: Twin, identity: Device | Module) -> dict[str, Any]:
    """A twin as IoT Hub renders it (also the document twin queries run over)."""
    auth = identity.authentication
    doc: dict[str, Any] = {"deviceId": twin.device_id}
    if twin.module_id is not None:
        doc["moduleId"] = twin.module_id
    doc.update(
        {
            "etag": twin.etag,
            "deviceEtag": identity.etag,
            "version": twin.version,
            "connectionState": identity.connection_state.value,
            "lastActivityTime": format_time(identity.last_activity),
            "cloudToDeviceMessageCount": identity.c2d_count,
            "authenticationType": auth.type.value,
            "x509Thumbprint": {
                "primaryThumbprint": auth.primary_thumbprint,
                "secondaryThumbprint": auth.secondary_thumbprint,
            },
            "modelId": "",
            "tags": twin.tags,
            "properties": {
                "desired": {**twin.desired, "$version": twin.desired_version},
                "reported": {**twin.reported, "$version": twin.reported_version},
            },
        }
    )
    if isinstance(identity, Device):
        doc["status"] = identity.status.value
        doc["statusReason"] = identity.status_reason
        doc["statusUpdateTime"] = format_time(identity.status_updated)
        doc["capabilities"] = {"iotEdge": identity.iot_edge}
    return doc


def _opt_str(value: Any, field: str, max_len: int = 512) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInputError(
            f"{field} must be a string of at most {max_len} characters", field=field
        )
    return value


def _obj(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{field} must be a JSON object", field=field)
    return value


def auth_spec_from_json(body: dict[str, Any]) -> AuthSpec:
    """The requested authentication in a device or module body (default: sas)."""
    auth = _obj(body.get("authentication"), "authentication")
    raw_type = auth.get("type", "sas") or "sas"
    try:
        auth_type = AuthType(raw_type)
    except ValueError:
        raise InvalidInputError(
            "authentication.type must be sas, selfSigned, certificateAuthority or none",
            field="authentication.type",
        ) from None
    keys = _obj(auth.get("symmetricKey"), "authentication.symmetricKey")
    prints = _obj(auth.get("x509Thumbprint"), "authentication.x509Thumbprint")
    return AuthSpec(
        type=auth_type,
        primary_key=_opt_str(keys.get("primaryKey"), "primaryKey"),
        secondary_key=_opt_str(keys.get("secondaryKey"), "secondaryKey"),
        primary_thumbprint=_opt_str(prints.get("primaryThumbprint"), "primaryThumbprint"),
        secondary_thumbprint=_opt_str(prints.get("secondaryThumbprint"), "secondaryThumbprint"),
    )


def device_settings_from_json(body: dict[str, Any]) -> tuple[DeviceStatus, str | None, bool]:
    """Status, status reason and the iotEdge capability from a device body."""
    raw = body.get("status") or "enabled"
    try:
        status = DeviceStatus(raw)
    except ValueError:
        raise InvalidInputError("status must be enabled or disabled", field="status") from None
    reason = _opt_str(body.get("statusReason"), "statusReason", 128)
    caps = _obj(body.get("capabilities"), "capabilities")
    edge = caps.get("iotEdge", False)
    if not isinstance(edge, bool):
        raise InvalidInputError("capabilities.iotEdge must be true or false", field="capabilities")
    return status, reason, edge


def configuration_from_json(configuration_id: str, body: dict[str, Any]) -> Configuration:
    """A configuration from its IoT Hub JSON body."""
    body_id = body.get("id")
    if body_id not in (None, configuration_id):
        raise InvalidInputError("id in the body differs from the id in the path", field="id")
    labels = _obj(body.get("labels"), "labels")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise InvalidInputError("labels must map strings to strings", field="labels")
    content = _obj(body.get("content"), "content")
    target = body.get("targetCondition") or ""
    if not isinstance(target, str) or len(target) > 8192:
        raise InvalidInputError("targetCondition must be a string", field="targetCondition")
    priority = body.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
        raise InvalidInputError("priority must be a non-negative integer", field="priority")
    metrics = _obj(body.get("metrics"), "metrics")
    queries = _obj(metrics.get("queries"), "metrics.queries")
    return Configuration(
        configuration_id=configuration_id,
        etag="",
        schema_version=str(body.get("schemaVersion") or "1.0"),
        labels=labels,
        content=content,
        target_condition=target,
        priority=priority,
        metrics={"results": {}, "queries": queries},
    )


def configuration_to_json(conf: Configuration) -> dict[str, Any]:
    """A configuration as IoT Hub renders it."""
    return {
        "id": conf.configuration_id,
        "schemaVersion": conf.schema_version,
        "labels": conf.labels,
        "content": conf.content,
        "contentType": "assignment",
        "targetCondition": conf.target_condition,
        "createdTimeUtc": format_time(conf.created),
        "lastUpdatedTimeUtc": format_time(conf.updated),
        "priority": conf.priority,
        "systemMetrics": {"results": {}, "queries": {}},
        "metrics": conf.metrics or {"results": {}, "queries": {}},
        "etag": conf.etag,
    }


def certificate_to_json(cert: IssuedCertificate) -> dict[str, Any]:
    """An issued certificate record."""
    return {
        "serialNumber": str(cert.serial),
        "serialNumberHex": format(cert.serial, "X"),
        "deviceId": cert.device_id,
        "subject": cert.subject,
        "notBefore": format_time(cert.not_before),
        "notAfter": format_time(cert.not_after),
        "sha256Thumbprint": cert.sha256_thumbprint,
        "revoked": cert.revoked,
        "revokedAt": format_time(cert.revoked_at),
        "revocationReason": cert.revocation_reason,
        "certificate": cert.pem,
    }


# -- bulk registry operations (POST /devices) -------------------------------------------

# ExportImportDevice's fields (api-version 2021-04-12). Each mode uses some of them and
# ignores the others, as IoT Hub does: Microsoft's .NET SDK sends a device's status and
# authentication with every entry, deletes and twin updates included. deviceScope and
# parentScopes are always ignored: wellguard has no gateway scopes.
_IMPORT_FIELDS = frozenset(
    {
        "id",
        "moduleId",
        "eTag",
        "importMode",
        "status",
        "statusReason",
        "authentication",
        "twinETag",
        "tags",
        "properties",
        "capabilities",
        "deviceScope",
        "parentScopes",
    }
)


def import_entries_from_json(body: Any) -> list[ImportEntry]:
    """The entries of a bulk registry operation: a JSON array of ExportImportDevice
    objects. A malformed entry refuses the whole request, naming the entry."""
    if not isinstance(body, list):
        raise InvalidInputError("request body must be a JSON array of ExportImportDevice objects")
    check_entry_count(len(body))
    entries = []
    for index, doc in enumerate(body):
        try:
            entries.append(_import_entry(doc))
        except InvalidInputError as exc:
            field = f"[{index}]" + (f".{exc.field}" if exc.field else "")
            raise InvalidInputError(f"entry {index}: {exc}", field=field) from None
    return entries


def _import_entry(doc: Any) -> ImportEntry:
    if not isinstance(doc, dict):
        raise InvalidInputError("must be a JSON object")
    unknown = sorted(set(doc) - _IMPORT_FIELDS)
    if unknown:
        raise InvalidInputError(f"unknown field {unknown[0]!r}", field=unknown[0])
    raw_mode: Any = doc.get("importMode")
    raw_id: Any = doc.get("id")
    try:
        mode = ImportMode(raw_mode)
    except ValueError:
        raise InvalidInputError(
            "importMode must be one of " + ", ".join(ImportMode), field="importMode"
        ) from None
    device_id = validate_device_id(raw_id, field="id")
    module_id = doc.get("moduleId")
    if module_id is not None:
        validate_module_id(module_id)
    etag = _opt_str(doc.get("eTag"), "eTag")
    twin_etag = _opt_str(doc.get("twinETag"), "twinETag")
    entry = ImportEntry(
        device_id,
        mode,
        DeviceSettings(auth_spec_from_json(doc), *device_settings_from_json(doc)),
        module_id=module_id,
        etag=expected_etag(etag),
        twin_etag=expected_etag(twin_etag),
        tags=_optional_obj(doc.get("tags"), "tags"),
        desired=_desired_properties(doc),
    )
    if mode.matches_etag and entry.expected_etag is None:
        field = "twinETag" if mode.changes_twin else "eTag"
        raise InvalidInputError(f"importMode {mode} needs {field}", field=field)
    return entry


def _optional_obj(value: Any, field: str) -> dict[str, Any] | None:
    return None if value is None else _obj(value, field)


def _desired_properties(doc: dict[str, Any]) -> dict[str, Any] | None:
    properties = _obj(doc.get("properties"), "properties")
    if properties.get("reported"):
        raise InvalidInputError(
            "reported properties are written by the device, not the service",
            field="properties.reported",
        )
    return _optional_obj(properties.get("desired"), "properties.desired")


def registry_error_code(error: InvalidInputError | RegistryError) -> str:
    """IoT Hub's error code for a registry error."""
    if isinstance(error, AlreadyExistsError):
        return "ModuleAlreadyExistsOnDevice" if error.kind == "module" else "DeviceAlreadyExists"
    if isinstance(error, NotFoundError):
        return "ModuleNotFound" if error.kind == "module" else "DeviceNotFound"
    if isinstance(error, PreconditionFailedError):
        return "PreconditionFailed"
    return "ArgumentInvalid"


def import_result_to_json(result: ImportResult) -> dict[str, Any]:
    """A BulkRegistryOperationResult: whether every entry applied, and which did not."""
    errors = []
    for failure in result.failures:
        error: dict[str, Any] = {
            "deviceId": failure.entry.device_id,
            "errorCode": registry_error_code(failure.error),
            "errorStatus": str(failure.error),
            "operation": failure.entry.mode.value,
        }
        if failure.entry.module_id is not None:
            error["moduleId"] = failure.entry.module_id
        errors.append(error)
    return {"isSuccessful": result.succeeded, "errors": errors, "warnings": []}

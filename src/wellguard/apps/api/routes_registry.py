"""IoT Hub's service REST API: devices, modules, twins, queries, statistics, methods,
configurations — shaped so that Microsoft's ``azure-iot-hub`` SDK drives it unchanged."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from wellguard.apps.api.auth import Caller, requires
from wellguard.apps.api.context import MethodTimeoutError
from wellguard.apps.api.errors import error_response
from wellguard.apps.api.inputs import api_context, check_page_size, json_object
from wellguard.apps.api.wire import (
    auth_spec_from_json,
    configuration_from_json,
    configuration_to_json,
    device_settings_from_json,
    device_to_json,
    expected_etag,
    import_entries_from_json,
    import_result_to_json,
    module_to_json,
    twin_to_json,
)
from wellguard.core.iotquery import QuerySource, parse_condition, parse_query, run_query
from wellguard.core.registry.bulk import repeated_identities
from wellguard.errors import InvalidInputError
from wellguard.model.ids import validate_device_id, validate_module_id
from wellguard.model.policy import AccessRights as R

__all__ = ["router"]

router = APIRouter()

READ = Depends(requires(R.REGISTRY_READ))
WRITE = Depends(requires(R.REGISTRY_WRITE))
TWIN_READ = Depends(requires(R.SERVICE_CONNECT, R.REGISTRY_READ))
SERVICE = Depends(requires(R.SERVICE_CONNECT))

IfMatch = Annotated[str | None, Header(alias="If-Match")]
JsonBody = Annotated[Any, Body()]


def _with_etag(body: dict[str, Any], status: int = 200) -> JSONResponse:
    response = JSONResponse(body, status_code=status)
    if body.get("etag"):
        response.headers["ETag"] = f'"{body["etag"]}"'
    return response


# -- devices ----------------------------------------------------------------------------


@router.put("/devices/{device_id}", tags=["devices"])
def put_device(
    request: Request,
    device_id: str,
    body: JsonBody,
    caller: Caller = WRITE,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Create a device (no If-Match) or replace it (If-Match: etag or ``*``)."""
    validate_device_id(device_id)
    doc = json_object(body)
    if doc.get("deviceId") not in (None, device_id):
        raise InvalidInputError("deviceId in the body differs from the path", field="deviceId")
    auth = auth_spec_from_json(doc)
    status, reason, edge = device_settings_from_json(doc)
    registry = api_context(request).registry
    if if_match is None:
        device = registry.create_device(
            device_id,
            auth,
            actor=caller.actor,
            status=status,
            status_reason=reason,
            iot_edge=edge,
        )
    else:
        device = registry.update_device(
            device_id,
            auth,
            actor=caller.actor,
            expected_etag=expected_etag(if_match),
            status=status,
            status_reason=reason,
            iot_edge=edge,
        )
    return _with_etag(device_to_json(device))


@router.post("/devices", tags=["devices"])
def bulk_registry_operation(
    request: Request, body: JsonBody, caller: Caller = WRITE
) -> JSONResponse:
    """IoT Hub's bulk registry operation: create, replace, delete or patch the twins of up
    to 100 devices, each on its own. 200 when every entry applied; 400 with the failed
    entries in ``errors`` (the others applied) or, for a malformed request, nothing applied."""
    try:
        entries = import_entries_from_json(body)
    except InvalidInputError as exc:
        return _bulk_refusal("ArgumentInvalid", str(exc), exc.field)
    repeated = repeated_identities(entries)
    if repeated:
        message = "each identity may appear once per call; repeated: " + ", ".join(repeated)
        return _bulk_refusal("DeviceDefinedMultipleTimes", message, "id")
    result = api_context(request).registry.bulk_import(entries, actor=caller.actor)
    if result.succeeded:
        return JSONResponse(import_result_to_json(result))
    response = JSONResponse(import_result_to_json(result), status_code=400)
    # IoT Hub marks a partly applied call so that its SDKs read the result, not an error.
    response.headers["IotHubErrorCode"] = "BulkRegistryOperationFailure"
    return response


def _bulk_refusal(code: str, message: str, field: str | None) -> JSONResponse:
    # An error body that still reads as a BulkRegistryOperationResult, as the SDKs
    # deserialize any 400 of this call into one.
    extra = {"field": field} if field else {}
    return error_response(400, code, message, isSuccessful=False, errors=[], warnings=[], **extra)


@router.get("/devices/{device_id}", tags=["devices"])
def get_device(request: Request, device_id: str, _caller: Caller = READ) -> JSONResponse:
    """One device."""
    return _with_etag(device_to_json(api_context(request).registry.get_device(device_id)))


@router.delete("/devices/{device_id}", status_code=204, tags=["devices"])
def delete_device(
    request: Request, device_id: str, caller: Caller = WRITE, if_match: IfMatch = None
) -> Response:
    """Delete a device (If-Match etag or ``*``)."""
    api_context(request).registry.delete_device(
        device_id, actor=caller.actor, expected_etag=expected_etag(if_match)
    )
    return Response(status_code=204)


@router.get("/devices", tags=["devices"])
def list_devices(
    request: Request, top: int | None = None, after: str | None = None, _caller: Caller = READ
) -> JSONResponse:
    """Devices by id; ``top`` per page (max 1000), next page with ``after`` (in
    the ``x-ms-continuation`` response header)."""
    ctx = api_context(request)
    limit = top if top is not None else ctx.config.api.page_size
    if not 1 <= limit <= 1000:
        raise InvalidInputError("top must be 1-1000", field="top")
    devices = ctx.registry.list_devices(after=after, limit=limit)
    response = JSONResponse([device_to_json(d) for d in devices])
    if len(devices) == limit:
        response.headers["x-ms-continuation"] = devices[-1].device_id
    return response


# -- modules ----------------------------------------------------------------------------


@router.put("/devices/{device_id}/modules/{module_id}", tags=["modules"])
def put_module(
    request: Request,
    device_id: str,
    module_id: str,
    body: JsonBody,
    caller: Caller = WRITE,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Create or replace a module identity."""
    validate_device_id(device_id)
    validate_module_id(module_id)
    doc = json_object(body)
    if doc.get("moduleId") not in (None, module_id):
        raise InvalidInputError("moduleId in the body differs from the path", field="moduleId")
    auth = auth_spec_from_json(doc)
    managed_by = doc.get("managedBy")
    if managed_by is not None and not isinstance(managed_by, str):
        raise InvalidInputError("managedBy must be a string", field="managedBy")
    registry = api_context(request).registry
    if if_match is None:
        module = registry.create_module(
            device_id, module_id, auth, actor=caller.actor, managed_by=managed_by
        )
    else:
        module = registry.update_module(
            device_id,
            module_id,
            auth,
            actor=caller.actor,
            expected_etag=expected_etag(if_match),
            managed_by=managed_by,
        )
    return _with_etag(module_to_json(module))


@router.get("/devices/{device_id}/modules/{module_id}", tags=["modules"])
def get_module(
    request: Request, device_id: str, module_id: str, _caller: Caller = READ
) -> JSONResponse:
    """One module identity."""
    return _with_etag(
        module_to_json(api_context(request).registry.get_module(device_id, module_id))
    )


@router.get("/devices/{device_id}/modules", tags=["modules"])
def list_modules(request: Request, device_id: str, _caller: Caller = READ) -> JSONResponse:
    """The module identities of a device."""
    modules = api_context(request).registry.list_modules(device_id)
    return JSONResponse([module_to_json(m) for m in modules])


@router.delete("/devices/{device_id}/modules/{module_id}", status_code=204, tags=["modules"])
def delete_module(
    request: Request,
    device_id: str,
    module_id: str,
    caller: Caller = WRITE,
    if_match: IfMatch = None,
) -> Response:
    """Delete a module identity."""
    api_context(request).registry.delete_module(
        device_id, module_id, actor=caller.actor, expected_etag=expected_etag(if_match)
    )
    return Response(status_code=204)


# -- twins ------------------------------------------------------------------------------


def _twin_response(request: Request, device_id: str, module_id: str | None) -> JSONResponse:
    twin, identity = api_context(request).registry.get_twin(device_id, module_id)
    return _with_etag(twin_to_json(twin, identity))


def _change_twin(
    request: Request,
    device_id: str,
    module_id: str | None,
    body: Any,
    caller: Caller,
    if_match: str | None,
    *,
    replace_all: bool,
) -> JSONResponse:
    doc = json_object(body)
    properties = doc.get("properties") or {}
    if not isinstance(properties, dict):
        raise InvalidInputError("properties must be a JSON object", field="properties")
    if properties.get("reported"):
        raise InvalidInputError(
            "reported properties are written by the device, not the service",
            field="properties.reported",
        )
    twin, identity = api_context(request).registry.update_twin(
        device_id,
        module_id,
        tags=doc.get("tags"),
        desired=properties.get("desired"),
        replace_all=replace_all,
        expected_etag=expected_etag(if_match),
        actor=caller.actor,
    )
    return _with_etag(twin_to_json(twin, identity))


@router.get("/twins/{device_id}", tags=["twins"])
def get_twin(request: Request, device_id: str, _caller: Caller = TWIN_READ) -> JSONResponse:
    """A device twin."""
    return _twin_response(request, device_id, None)


@router.patch("/twins/{device_id}", tags=["twins"])
def update_twin(
    request: Request,
    device_id: str,
    body: JsonBody,
    caller: Caller = SERVICE,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Merge tags and desired properties into a device twin."""
    return _change_twin(request, device_id, None, body, caller, if_match, replace_all=False)


@router.put("/twins/{device_id}", tags=["twins"])
def replace_twin(
    request: Request,
    device_id: str,
    body: JsonBody,
    caller: Caller = SERVICE,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Replace tags and desired properties of a device twin."""
    return _change_twin(request, device_id, None, body, caller, if_match, replace_all=True)


@router.get("/twins/{device_id}/modules/{module_id}", tags=["twins"])
def get_module_twin(
    request: Request, device_id: str, module_id: str, _caller: Caller = TWIN_READ
) -> JSONResponse:
    """A module twin."""
    return _twin_response(request, device_id, module_id)


@router.patch("/twins/{device_id}/modules/{module_id}", tags=["twins"])
def update_module_twin(
    request: Request,
    device_id: str,
    module_id: str,
    body: JsonBody,
    caller: Caller = SERVICE,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Merge tags and desired properties into a module twin."""
    return _change_twin(request, device_id, module_id, body, caller, if_match, replace_all=False)


@router.put("/twins/{device_id}/modules/{module_id}", tags=["twins"])
def replace_module_twin(
    request: Request,
    device_id: str,
    module_id: str,
    body: JsonBody,
    caller: Caller = SERVICE,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Replace tags and desired properties of a module twin."""
    return _change_twin(request, device_id, module_id, body, caller, if_match, replace_all=True)


# -- queries and statistics ---------------------------------------------------------------


def _continuation(query_text: str, offset: int) -> str:
    digest = hashlib.sha256(query_text.encode()).hexdigest()[:16]
    raw = json.dumps({"o": offset, "q": digest}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset_from(token: str | None, query_text: str) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = int(doc["o"])
        same = doc["q"] == hashlib.sha256(query_text.encode()).hexdigest()[:16]
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError("x-ms-continuation is not a token this hub issued") from None
    if not same or offset < 0:
        raise InvalidInputError("x-ms-continuation belongs to a different query")
    return offset


@router.post("/devices/query", tags=["twins"])
def query_twins(
    request: Request,
    body: JsonBody,
    _caller: Caller = TWIN_READ,
    continuation: Annotated[str | None, Header(alias="x-ms-continuation")] = None,
    max_items: Annotated[str | None, Header(alias="x-ms-max-item-count")] = None,
) -> JSONResponse:
    """IoT Hub's query language over device and module twins, paged."""
    doc = json_object(body)
    text = doc.get("query")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("query must be a non-empty string", field="query")
    query = parse_query(text)
    if query.source is QuerySource.JOBS:
        raise InvalidInputError("queries over devices.jobs are not supported", field="query")
    try:
        page_size = int(max_items) if max_items else 100
    except ValueError:
        raise InvalidInputError("x-ms-max-item-count must be an integer") from None
    if not 1 <= page_size <= 1000:
        raise InvalidInputError("x-ms-max-item-count must be 1-1000")
    offset = _offset_from(continuation, text)
    registry = api_context(request).registry
    modules = query.source is QuerySource.MODULES
    documents = (twin_to_json(t, i) for t, i in registry.iter_twins(modules=modules))
    rows = run_query(query, documents)
    page = rows[offset : offset + page_size]
    response = JSONResponse(page)
    response.headers["x-ms-item-type"] = "twin" if query.select.is_star else "raw"
    if offset + page_size < len(rows):
        response.headers["x-ms-continuation"] = _continuation(text, offset + page_size)
    return response


@router.get("/statistics/service", tags=["statistics"])
def service_statistics(request: Request, _caller: Caller = TWIN_READ) -> dict[str, int]:
    """Connected device count."""
    return {"connectedDeviceCount": api_context(request).registry.statistics()["connected"]}


@router.get("/statistics/devices", tags=["statistics"])
def device_statistics(request: Request, _caller: Caller = READ) -> dict[str, int]:
    """Device counts by status."""
    stats = api_context(request).registry.statistics()
    return {
        "totalDeviceCount": stats["total"],
        "enabledDeviceCount": stats.get("enabled", 0),
        "disabledDeviceCount": stats.get("disabled", 0),
    }


# -- direct methods -----------------------------------------------------------------------


def _method_request(doc: dict[str, Any]) -> tuple[str, Any, float, float]:
    name = doc.get("methodName")
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or "/" in name:
        raise InvalidInputError(
            "methodName must be 1-128 characters without '/'", field="methodName"
        )
    timeouts = []
    for field, default in (("responseTimeoutInSeconds", 30), ("connectTimeoutInSeconds", 0)):
        value = doc.get(field, default)
        if value is None:
            value = default
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidInputError(f"{field} must be a number", field=field)
        lower = 5 if field == "responseTimeoutInSeconds" else 0
        if not lower <= value <= 300:
            raise InvalidInputError(f"{field} must be {lower}-300", field=field)
        timeouts.append(float(value))
    return name, doc.get("payload"), timeouts[0], timeouts[1]


async def _invoke(
    request: Request, device_id: str, module_id: str | None, body: Any
) -> JSONResponse:
    ctx = api_context(request)
    name, payload, response_timeout, connect_timeout = _method_request(json_object(body))
    if module_id:
        await run_in_threadpool(ctx.registry.get_module, device_id, module_id)
    else:
        await run_in_threadpool(ctx.registry.get_device, device_id)
    try:
        result = await ctx.methods.invoke(
            device_id,
            module_id,
            name,
            payload,
            response_timeout=response_timeout,
            connect_timeout=connect_timeout,
        )
    except MethodTimeoutError:
        return error_response(
            504,
            "GatewayTimeoutException",
            f"Timed out waiting for the response from device {device_id}.",
        )
    if result is None:
        return error_response(
            404, "DeviceNotOnline", f"Timed out waiting for device {device_id} to connect."
        )
    return JSONResponse({"status": result.status, "payload": result.payload})


@router.post("/twins/{device_id}/methods", tags=["methods"])
async def invoke_method(
    request: Request, device_id: str, body: JsonBody, _caller: Caller = SERVICE
) -> JSONResponse:
    """Invoke a direct method on a connected device."""
    return await _invoke(request, device_id, None, body)


@router.post("/twins/{device_id}/modules/{module_id}/methods", tags=["methods"])
async def invoke_module_method(
    request: Request, device_id: str, module_id: str, body: JsonBody, _caller: Caller = SERVICE
) -> JSONResponse:
    """Invoke a direct method on a connected module."""
    return await _invoke(request, device_id, module_id, body)


# -- configurations -----------------------------------------------------------------------


@router.put("/configurations/{configuration_id}", tags=["configurations"])
def put_configuration(
    request: Request,
    configuration_id: str,
    body: JsonBody,
    caller: Caller = WRITE,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Create or update an automatic device configuration."""
    conf = configuration_from_json(configuration_id, json_object(body))
    if conf.target_condition.strip():
        parse_condition(conf.target_condition)
    stored, _created = api_context(request).registry.put_configuration(
        conf, actor=caller.actor, expected_etag=expected_etag(if_match)
    )
    return _with_etag(configuration_to_json(stored))


@router.get("/configurations/{configuration_id}", tags=["configurations"])
def get_configuration(
    request: Request, configuration_id: str, _caller: Caller = READ
) -> JSONResponse:
    """One configuration."""
    conf = api_context(request).registry.get_configuration(configuration_id)
    return _with_etag(configuration_to_json(conf))


@router.get("/configurations", tags=["configurations"])
def list_configurations(request: Request, top: int = 20, _caller: Caller = READ) -> JSONResponse:
    """Configurations (``top`` at most, up to 1000)."""
    check_page_size(top)
    confs = api_context(request).registry.list_configurations(top)
    return JSONResponse([configuration_to_json(c) for c in confs])


@router.delete("/configurations/{configuration_id}", status_code=204, tags=["configurations"])
def delete_configuration(
    request: Request, configuration_id: str, caller: Caller = WRITE, if_match: IfMatch = None
) -> Response:
    """Delete a configuration."""
    api_context(request).registry.delete_configuration(
        configuration_id, actor=caller.actor, expected_etag=expected_etag(if_match)
    )
    return Response(status_code=204)

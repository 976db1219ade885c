"""Device communication over REST: C2D send/purge/feedback, the HTTPS device endpoint,
telemetry queries, IP filter rules, metrics and status."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest

from wellguard.apps.api.auth import Caller, peer_of, requires
from wellguard.apps.api.deviceplane import DevicePlane
from wellguard.apps.api.errors import error_response
from wellguard.apps.api.inputs import api_context, check_page_size, json_object
from wellguard.apps.api.wire import format_time
from wellguard.core.c2d import C2dQueueFullError
from wellguard.core.gateway import CounterName
from wellguard.core.identity import IpFilterAction, IpFilterRule, verify_device_sas
from wellguard.core.registry.events import ChangeKind, RegistryChange
from wellguard.errors import AuthError, AuthFailureReason, InvalidInputError, WellguardError
from wellguard.model.c2d import C2dAck
from wellguard.model.message import DeviceMessage, MessageSource, SystemProperty
from wellguard.model.policy import AccessRights as R
from wellguard.model.security_event import HubSecurityEvent

__all__ = ["router"]

router = APIRouter()

SERVICE = Depends(requires(R.SERVICE_CONNECT))
READ = Depends(requires(R.REGISTRY_READ))
TWIN_READ = Depends(requires(R.SERVICE_CONNECT, R.REGISTRY_READ))
OWNER = Depends(requires(R.REGISTRY_READ | R.REGISTRY_WRITE | R.SERVICE_CONNECT))
JsonBody = Annotated[Any, Body()]

_HTTP_SYSTEM_HEADERS = {
    "iothub-messageid": SystemProperty.MESSAGE_ID,
    "iothub-correlationid": SystemProperty.CORRELATION_ID,
    "iothub-userid": SystemProperty.USER_ID,
    "iothub-contenttype": SystemProperty.CONTENT_TYPE,
    "iothub-contentencoding": SystemProperty.CONTENT_ENCODING,
    "iothub-creation-time-utc": SystemProperty.CREATION_TIME,
    "iothub-interface-id": SystemProperty.INTERFACE_ID,
    "dt-dataschema": SystemProperty.DATA_SCHEMA,
    "dt-subject": SystemProperty.COMPONENT_NAME,
}


def _plane(request: Request) -> DevicePlane:
    plane: DevicePlane | None = getattr(request.app.state, "device_plane", None)
    if plane is None:
        raise WellguardError("the device gateway is not running in this process")
    return plane


def _str_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in value.items()
    ):
        raise InvalidInputError(f"{field} must map names to strings", field=field)
    return {k: str(v) for k, v in value.items()}


def _body_bytes(doc: dict[str, Any]) -> bytes:
    body = doc.get("body", "")
    encoding = doc.get("bodyEncoding", "utf-8")
    if encoding == "base64":
        if not isinstance(body, str):
            raise InvalidInputError("a base64 body must be a string", field="body")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputError("body is not valid base64", field="body") from None
    if encoding != "utf-8":
        raise InvalidInputError("bodyEncoding must be utf-8 or base64", field="bodyEncoding")
    if isinstance(body, str):
        return body.encode("utf-8")
    return orjson.dumps(body)


# -- C2D --------------------------------------------------------------------------------


@router.post("/devices/{device_id}/messages/deviceBound", tags=["c2d"])
def send_c2d(
    request: Request, device_id: str, body: JsonBody, _caller: Caller = SERVICE
) -> JSONResponse:
    """Queue a cloud-to-device message. Body: ``{"body": ..., "bodyEncoding": "utf-8"|
    "base64", "properties": {...}, "messageId", "correlationId", "contentType",
    "contentEncoding", "ttlSeconds" | "expiryTimeUtc", "ack": none|positive|negative|full}``."""
    doc = json_object(body)
    ttl_value = doc.get("ttlSeconds")
    ttl = None
    if ttl_value is not None:
        if not isinstance(ttl_value, int) or isinstance(ttl_value, bool) or ttl_value <= 0:
            raise InvalidInputError("ttlSeconds must be a positive integer", field="ttlSeconds")
        ttl = timedelta(seconds=ttl_value)
    expiry = None
    if doc.get("expiryTimeUtc") is not None:
        try:
            expiry = datetime.fromisoformat(str(doc["expiryTimeUtc"]).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                "expiryTimeUtc must be ISO-8601", field="expiryTimeUtc"
            ) from None
        if expiry.tzinfo is None:
            raise InvalidInputError("expiryTimeUtc needs a time zone", field="expiryTimeUtc")
    try:
        ack = C2dAck(doc.get("ack") or "none")
    except ValueError:
        raise InvalidInputError(
            "ack must be none, positive, negative or full", field="ack"
        ) from None
    message_id = doc.get("messageId")
    if message_id is not None and not isinstance(message_id, str):
        raise InvalidInputError("messageId must be a string", field="messageId")
    system = {
        k: str(doc[k])
        for k in ("correlationId", "contentType", "contentEncoding", "userId")
        if doc.get(k)
    }
    try:
        message = _plane(request).c2d.send(
            device_id,
            _body_bytes(doc),
            message_id=message_id,
            ttl=ttl,
            expiry=expiry,
            ack=ack,
            system=system,
            app=_str_map(doc.get("properties"), "properties"),
        )
    except C2dQueueFullError as exc:
        return error_response(403, "DeviceMaximumQueueDepthExceeded", str(exc))
    return JSONResponse(
        {
            "deviceId": device_id,
            "messageId": message.message_id,
            "enqueuedTimeUtc": format_time(message.enqueued_at),
            "expiryTimeUtc": format_time(message.expires_at),
            "ack": message.ack.value,
        }
    )


@router.delete("/devices/{device_id}/commands", tags=["c2d"])
def purge_c2d(request: Request, device_id: str, _caller: Caller = SERVICE) -> dict[str, Any]:
    """Drop every queued C2D message of a device (IoT Hub's purge queue)."""
    api_context(request).registry.get_device(device_id)
    purged = _plane(request).c2d.purge(device_id)
    return {"deviceId": device_id, "totalMessagesPurged": purged}


@router.get("/messages/deviceBound/feedback", tags=["c2d"])
def c2d_feedback(
    request: Request, after: int | None = None, top: int = 100, _caller: Caller = SERVICE
) -> list[dict[str, Any]]:
    """Delivery feedback records (success, expired), oldest first."""
    check_page_size(top)
    return [
        {
            "id": f.id,
            "enqueuedTimeUtc": format_time(f.at),
            "deviceId": f.device_id,
            "originalMessageId": f.message_id,
            "statusCode": f.outcome.value.capitalize(),
            "description": f.description,
        }
        for f in _plane(request).c2d.feedback(after=after, limit=top)
    ]


# -- HTTPS device endpoint ---------------------------------------------------------------------


@router.post("/devices/{device_id}/messages/events", status_code=204, tags=["devices-https"])
async def device_telemetry(request: Request, device_id: str) -> Response:
    """Telemetry from a device that cannot keep a connection: device SAS token in
    ``Authorization``, body as is, properties in ``iothub-app-*`` headers. 204 once durable."""
    ctx = api_context(request)
    plane = _plane(request)
    source = peer_of(request)
    token = request.headers.get("authorization", "")

    def authenticate() -> None:
        registry = ctx.registry
        policies = {p.name: p for p in registry.list_policies()}
        verify_device_sas(
            token,
            device=registry.store.get_device(device_id),
            module=None,
            device_id=device_id,
            hub_hosts=list(ctx.hub_hosts),
            now=ctx.clock(),
            policies=policies,
            max_ttl_seconds=ctx.config.security.sas_max_ttl_seconds,
            clock_skew_seconds=ctx.config.security.clock_skew_seconds,
        )

    try:
        if not token:
            raise AuthError(AuthFailureReason.MISSING_CREDENTIALS, identity=device_id)
        await run_in_threadpool(authenticate)
    except AuthError as exc:
        event = HubSecurityEvent(
            at=ctx.clock(),
            kind="https.telemetry",
            reason=exc.reason.value,
            identity=exc.identity or device_id,
            source=source,
            detail=exc.detail,
        )
        await run_in_threadpool(ctx.security_log.record, event)
        raise
    decision = plane.throttle(device_id)
    if decision.delay > 0 or decision.disconnect:
        response = error_response(429, "ThrottlingException", "device is sending too fast")
        response.headers["Retry-After"] = str(max(1, int(decision.delay + 0.999)))
        return response
    body = await request.body()
    if len(body) > 256 * 1024:
        return error_response(413, "MessageTooLarge", "D2C messages are limited to 256 KB")
    system: dict[str, str] = {}
    app: dict[str, str] = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in _HTTP_SYSTEM_HEADERS:
            system[_HTTP_SYSTEM_HEADERS[lower].value] = value
        elif lower.startswith("iothub-app-"):
            app[name[len("iothub-app-") :]] = value
    if len(app) > 64:
        raise InvalidInputError("at most 64 application properties")
    message = DeviceMessage(
        device_id=device_id,
        module_id=None,
        enqueued_at=ctx.clock(),
        source=MessageSource.TELEMETRY,
        body=body,
        system_properties=system,
        app_properties=app,
    )
    plane.count(device_id, CounterName.D2C)
    await plane.journal.submit(message)
    return Response(status_code=204)


# -- telemetry query ---------------------------------------------------------------------------


def _time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{field} must be ISO-8601", field=field) from None
    if parsed.tzinfo is None:
        raise InvalidInputError(f"{field} needs a time zone", field=field)
    return parsed


@router.get("/devices/{device_id}/telemetry", tags=["telemetry"])
def device_telemetry_query(
    request: Request,
    device_id: str,
    start: str | None = None,
    end: str | None = None,
    after: int | None = None,
    top: int = 100,
    _caller: Caller = TWIN_READ,
) -> JSONResponse:
    """Stored telemetry of a device, oldest first, a page at a time (``after`` = the
    last ``seq`` seen; also in ``x-ms-continuation``)."""
    check_page_size(top)
    entries = _plane(request).telemetry.query(
        device_id, start=_time(start, "start"), end=_time(end, "end"), after_seq=after, limit=top
    )
    rows = []
    for entry in entries:
        m = entry.message
        try:
            body: Any = m.body.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(m.body).decode("ascii"), "base64"
        rows.append(
            {
                "seq": entry.seq,
                "deviceId": m.device_id,
                "moduleId": m.module_id,
                "enqueuedTimeUtc": format_time(m.enqueued_at),
                "systemProperties": m.system_properties,
                "properties": m.app_properties,
                "body": body,
                "bodyEncoding": encoding,
            }
        )
    response = JSONResponse(rows)
    if len(entries) == top:
        response.headers["x-ms-continuation"] = str(entries[-1].seq)
    return response


# -- IP filter ---------------------------------------------------------------------------------


@router.get("/ipfilter", tags=["hub"])
def get_ip_filter(request: Request, _caller: Caller = READ) -> dict[str, Any]:
    """IP filter rules in evaluation order (first match wins) and the default action."""
    rules = _plane(request).ip_filter.rules()
    return {
        "defaultAction": api_context(request).config.security.ip_filter_default_action,
        "ipFilterRules": [
            {"filterName": r.name, "action": r.action.value.capitalize(), "ipMask": r.cidr}
            for r in rules
        ],
    }


@router.put("/ipfilter", tags=["hub"])
def put_ip_filter(request: Request, body: JsonBody, caller: Caller = OWNER) -> dict[str, Any]:
    """Replace the IP filter rules; live connections that no longer pass are closed."""
    doc = json_object(body)
    raw_rules = doc.get("ipFilterRules")
    if not isinstance(raw_rules, list) or len(raw_rules) > 100:
        raise InvalidInputError(
            "ipFilterRules must be a list of at most 100 rules", field="ipFilterRules"
        )
    rules = []
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            raise InvalidInputError(f"ipFilterRules[{index}] must be an object")
        action = str(raw.get("action", "")).lower()
        if action not in ("accept", "reject"):
            raise InvalidInputError(f"ipFilterRules[{index}].action must be Accept or Reject")
        rules.append(
            IpFilterRule(
                name=str(raw.get("filterName") or f"rule-{index}"),
                cidr=str(raw.get("ipMask", "")),
                action=IpFilterAction(action),
            )
        )
    ctx = api_context(request)
    _plane(request).ip_filter.replace(rules)
    ctx.registry.record(
        caller.actor,
        "ipfilter.replace",
        "hub",
        rules=[r.cidr + ":" + r.action.value for r in rules],
    )
    ctx.registry.notifier.publish(RegistryChange(ChangeKind.IP_FILTER))
    return get_ip_filter(request)


# -- metrics and status --------------------------------------------------------------------------


@router.get("/metrics", tags=["hub"], response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics (text exposition format)."""
    return PlainTextResponse(
        generate_latest(_plane(request).metrics).decode("utf-8"),
        media_type="text/plain; version=0.0.4",
    )


@router.get("/status", tags=["hub"])
def status(request: Request, _caller: Caller = READ) -> dict[str, Any]:
    """The hub at a glance: connections, message counts, journal, devices."""
    plane = _plane(request)
    return {**plane.status(), "devices": api_context(request).registry.statistics()}

"""Message routing administration: endpoints, routes, the fallback route, a condition
tester and the dead letters. Shaped after IoT Hub's routing properties
(``endpointNames``, ``isEnabled``, ``$fallback``).

Reading needs RegistryRead, changing needs RegistryWrite; every change is audited.
Webhook header values are never sent back: they read as ``"<redacted>"``, and a PUT that
sends ``"<redacted>"`` for a header keeps the stored value, so GET-edit-PUT works.
The hub puts its ``RoutingStore`` in ``app.state.routing_store`` (and, when routing
runs, its ``RoutingWorker`` in ``app.state.routing_worker`` for ``/routing/stats``).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from wellguard.adapters.routing import DeadLetter, RoutingStore, encode_body
from wellguard.apps.api.auth import Caller, requires
from wellguard.apps.api.context import ApiContext
from wellguard.apps.api.inputs import check_page_size
from wellguard.core.ingest.routing import (
    BUILTIN_ENDPOINT,
    Endpoint,
    EndpointKind,
    Route,
    body_document,
    routing_resolver,
    validate_routing_name,
)
from wellguard.core.iotquery import evaluate_condition, parse_condition
from wellguard.errors import ConfigError, InvalidInputError, NotFoundError
from wellguard.model.ids import validate_device_id, validate_module_id
from wellguard.model.message import DeviceMessage, MessageSource
from wellguard.model.policy import AccessRights as R

__all__ = ["REDACTED", "router"]

router = APIRouter(prefix="/routing", tags=["routing"])

READ = Depends(requires(R.REGISTRY_READ))
WRITE = Depends(requires(R.REGISTRY_WRITE))
JsonBody = Annotated[Any, Body()]

REDACTED = "<redacted>"
_ENDPOINT_FIELDS = {"name", "kind", "url", "headers", "path", "allowHttp"}
_ROUTE_FIELDS = {"name", "source", "condition", "endpointNames", "isEnabled"}
_TEST_FIELDS = {"source", "deviceId", "moduleId", "appProperties", "systemProperties", "body"}
_TEST_FIELDS |= {"condition"}
_BODY_HINT = (
    "$body is undefined for this message: routing reads the body only when "
    "systemProperties has contentType 'application/json' and contentEncoding "
    "'utf-8' (or utf-16/utf-32), and the body is valid JSON"
)


def _store(request: Request) -> RoutingStore:
    store: RoutingStore | None = getattr(request.app.state, "routing_store", None)
    if store is None:
        raise ConfigError("message routing is not configured in this hub")
    return store


def _audit(request: Request, caller: Caller, action: str, target: str, **details: Any) -> None:
    ctx: ApiContext = request.app.state.ctx
    ctx.registry.record(caller.actor, action, target, **details)


def _object(body: Any, fields: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInputError("request body must be a JSON object")
    unknown = sorted(set(body) - fields)
    if unknown:
        raise InvalidInputError(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
    return body


def _flag(doc: dict[str, Any], key: str, default: bool) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError(f"{key} must be true or false", field=key)
    return value


def _string_map(value: Any, key: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInputError(f"{key} must be an object of strings", field=key)
    return value


def _source(value: Any) -> MessageSource:
    try:
        return MessageSource(value)
    except ValueError:
        raise InvalidInputError(
            "source must be one of " + ", ".join(s.value for s in MessageSource), field="source"
        ) from None


# -- wire forms -------------------------------------------------------------------------


def endpoint_to_json(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as the API shows it (header values redacted)."""
    doc: dict[str, Any] = {"name": endpoint.name, "kind": endpoint.kind.value}
    if endpoint.kind is EndpointKind.WEBHOOK:
        doc["url"] = endpoint.url
        doc["headers"] = dict.fromkeys(endpoint.headers, REDACTED)
        doc["allowHttp"] = endpoint.allow_http
    elif endpoint.kind is EndpointKind.JSONL:
        doc["path"] = endpoint.path
    return doc


def endpoint_from_json(name: str, body: Any, current: Endpoint | None) -> Endpoint:
    """Read a PUT body; ``current`` supplies header values sent back as redacted."""
    doc = _object(body, _ENDPOINT_FIELDS)
    if doc.get("name") not in (None, name):
        raise InvalidInputError("name in the body differs from the path", field="name")
    try:
        kind = EndpointKind(str(doc.get("kind")))
    except ValueError:
        raise InvalidInputError(
            "kind must be one of " + ", ".join(k.value for k in EndpointKind), field="kind"
        ) from None
    headers = _string_map(doc.get("headers"), "headers")
    kept = current.headers if current is not None else {}
    for key, value in headers.items():
        if value == REDACTED:
            if key not in kept:
                raise InvalidInputError(f"header {key!r} has no stored value", field="headers")
            headers[key] = kept[key]
    return Endpoint(
        name,
        kind,
        url=doc.get("url"),
        headers=headers,
        path=doc.get("path"),
        allow_http=_flag(doc, "allowHttp", False),
    )


def route_to_json(route: Route) -> dict[str, Any]:
    """A route in IoT Hub's shape."""
    return {
        "name": route.name,
        "source": route.source.value,
        "condition": route.condition,
        "endpointNames": list(route.endpoints),
        "isEnabled": route.enabled,
    }


def route_from_json(name: str, body: Any) -> Route:
    """Read a PUT body (condition errors are ``QueryError`` with line and column)."""
    doc = _object(body, _ROUTE_FIELDS)
    if doc.get("name") not in (None, name):
        raise InvalidInputError("name in the body differs from the path", field="name")
    condition = doc.get("condition", "true")
    if not isinstance(condition, str):
        raise InvalidInputError("condition must be text", field="condition")
    names = doc.get("endpointNames")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidInputError("endpointNames must be a list of names", field="endpointNames")
    return Route(
        name,
        _source(doc.get("source", MessageSource.TELEMETRY.value)),
        condition,
        tuple(names),
        enabled=_flag(doc, "isEnabled", True),
    )


def dead_letter_to_json(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter with its message and body (text or base64)."""
    body, encoding = encode_body(letter.body)
    return {
        "id": letter.id,
        "at": letter.at.isoformat(),
        "endpoint": letter.endpoint,
        "seq": letter.seq,
        "reason": letter.reason,
        "message": {**letter.message, "body": body, "bodyEncoding": encoding},
    }


# -- endpoints ------------------------------------------------------------------------


@router.get("/endpoints")
def list_endpoints(request: Request, _caller: Caller = READ) -> JSONResponse:
    """Every endpoint, the built-in one included."""
    return JSONResponse([endpoint_to_json(e) for e in _store(request).list_endpoints()])


@router.get("/endpoints/{name}")
def get_endpoint(request: Request, name: str, _caller: Caller = READ) -> JSONResponse:
    """One endpoint."""
    return JSONResponse(endpoint_to_json(_store(request).get_endpoint(name)))


@router.put("/endpoints/{name}")
def put_endpoint(request: Request, name: str, body: JsonBody, caller: Caller = WRITE) -> Response:
    """Create (201) or replace (200) an endpoint."""
    validate_routing_name(name, "endpoint")
    store = _store(request)
    try:
        current: Endpoint | None = store.get_endpoint(name)
    except NotFoundError:
        current = None
    endpoint = endpoint_from_json(name, body, current)
    created = store.put_endpoint(endpoint)
    _audit(
        request,
        caller,
        "routing.endpoint.put",
        name,
        kind=endpoint.kind.value,
        url=endpoint.url,
        path=endpoint.path,
        headers=sorted(endpoint.headers),  # names only: values may be credentials
        created=created,
    )
    return JSONResponse(endpoint_to_json(endpoint), status_code=201 if created else 200)


@router.delete("/endpoints/{name}", status_code=204)
def delete_endpoint(request: Request, name: str, caller: Caller = WRITE) -> Response:
    """Delete an endpoint no route uses."""
    _store(request).delete_endpoint(name)
    _audit(request, caller, "routing.endpoint.delete", name)
    return Response(status_code=204)


# -- routes ---------------------------------------------------------------------------


@router.get("/routes")
def list_routes(request: Request, _caller: Caller = READ) -> JSONResponse:
    """Every route by name."""
    return JSONResponse([route_to_json(r) for r in _store(request).list_routes()])


@router.get("/routes/{name}")
def get_route(request: Request, name: str, _caller: Caller = READ) -> JSONResponse:
    """One route."""
    return JSONResponse(route_to_json(_store(request).get_route(name)))


@router.put("/routes/{name}")
def put_route(request: Request, name: str, body: JsonBody, caller: Caller = WRITE) -> Response:
    """Create (201) or replace (200) a route."""
    validate_routing_name(name, "route")
    route = route_from_json(name, body)
    created = _store(request).put_route(route)
    _audit(request, caller, "routing.route.put", name, created=created, **route_to_json(route))
    return JSONResponse(route_to_json(route), status_code=201 if created else 200)


@router.delete("/routes/{name}", status_code=204)
def delete_route(request: Request, name: str, caller: Caller = WRITE) -> Response:
    """Delete a route."""
    _store(request).delete_route(name)
    _audit(request, caller, "routing.route.delete", name)
    return Response(status_code=204)


# -- fallback, test, dead letters, stats ----------------------------------------------


def _fallback_json(enabled: bool) -> dict[str, Any]:
    return {
        "name": "$fallback",
        "source": MessageSource.TELEMETRY.value,
        "condition": "true",
        "endpointNames": [BUILTIN_ENDPOINT],
        "isEnabled": enabled,
    }


@router.get("/fallback")
def get_fallback(request: Request, _caller: Caller = READ) -> JSONResponse:
    """The fallback route: unmatched telemetry to the built-in endpoint, when enabled."""
    return JSONResponse(_fallback_json(_store(request).fallback_enabled()))


@router.put("/fallback")
def put_fallback(request: Request, body: JsonBody, caller: Caller = WRITE) -> JSONResponse:
    """Turn the fallback route on or off: ``{"isEnabled": true|false}``."""
    doc = _object(body, {"name", "isEnabled", "source", "condition", "endpointNames"})
    if "isEnabled" not in doc:
        raise InvalidInputError("isEnabled is required", field="isEnabled")
    enabled = _flag(doc, "isEnabled", True)
    _store(request).set_fallback(enabled)
    _audit(request, caller, "routing.fallback.put", "$fallback", isEnabled=enabled)
    return JSONResponse(_fallback_json(enabled))


def _sample_message(doc: dict[str, Any], request: Request) -> DeviceMessage:
    device_id = doc.get("deviceId", "test-device")
    module_id = doc.get("moduleId")
    validate_device_id(device_id)
    if module_id is not None:
        validate_module_id(module_id)
    raw = doc.get("body")
    if raw is None:
        body = b""
    elif isinstance(raw, str):
        body = raw.encode("utf-8")
    else:
        body = orjson.dumps(raw)
    ctx: ApiContext = request.app.state.ctx
    return DeviceMessage(
        device_id=device_id,
        module_id=module_id,
        enqueued_at=ctx.clock(),
        source=_source(doc.get("source", MessageSource.TELEMETRY.value)),
        body=body,
        system_properties=_string_map(doc.get("systemProperties"), "systemProperties"),
        app_properties=_string_map(doc.get("appProperties"), "appProperties"),
    )


@router.post("/test")
def explain_message(request: Request, body: JsonBody, _caller: Caller = READ) -> JSONResponse:
    """Where a sample message would go, route by route; with ``condition``, also whether
    that (unsaved) condition matches it."""
    doc = _object(body, _TEST_FIELDS)
    message = _sample_message(doc, request)
    trace = _store(request).load_table().explain(message)
    answer: dict[str, Any] = {
        "endpoints": list(trace.endpoints),
        "routes": [
            {"name": r.name, "matched": r.matched, "reason": r.reason} for r in trace.routes
        ],
        "fallback": trace.fallback,
        "security": trace.security,
        "bodyQueryable": trace.body_readable,
        "warnings": [] if trace.body_readable or not message.body else [_BODY_HINT],
    }
    condition = doc.get("condition")
    if condition is not None:
        if not isinstance(condition, str):
            raise InvalidInputError("condition must be text", field="condition")
        expr = parse_condition(condition)
        resolver = routing_resolver(message, body=body_document(message))
        answer["condition"] = {"text": condition, "matched": evaluate_condition(expr, resolver)}
    return JSONResponse(answer)


@router.get("/deadletters")
def list_dead_letters(
    request: Request, top: int = 100, after: int | None = None, _caller: Caller = READ
) -> JSONResponse:
    """Dead letters, oldest first; next page ``after`` the ``x-ms-continuation`` id."""
    check_page_size(top)
    letters = _store(request).list_dead_letters(after=after, limit=top)
    response = JSONResponse([dead_letter_to_json(d) for d in letters])
    if len(letters) == top:
        response.headers["x-ms-continuation"] = str(letters[-1].id)
    return response


@router.get("/stats")
def routing_stats(request: Request, _caller: Caller = READ) -> JSONResponse:
    """The routing worker's counters and lag (``running`` false when it is not)."""
    worker = getattr(request.app.state, "routing_worker", None)
    if worker is None:
        return JSONResponse({"running": False})
    stats = worker.stats
    return JSONResponse(
        {
            "running": True,
            "checkpoint": stats.checkpoint,
            "lastSeq": stats.last_seq,
            "lag": stats.lag,
            "delivered": dict(stats.delivered),
            "deadLettered": dict(stats.dead_lettered),
            "dropped": stats.dropped,
        }
    )

"""Message routing: which endpoints a message from the ingest journal goes to.

Theory of operation, as in Azure IoT Hub: a ``Route`` names a source (device telemetry,
twin changes, lifecycle or connection-state events), a condition in IoT Hub's query
grammar (parsed once, when the route is built) and the endpoints that get the messages
it matches. A ``RoutingTable`` is an immutable, validated set of routes and endpoints;
it is rebuilt, never edited, when an administrator changes something.

``select_endpoints(message)`` decides one message:

1. A security message (``is_security_message``) goes to the reserved ``$security``
   endpoint and nowhere else; it is never routed as telemetry.
2. Otherwise every enabled route of the message's source whose condition is true adds
   its endpoints (union, in route-name order, each endpoint once).
3. No match: a telemetry message goes to the built-in endpoint (``builtin``; IoT Hub
   calls it ``events``) while the fallback route is on; anything else is dropped.

``$body`` is only readable when the message says its body is JSON text:
``contentType`` ``application/json`` and ``contentEncoding`` UTF-8, -16 or -32 (as IoT
Hub demands). The body is then parsed at most once per message, and only when a
candidate route's condition mentions ``$body``. With no routes for a source, no
condition is evaluated at all. The hub, not the device, supplies
``$connectionDeviceId``, ``$connectionModuleId`` and ``$enqueuedTime``; values a device
put in its own property bag under those names are ignored.

Everything here is pure; the adapters in ``wellguard.adapters.routing`` deliver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import orjson

from wellguard.core.iotquery import (
    And,
    Arithmetic,
    Comparison,
    Expr,
    FunctionCall,
    InList,
    Literal,
    Not,
    Or,
    Path,
    evaluate_condition,
    message_resolver,
    parse_condition,
)
from wellguard.core.iotquery.resolvers import SYSTEM_PROPERTY_ALIASES
from wellguard.errors import InvalidInputError, QueryError
from wellguard.model.message import DeviceMessage, MessageSource, SystemProperty

from ._endpoint import (
    BUILTIN,
    BUILTIN_ALIASES,
    BUILTIN_ENDPOINT,
    Endpoint,
    EndpointKind,
    validate_routing_name,
)

__all__ = [
    "BUILTIN_ENDPOINT",
    "MAX_ENDPOINTS",
    "MAX_ENDPOINTS_PER_ROUTE",
    "MAX_ROUTES",
    "SECURITY_ENDPOINT",
    "Endpoint",
    "EndpointKind",
    "Route",
    "RouteResult",
    "RoutingTable",
    "RoutingTrace",
    "body_document",
    "routing_resolver",
    "validate_routing_name",
]

SECURITY_ENDPOINT = "$security"
MAX_ROUTES = 100
MAX_ENDPOINTS = 25
MAX_ENDPOINTS_PER_ROUTE = 10

_UTF_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-16": "utf-16", "utf-32": "utf-32"}
_HUB_SUPPLIED = frozenset({"connectiondeviceid", "connectionmoduleid", "iothub-enqueuedtime"})


def _mentions_body(expr: Expr) -> bool:
    match expr:
        case Path(parts):
            return parts[0].lower() == "$body"
        case Literal():
            return False
        case Comparison(_, left, right) | Arithmetic(_, left, right):
            return _mentions_body(left) or _mentions_body(right)
        case And(operands) | Or(operands):
            return any(_mentions_body(o) for o in operands)
        case Not(operand):
            return _mentions_body(operand)
        case InList(value, items, _):
            return _mentions_body(value) or any(_mentions_body(i) for i in items)
        case FunctionCall(_, args):
            return any(_mentions_body(a) for a in args)
    return True


@dataclass(frozen=True, slots=True)
class Route:
    """A named rule: messages of ``source`` for which ``condition`` holds go to ``endpoints``."""

    name: str
    source: MessageSource
    condition: str
    endpoints: tuple[str, ...]
    enabled: bool = True
    expr: Expr = field(init=False, repr=False, compare=False)
    matches_all: bool = field(init=False, repr=False, compare=False)
    reads_body: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_routing_name(self.name, "route")
        if not isinstance(self.source, MessageSource):
            raise InvalidInputError(
                "source must be one of " + ", ".join(s.value for s in MessageSource),
                field="source",
            )
        if isinstance(self.endpoints, str) or not isinstance(self.endpoints, Sequence):
            raise InvalidInputError("endpoints must be a list of names", field="endpoints")
        names = tuple(
            BUILTIN_ENDPOINT if e in BUILTIN_ALIASES else validate_routing_name(e, "endpoint")
            for e in self.endpoints
        )
        if not 1 <= len(names) <= MAX_ENDPOINTS_PER_ROUTE or len(set(names)) != len(names):
            raise InvalidInputError(
                f"a route needs 1-{MAX_ENDPOINTS_PER_ROUTE} distinct endpoints", field="endpoints"
            )
        object.__setattr__(self, "endpoints", names)
        object.__setattr__(self, "enabled", bool(self.enabled))
        expr = parse_condition(self.condition)  # QueryError with line and column
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "matches_all", expr == Literal(True))
        object.__setattr__(self, "reads_body", _mentions_body(expr))


@dataclass(frozen=True, slots=True)
class RouteResult:
    """How one route judged a message (for ``RoutingTable.explain``)."""

    name: str
    matched: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RoutingTrace:
    """The whole decision for one message, for people debugging their conditions."""

    endpoints: tuple[str, ...]
    routes: tuple[RouteResult, ...]
    fallback: bool
    security: bool
    body_readable: bool


def body_document(message: DeviceMessage) -> Any | None:
    """The parsed JSON body when the message declares JSON text, else ``None``."""
    system = {k.lower(): v for k, v in message.system_properties.items()}
    content_type = system.get(SystemProperty.CONTENT_TYPE.lower(), "")
    encoding = system.get(SystemProperty.CONTENT_ENCODING.lower(), "").strip().lower()
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return None
    codec = _UTF_ENCODINGS.get(encoding)
    if codec is None:
        return None
    try:
        return orjson.loads(message.body.decode(codec))
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return None


def routing_resolver(message: DeviceMessage, *, body: Any | None) -> Any:
    """The query resolver of ``message``, with the hub-supplied system properties."""
    system = {
        key: value
        for key, value in message.system_properties.items()
        if SYSTEM_PROPERTY_ALIASES.get(k := key.removeprefix("$").lower(), k).lower()
        not in _HUB_SUPPLIED
    }
    system["connectionDeviceId"] = message.device_id
    if message.module_id is not None:
        system["connectionModuleId"] = message.module_id
    enqueued = message.enqueued_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    system["iothub-enqueuedtime"] = enqueued
    return message_resolver(
        app_properties=message.app_properties, system_properties=system, body=body
    )


def _unique_names(items: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for name in items:
        if name in seen:
            raise InvalidInputError(f"duplicate {what} name {name!r}", field="name")
        seen.add(name)


class RoutingTable:
    """A validated, immutable set of routes and endpoints that decides each message."""

    __slots__ = ("_by_source", "endpoints", "fallback_enabled", "routes")

    def __init__(
        self,
        routes: Iterable[Route] = (),
        endpoints: Iterable[Endpoint] = (),
        *,
        fallback_enabled: bool = True,
    ) -> None:
        route_list = sorted(routes, key=lambda r: r.name)
        custom = [e for e in endpoints if e.name != BUILTIN_ENDPOINT]
        _unique_names((r.name for r in route_list), "route")
        _unique_names((e.name for e in custom), "endpoint")
        if len(route_list) > MAX_ROUTES:
            raise InvalidInputError(f"at most {MAX_ROUTES} routes", field="routes")
        if len(custom) > MAX_ENDPOINTS:
            raise InvalidInputError(f"at most {MAX_ENDPOINTS} endpoints", field="endpoints")
        known = {e.name: e for e in (BUILTIN, *sorted(custom, key=lambda e: e.name))}
        for route in route_list:
            missing = [name for name in route.endpoints if name not in known]
            if missing:
                raise InvalidInputError(
                    f"route {route.name!r} names unknown endpoint(s): {', '.join(missing)}",
                    field="endpoints",
                )
        self.routes: tuple[Route, ...] = tuple(route_list)
        self.endpoints: Mapping[str, Endpoint] = known
        self.fallback_enabled = bool(fallback_enabled)
        by_source: dict[MessageSource, tuple[Route, ...]] = {}
        for source in MessageSource:
            by_source[source] = tuple(r for r in route_list if r.enabled and r.source is source)
        self._by_source = by_source

    def __repr__(self) -> str:
        return (
            f"RoutingTable(routes={len(self.routes)}, endpoints={len(self.endpoints)}, "
            f"fallback_enabled={self.fallback_enabled})"
        )

    def users_of(self, endpoint: str) -> list[str]:
        """Names of the routes that send to ``endpoint``."""
        return [r.name for r in self.routes if endpoint in r.endpoints]

    def select_endpoints(self, message: DeviceMessage) -> tuple[str, ...]:
        """The endpoints ``message`` goes to (empty: it is dropped)."""
        if message.is_security_message:
            return (SECURITY_ENDPOINT,)
        candidates = self._by_source[message.source]
        selected: dict[str, None] = {}
        if candidates:
            resolver = None
            for route in candidates:
                if not route.matches_all:
                    if resolver is None:
                        needs_body = any(r.reads_body for r in candidates)
                        body = body_document(message) if needs_body else None
                        resolver = routing_resolver(message, body=body)
                    if not _holds(route.expr, resolver):
                        continue
                selected.update(dict.fromkeys(route.endpoints))
        if selected:
            return tuple(selected)
        return self._fallback(message)

    def _fallback(self, message: DeviceMessage) -> tuple[str, ...]:
        if self.fallback_enabled and message.source is MessageSource.TELEMETRY:
            return (BUILTIN_ENDPOINT,)
        return ()

    def explain(self, message: DeviceMessage) -> RoutingTrace:
        """``select_endpoints`` with the verdict of every route, for ``POST /routing/test``."""
        body = body_document(message)
        if message.is_security_message:
            return RoutingTrace((SECURITY_ENDPOINT,), (), False, True, body is not None)
        resolver = routing_resolver(message, body=body)
        results: list[RouteResult] = []
        selected: dict[str, None] = {}
        for route in self.routes:
            if route.source is not message.source:
                results.append(RouteResult(route.name, False, f"source is {route.source}"))
            elif not route.enabled:
                results.append(RouteResult(route.name, False, "disabled"))
            elif _holds(route.expr, resolver):
                results.append(RouteResult(route.name, True, "condition is true"))
                selected.update(dict.fromkeys(route.endpoints))
            else:
                results.append(RouteResult(route.name, False, "condition is false or undefined"))
        endpoints = tuple(selected) or self._fallback(message)
        fallback = not selected and bool(endpoints)
        return RoutingTrace(endpoints, tuple(results), fallback, False, body is not None)


def _holds(expr: Expr, resolver: Any) -> bool:
    try:
        return evaluate_condition(expr, resolver)
    except QueryError:
        # Cannot happen for parsed conditions (functions are checked at parse time);
        # a route that cannot be evaluated simply does not match.
        return False

"""Resolvers: how property paths find values in twins and in routed messages.

Theory of operation: a resolver maps path parts to a value or ``UNDEFINED``; it never
raises. ``document_resolver`` walks nested JSON (objects by key, arrays by a decimal
index), case-sensitively, which is how twin queries and configuration target conditions
see a twin document (``deviceId``, ``status``, ``tags.site``,
``properties.reported.fw``...).

``message_resolver`` gives message routing's view of a device-to-cloud message:

* ``$body`` / ``$body.a.b`` — the JSON body, only when the caller passes a parsed JSON
  object (IoT Hub only reads bodies with content type ``application/json`` and a UTF
  encoding; deciding that is the caller's job). Anything else is undefined.
* ``$twin.tags.x`` / ``$twin.properties.reported.x`` — the sending device's twin, if given.
* ``$name`` — a system property. Names are matched case-insensitively, with or without
  the ``$``, by routing name (``$connectionDeviceId``) or wire name
  (``iothub-connection-device-id``), on both the query and the ``system_properties`` side.
* a bare ``name`` — the application property of that exact (case-sensitive) name;
  ``a.b`` also finds an application property literally named ``a.b``.

Message properties travel as text, so their values are ``UntypedString``: compared with a
number or boolean they are read as one (``temperature > 50`` works when the property is
``"72"``); compared with a string they are strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .evaluate import Resolver
from .values import UNDEFINED, UntypedString

__all__ = ["SYSTEM_PROPERTY_ALIASES", "document_resolver", "message_resolver", "walk_document"]

# lower-case name (routing or wire spelling, without '$') -> routing name
SYSTEM_PROPERTY_ALIASES: Mapping[str, str] = {
    "contenttype": "contentType",
    "content-type": "contentType",
    "contentencoding": "contentEncoding",
    "content-encoding": "contentEncoding",
    "connectiondeviceid": "connectionDeviceId",
    "iothub-connection-device-id": "connectionDeviceId",
    "connectionmoduleid": "connectionModuleId",
    "iothub-connection-module-id": "connectionModuleId",
    "connectionauthmethod": "connectionAuthMethod",
    "iothub-connection-auth-method": "connectionAuthMethod",
    "iothub-enqueuedtime": "iothub-enqueuedtime",
    "enqueuedtime": "iothub-enqueuedtime",
    "messageid": "messageId",
    "message-id": "messageId",
    "correlationid": "correlationId",
    "correlation-id": "correlationId",
    "userid": "userId",
    "user-id": "userId",
    "dt-dataschema": "dt-dataschema",
    "dt-subject": "dt-subject",
}


def _system_key(name: str) -> str:
    lowered = name.removeprefix("$").lower()
    return SYSTEM_PROPERTY_ALIASES.get(lowered, lowered).lower()


def walk_document(document: Any, parts: Sequence[str]) -> Any:
    """Follow ``parts`` into nested objects and arrays; ``UNDEFINED`` where it leads nowhere."""
    current = document
    for part in parts:
        if isinstance(current, Mapping):
            current = current.get(part, UNDEFINED)
            if current is UNDEFINED:
                return UNDEFINED
        elif (
            isinstance(current, Sequence)
            and not isinstance(current, str | bytes | bytearray)
            and part.isascii()
            and part.isdigit()
            and int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            return UNDEFINED
    return current


def document_resolver(document: Mapping[str, Any]) -> Resolver:
    """A resolver over a JSON document such as a device or module twin."""

    def resolve(parts: tuple[str, ...], /) -> Any:
        return walk_document(document, parts)

    return resolve


def message_resolver(
    *,
    app_properties: Mapping[str, str],
    system_properties: Mapping[str, str],
    body: Any | None,
    twin: Mapping[str, Any] | None = None,
) -> Resolver:
    """A resolver with message routing's view of a message: ``$body``, ``$twin``, ``$sys``, app."""
    system = {_system_key(name): value for name, value in system_properties.items()}

    def resolve(parts: tuple[str, ...], /) -> Any:
        head = parts[0]
        if head.startswith("$"):
            lowered = head.lower()
            if lowered == "$body":
                return walk_document(body, parts[1:]) if isinstance(body, Mapping) else UNDEFINED
            if lowered == "$twin":
                return walk_document(twin, parts[1:]) if twin is not None else UNDEFINED
            if len(parts) > 1:
                return UNDEFINED
            return _untyped(system.get(_system_key(head), UNDEFINED))
        return _untyped(app_properties.get(".".join(parts), UNDEFINED))

    return resolve


def _untyped(value: Any) -> Any:
    return UntypedString(value) if isinstance(value, str) else value

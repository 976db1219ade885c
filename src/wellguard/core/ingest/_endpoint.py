"""Routing endpoints as configured: names, kinds and the settings each kind needs.

Private to ``wellguard.core.ingest.routing``, which re-exports the public names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from wellguard.errors import InvalidInputError

__all__ = [
    "BUILTIN",
    "BUILTIN_ALIASES",
    "BUILTIN_ENDPOINT",
    "MAX_HEADERS",
    "Endpoint",
    "EndpointKind",
    "validate_routing_name",
]

BUILTIN_ENDPOINT = "builtin"
# IoT Hub's name for the built-in endpoint; accepted in routes, stored as ``builtin``.
BUILTIN_ALIASES = frozenset({BUILTIN_ENDPOINT, "events"})
MAX_HEADERS = 16

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_HOP_BY_HOP = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection"}
)


class EndpointKind(StrEnum):
    """How an endpoint delivers: the hub's telemetry store, an HTTPS POST, a local file."""

    BUILTIN = "builtin"
    WEBHOOK = "webhook"
    JSONL = "jsonl"


def validate_routing_name(name: object, what: str) -> str:
    """A route or endpoint name: 1-64 of ``A-Z a-z 0-9 _ -``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"{what} name must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'", field="name"
        )
    return name


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where routed messages go. ``url``/``headers``/``allow_http`` are for webhooks,
    ``path`` (relative to the hub's export folder) for JSON Lines files.

    Webhooks must use ``https``; ``allow_http`` permits ``http`` to a loopback host only
    (for local testing), because a cleartext webhook would expose its headers and data."""

    name: str
    kind: EndpointKind
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    path: str | None = None
    allow_http: bool = False

    def __post_init__(self) -> None:
        validate_routing_name(self.name, "endpoint")
        if not isinstance(self.kind, EndpointKind):
            raise InvalidInputError(
                "kind must be one of " + ", ".join(k.value for k in EndpointKind), field="kind"
            )
        if self.name in BUILTIN_ALIASES and self.kind is not EndpointKind.BUILTIN:
            raise InvalidInputError(f"endpoint name {self.name!r} is reserved", field="name")
        if not isinstance(self.headers, Mapping):
            raise InvalidInputError("headers must be an object of names to values", field="headers")
        object.__setattr__(self, "headers", dict(self.headers))
        if self.kind is EndpointKind.WEBHOOK:
            self._check_webhook()
        elif self.url is not None or self.headers or self.allow_http:
            raise InvalidInputError("url and headers are for webhook endpoints", field="url")
        if self.kind is EndpointKind.JSONL:
            self._check_path()
        elif self.path is not None:
            raise InvalidInputError("path is for jsonl endpoints", field="path")
        if self.kind is EndpointKind.BUILTIN and self.name != BUILTIN_ENDPOINT:
            raise InvalidInputError("only the built-in endpoint has kind builtin", field="kind")

    def _check_webhook(self) -> None:
        if not isinstance(self.url, str) or len(self.url) > 2048:
            raise InvalidInputError("a webhook needs a url (at most 2048 characters)", field="url")
        try:
            parts = urlsplit(self.url)
            host = parts.hostname or ""
            _ = parts.port  # raises ValueError on a bad port
        except ValueError as exc:
            raise InvalidInputError(f"webhook url is malformed: {exc}", field="url") from None
        if not host or parts.username is not None or parts.password is not None:
            raise InvalidInputError(
                "webhook url needs a host and no user:password (use a header)", field="url"
            )
        if parts.scheme == "http":
            if not (self.allow_http and _is_loopback(host)):
                raise InvalidInputError(
                    "webhook url must be https (allowHttp permits http to a loopback host only)",
                    field="url",
                )
        elif parts.scheme != "https":
            raise InvalidInputError("webhook url must be https", field="url")
        if len(self.headers) > MAX_HEADERS:
            raise InvalidInputError(f"at most {MAX_HEADERS} headers", field="headers")
        for key, value in self.headers.items():
            if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key):
                raise InvalidInputError(f"invalid header name {key!r}", field="headers")
            if key.lower() in _HOP_BY_HOP:
                raise InvalidInputError(f"header {key!r} is set by the hub", field="headers")
            if not isinstance(value, str) or len(value) > 4096 or not value.isprintable():
                raise InvalidInputError(
                    f"header {key!r} needs printable text of at most 4096 characters",
                    field="headers",
                )

    def _check_path(self) -> None:
        if not isinstance(self.path, str) or not 0 < len(self.path) <= 512:
            raise InvalidInputError("a jsonl endpoint needs a path", field="path")
        pure = PurePosixPath(self.path)
        if (
            pure.is_absolute()
            or "\\" in self.path
            or any(part in ("..", "") for part in self.path.split("/"))
            or not all(c.isprintable() for c in self.path)
        ):
            raise InvalidInputError(
                "jsonl path must be relative to the hub's export folder, without '..'",
                field="path",
            )


BUILTIN = Endpoint(BUILTIN_ENDPOINT, EndpointKind.BUILTIN)

"""The identity a CONNECT claims, from its client id and IoT Hub-style username.

Theory of operation
-------------------
The Azure IoT device SDKs send client id ``deviceId`` (or ``deviceId/moduleId``) and
username ``{hostname}/{clientId}/?{query}``. The hostname and the ids are sent as they are
(ids may contain ``?``, ``%`` and ``=``, never ``/``); the query is ``urlencode``d with
``quote``, e.g. ``api-version=2019-10-01&DeviceClientType=azure-iot-device-iothub-py%2F...``
and, for Plug and Play devices, ``api-version=2020-09-30&...&model-id=dtmi%3A...``.

Parsing is anchored on the client id rather than on the first ``/?`` so that an id such as
``?x`` cannot shift the split. The legacy form without ``?``
(``{host}/{deviceId}/api-version=2016-11-14``) and a username with no query at all are
accepted; unknown query keys are ignored. Everything else is refused with an
``AuthError`` whose reason tells the security log what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import unquote

from wellguard.errors import AuthError, AuthFailureReason, InvalidInputError
from wellguard.model.ids import validate_device_id, validate_module_id

__all__ = ["ClaimedIdentity", "parse_connect_identity"]

_MAX_USERNAME_CHARS = 4096
_MAX_CLIENT_TYPE_CHARS = 512
_API_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:-preview)?")
# DTMI: "dtmi:" then path segments and ";version" (DTDL v2 and v3 both fit this charset).
_MODEL_ID = re.compile(r"dtmi:[A-Za-z0-9_:;.]{1,2043}")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]*")


@dataclass(frozen=True, slots=True)
class ClaimedIdentity:
    """Who a connection says it is: validated ids, not yet authenticated."""

    device_id: str
    module_id: str | None
    api_version: str | None
    hostname: str
    model_id: str | None = None
    client_type: str | None = None

    def __post_init__(self) -> None:
        validate_device_id(self.device_id)
        if self.module_id is not None:
            validate_module_id(self.module_id)
        if not self.hostname:
            raise InvalidInputError("hostname is empty", field="hostname")

    @property
    def key(self) -> str:
        """``deviceId`` or ``deviceId/moduleId``, as in the MQTT client id."""
        if self.module_id is None:
            return self.device_id
        return f"{self.device_id}/{self.module_id}"


def _refuse(reason: AuthFailureReason, client_id: str, detail: str) -> AuthError:
    return AuthError(reason, identity=client_id[:257], detail=detail)


def _parse_query(text: str, client_id: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for entry in text.split("&"):
        if not entry:
            continue
        raw_key, _, raw_value = entry.partition("=")
        try:
            key = unquote(raw_key, errors="strict")
            value = unquote(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise _refuse(
                AuthFailureReason.BAD_USERNAME, client_id, "query is not percent-encoded UTF-8"
            ) from None
        if key in params:
            raise _refuse(AuthFailureReason.BAD_USERNAME, client_id, f"duplicate {key!r}")
        params[key] = value
    return params


def _query_value(
    params: dict[str, str], key: str, pattern: re.Pattern[str], client_id: str
) -> str | None:
    value = params.get(key)
    if value is not None and not pattern.fullmatch(value):
        raise _refuse(AuthFailureReason.BAD_USERNAME, client_id, f"malformed {key}")
    return value


def parse_connect_identity(
    client_id: str, username: str | None, hub_hostnames: Collection[str]
) -> ClaimedIdentity:
    """Read the identity a CONNECT claims; raise ``AuthError`` if it is malformed."""
    parts = client_id.split("/")
    try:
        if len(parts) > 2:
            raise InvalidInputError("client id has more than one '/'", field="clientId")
        device_id = validate_device_id(parts[0])
        module_id = validate_module_id(parts[1]) if len(parts) == 2 else None
    except InvalidInputError as exc:
        raise _refuse(AuthFailureReason.BAD_CLIENT_ID, client_id, str(exc)) from None
    if not username:
        raise _refuse(AuthFailureReason.BAD_USERNAME, client_id, "no username")
    if len(username) > _MAX_USERNAME_CHARS:
        raise _refuse(AuthFailureReason.BAD_USERNAME, client_id, "username too long")
    host, sep, rest = username.partition("/")
    if not sep or not host:
        raise _refuse(AuthFailureReason.BAD_USERNAME, client_id, "username has no host/")
    if host.lower() not in {name.lower() for name in hub_hostnames}:
        raise _refuse(AuthFailureReason.WRONG_HOST, client_id, f"host {host[:255]!r}")
    after = rest[len(client_id) :] if rest.startswith(client_id) else None
    if after is None or (after and not after.startswith("/")):
        raise _refuse(AuthFailureReason.CLIENT_ID_MISMATCH, client_id, "username names another id")
    tail = after[1:]
    if tail.startswith("?"):
        query = tail[1:]
    elif not tail or tail.startswith("api-version="):
        query = tail
    else:
        raise _refuse(AuthFailureReason.CLIENT_ID_MISMATCH, client_id, "username names another id")
    params = _parse_query(query, client_id)
    client_type = params.get("DeviceClientType")
    if client_type is not None and (
        len(client_type) > _MAX_CLIENT_TYPE_CHARS or not _PRINTABLE.fullmatch(client_type)
    ):
        raise _refuse(AuthFailureReason.BAD_USERNAME, client_id, "malformed DeviceClientType")
    return ClaimedIdentity(
        device_id=device_id,
        module_id=module_id,
        api_version=_query_value(params, "api-version", _API_VERSION, client_id),
        hostname=host,
        model_id=_query_value(params, "model-id", _MODEL_ID, client_id),
        client_type=client_type,
    )

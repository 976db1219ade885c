"""IoT Hub shared access signature (SAS) tokens: parse, generate and verify.

Theory of operation
-------------------
A token is the text ``SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>``
with an optional ``&skn=<policy name>``; fields may come in any order. The signature is
``base64(HMAC-SHA256(b64decode(key), <sr> + "\\n" + <se>))``.

*What is signed.* ``<sr>`` in the string to sign is the ``sr`` field exactly as it was
sent, still url-encoded. IoT Hub does the same (it keeps the encoded audience so that
even the case of the escapes is preserved), and it is what lets every client verify:
azure-iot-device encodes with ``quote(uri, safe="")``, azure-iot-hub with
``quote_plus(hostname)``, its uamqp client not at all. ``SasToken.encoded_resource``
carries that raw field; ``SasToken.resource_uri`` is the decoded form used for scoping.
The other fields are form-decoded (``+`` is a space) as IoT Hub's ``UrlDecode`` does.

*Parsing* is strict and total: any input gives a ``SasToken`` or
``AuthError(MALFORMED_TOKEN)``, never another exception. ``se`` must be a plain decimal
(no sign, no leading zeros, no later than year 9999) so ``str(expiry)`` is what was
signed and every expiry converts to a ``datetime``.

*Scope.* ``resource_matches`` compares lower-cased resources without an ``http(s)://``
scheme or trailing ``/``; a token covers its own resource and everything below it by
whole path segments. The C# and Node SDKs url-encode the device id once more before
encoding the whole resource, so the token side is also tried decoded a second time;
this only widens which spellings name the same path, and the signing key stays the
identity's own, so it grants nothing.

*Time.* A token is expired when ``se < now - skew`` (IoT Hub allows five minutes of
skew). A token whose ``se`` lies more than ``max_ttl + skew`` seconds ahead is refused
as ``EXPIRED_TOKEN`` as well: both are "outside the validity window we accept", and the
``detail`` tells them apart in the security log.

*Order of checks* (every failure is one opaque ``AuthError``; the order only decides
which ``reason`` is logged): ``verify_sas_token``: resource, expiry, signature.
``verify_device_sas``: parse, identity exists, device enabled, credential kind (identity
uses ``sas``, or the ``skn`` policy exists and has DeviceConnect), resource, expiry,
signature. ``verify_service_sas``: parse, ``skn`` present, policy exists, rights,
resource, expiry, signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, unquote_plus

from wellguard.core.identity.keys import decode_key_bytes
from wellguard.errors import AuthError, AuthFailureReason, InvalidInputError
from wellguard.model.device import AuthType, Device, DeviceStatus, Module
from wellguard.model.policy import AccessRights, SharedAccessPolicy

__all__ = [
    "DEFAULT_CLOCK_SKEW_SECONDS",
    "MAX_EXPIRY",
    "MAX_TOKEN_LENGTH",
    "SasToken",
    "generate_sas_token",
    "parse_sas_token",
    "resource_matches",
    "verify_device_sas",
    "verify_sas_token",
    "verify_service_sas",
]

MAX_TOKEN_LENGTH = 4096
MAX_EXPIRY = 253_402_300_799  # 9999-12-31T23:59:59Z: every expiry fits a datetime
DEFAULT_CLOCK_SKEW_SECONDS = 300

_PREFIX = "SharedAccessSignature "
_REQUIRED_FIELDS = ("sr", "sig", "se")
_KNOWN_FIELDS = frozenset({*_REQUIRED_FIELDS, "skn"})
# Printable ASCII without space: real encoders percent-encode everything else.
_BODY = re.compile(r"[\x21-\x7e]+")
_EXPIRY = re.compile(r"0|[1-9][0-9]{0,11}")
_SCHEMES = ("https://", "http://")


@dataclass(frozen=True)
class SasToken:
    """A parsed SAS token; ``encoded_resource`` is ``sr`` as sent, which the signature covers."""

    resource_uri: str
    signature: str
    expiry: int
    key_name: str | None = None
    encoded_resource: str | None = None

    def __post_init__(self) -> None:
        if not self.resource_uri or not self.signature:
            raise InvalidInputError("a SAS token needs a resource and a signature", field="sr")
        if isinstance(self.expiry, bool) or not 0 <= self.expiry <= MAX_EXPIRY:
            raise InvalidInputError(f"expiry must be 0..{MAX_EXPIRY}", field="se")
        if self.key_name == "" or self.encoded_resource == "":
            raise InvalidInputError("empty skn or sr", field="skn")

    @property
    def signed_resource(self) -> str:
        """The resource text the signature covers: ``sr`` as sent, or its canonical encoding."""
        if self.encoded_resource is not None:
            return self.encoded_resource
        return quote(self.resource_uri, safe="")


def _malformed(detail: str) -> AuthError:
    return AuthError(AuthFailureReason.MALFORMED_TOKEN, detail=detail)


def _decode_field(name: str, value: str) -> str:
    try:
        decoded = unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        raise _malformed(f"field {name} is not valid utf-8 after url-decoding") from None
    if not decoded:
        raise _malformed(f"field {name} is empty")
    return decoded


def parse_sas_token(text: str) -> SasToken:
    """Parse a ``SharedAccessSignature ...`` text; anything wrong raises MALFORMED_TOKEN."""
    if not isinstance(text, str):
        raise _malformed("token is not text")
    if len(text) > MAX_TOKEN_LENGTH:
        raise _malformed(f"token longer than {MAX_TOKEN_LENGTH} characters")
    if not text.isascii():
        raise _malformed("token has non-ascii characters")
    if not text.startswith(_PREFIX):
        raise _malformed("token does not start with 'SharedAccessSignature '")
    body = text[len(_PREFIX) :]
    if not _BODY.fullmatch(body):
        raise _malformed("token has no fields, or spaces or control characters in them")
    fields: dict[str, str] = {}
    for part in body.split("&"):
        name, separator, value = part.partition("=")
        if not separator:
            raise _malformed("token field without '='")
        if name not in _KNOWN_FIELDS:
            raise _malformed(f"unknown token field {name[:16]!r}")
        if name in fields:
            raise _malformed(f"duplicate token field {name}")
        if not value:
            raise _malformed(f"field {name} is empty")
        fields[name] = value
    missing = [name for name in _REQUIRED_FIELDS if name not in fields]
    if missing:
        raise _malformed(f"token lacks {', '.join(missing)}")
    if not _EXPIRY.fullmatch(fields["se"]) or int(fields["se"]) > MAX_EXPIRY:
        raise _malformed("se is not a non-negative integer up to year 9999")
    skn = fields.get("skn")
    return SasToken(
        resource_uri=_decode_field("sr", fields["sr"]),
        signature=_decode_field("sig", fields["sig"]),
        expiry=int(fields["se"]),
        key_name=None if skn is None else _decode_field("skn", skn),
        encoded_resource=fields["sr"],
    )


def _sign(key: bytes, signed_resource: str, expiry: int) -> str:
    message = f"{signed_resource}\n{expiry}".encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def generate_sas_token(
    resource_uri: str, key_b64: str, expiry: int, key_name: str | None = None
) -> str:
    """Make a token the way azure-iot-device does (``quote(..., safe="")`` everywhere)."""
    key = decode_key_bytes(key_b64)
    if key is None:
        raise InvalidInputError("key must be base64 encoding 16 to 64 bytes", field="key")
    if isinstance(expiry, bool) or not isinstance(expiry, int) or not 0 <= expiry <= MAX_EXPIRY:
        raise InvalidInputError(f"expiry must be an integer 0..{MAX_EXPIRY}", field="expiry")
    if not isinstance(resource_uri, str) or not resource_uri:
        raise InvalidInputError("resource uri must not be empty", field="resourceUri")
    if key_name is not None and (not isinstance(key_name, str) or not key_name):
        raise InvalidInputError("key name must not be empty", field="keyName")
    try:
        encoded_resource = quote(resource_uri, safe="")
        encoded_name = None if key_name is None else quote(key_name, safe="")
    except UnicodeEncodeError:
        raise InvalidInputError("resource uri and key name must be valid unicode") from None
    signature = quote(_sign(key, encoded_resource, expiry), safe="")
    token = f"{_PREFIX}sr={encoded_resource}&sig={signature}&se={expiry}"
    if encoded_name is not None:
        token += f"&skn={encoded_name}"
    return token


def _canonical_resource(resource: str) -> str:
    lowered = resource.lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            lowered = lowered[len(scheme) :]
            break
    return lowered.rstrip("/")


def resource_matches(token_resource: str, target: str) -> bool:
    """True when a token for (decoded) ``token_resource`` may act on ``target``."""
    if not isinstance(token_resource, str) or not isinstance(target, str):
        return False
    wanted = _canonical_resource(target)
    if not wanted:
        return False
    for candidate in (token_resource, unquote(token_resource)):
        granted = _canonical_resource(candidate)
        if granted and (wanted == granted or wanted.startswith(granted + "/")):
            return True
    return False


def _unix_seconds(now: datetime) -> float:
    # A naive clock is taken as UTC, never as the machine's local time.
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.timestamp()


def verify_sas_token(
    token: SasToken,
    *,
    keys: Sequence[str],
    targets: Sequence[str],
    now: datetime,
    max_ttl_seconds: int,
    clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
    identity: str | None = None,
) -> None:
    """Check scope, validity window and signature; raise ``AuthError`` on any failure."""
    if not any(resource_matches(token.resource_uri, target) for target in targets):
        raise AuthError(
            AuthFailureReason.WRONG_RESOURCE,
            identity=identity,
            detail=f"token resource {token.resource_uri[:256]!r} covers none of the targets",
        )
    current = _unix_seconds(now)
    if token.expiry < current - clock_skew_seconds:
        raise AuthError(
            AuthFailureReason.EXPIRED_TOKEN, identity=identity, detail="token has expired"
        )
    if token.expiry > current + max_ttl_seconds + clock_skew_seconds:
        raise AuthError(
            AuthFailureReason.EXPIRED_TOKEN,
            identity=identity,
            detail=f"token expiry is more than {max_ttl_seconds}s ahead (max ttl)",
        )
    presented = token.signature.encode("utf-8", "replace")
    matched = False
    for key_text in keys:
        key = decode_key_bytes(key_text)
        if key is None:
            continue
        expected = _sign(key, token.signed_resource, token.expiry).encode("ascii")
        matched |= hmac.compare_digest(expected, presented)
    if not matched:
        raise AuthError(
            AuthFailureReason.BAD_SIGNATURE,
            identity=identity,
            detail="signature matches none of the keys",
        )


def _parse_presented(token_text: str, identity: str | None) -> SasToken:
    if not token_text:
        raise AuthError(AuthFailureReason.MISSING_CREDENTIALS, identity=identity, detail="no token")
    try:
        return parse_sas_token(token_text)
    except AuthError as error:
        error.identity = identity
        raise


def verify_device_sas(
    token_text: str,
    *,
    device: Device | None,
    module: Module | None,
    device_id: str,
    module_id: str | None = None,
    hub_hosts: Sequence[str],
    now: datetime,
    policies: Mapping[str, SharedAccessPolicy],
    max_ttl_seconds: int,
    clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
) -> None:
    """Decide whether ``token_text`` lets a client connect as the device (or module)."""
    identity = f"{device_id}/{module_id}" if module_id else device_id
    token = _parse_presented(token_text, identity)
    if device is None or device.device_id != device_id:
        raise AuthError(AuthFailureReason.UNKNOWN_DEVICE, identity=identity, detail="no device")
    authentication = device.authentication
    if module_id:
        if module is None or (module.device_id, module.module_id) != (device_id, module_id):
            raise AuthError(AuthFailureReason.UNKNOWN_DEVICE, identity=identity, detail="no module")
        authentication = module.authentication
    if device.status is DeviceStatus.DISABLED:
        raise AuthError(
            AuthFailureReason.DISABLED_DEVICE, identity=identity, detail="device is disabled"
        )
    if token.key_name is not None:
        policy = policies.get(token.key_name)
        if policy is None:
            raise AuthError(
                AuthFailureReason.UNKNOWN_POLICY,
                identity=identity,
                detail=f"no policy {token.key_name[:128]!r}",
            )
        if AccessRights.DEVICE_CONNECT not in policy.rights:
            raise AuthError(
                AuthFailureReason.INSUFFICIENT_RIGHTS,
                identity=identity,
                detail=f"policy {policy.name!r} lacks DeviceConnect",
            )
        keys = [policy.primary_key, policy.secondary_key]
    else:
        if authentication.type is not AuthType.SAS:
            raise AuthError(
                AuthFailureReason.WRONG_AUTH_TYPE,
                identity=identity,
                detail=f"identity uses {authentication.type.value} authentication, not sas",
            )
        keys = [k for k in (authentication.primary_key, authentication.secondary_key) if k]
    suffix = f"/devices/{device_id}" + (f"/modules/{module_id}" if module_id else "")
    verify_sas_token(
        token,
        keys=keys,
        targets=[host + suffix for host in hub_hosts],
        now=now,
        max_ttl_seconds=max_ttl_seconds,
        clock_skew_seconds=clock_skew_seconds,
        identity=identity,
    )


def verify_service_sas(
    token_text: str,
    *,
    policies: Mapping[str, SharedAccessPolicy],
    hub_hosts: Sequence[str],
    now: datetime,
    required: AccessRights,
    max_ttl_seconds: int,
    clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
) -> SharedAccessPolicy:
    """Authenticate a service (REST) caller's policy token; return the policy it used."""
    token = _parse_presented(token_text, None)
    if token.key_name is None:
        raise AuthError(AuthFailureReason.MISSING_CREDENTIALS, detail="service token without skn")
    name = token.key_name
    policy = policies.get(name)
    if policy is None:
        raise AuthError(
            AuthFailureReason.UNKNOWN_POLICY, identity=name[:128], detail="no such policy"
        )
    if (policy.rights & required) != required:
        raise AuthError(
            AuthFailureReason.INSUFFICIENT_RIGHTS,
            identity=name,
            detail=f"policy has {policy.rights.render()!r}, needs {required.render()!r}",
        )
    verify_sas_token(
        token,
        keys=[policy.primary_key, policy.secondary_key],
        targets=list(hub_hosts),
        now=now,
        max_ttl_seconds=max_ttl_seconds,
        clock_skew_seconds=clock_skew_seconds,
        identity=name,
    )
    return policy

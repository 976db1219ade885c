"""The one exception tree of wellguard.

::

    WellguardError
    ├── ConfigError                 bad or missing configuration
    ├── InvalidInputError           a value from outside failed validation (field, reason)
    │   └── QueryError              user-authored query/condition text (line, column)
    ├── AuthError                   authentication or authorization refused (reason is private)
    ├── PkiError                    certificate or key material could not be made or used
    ├── RegistryError
    │   ├── NotFoundError           no such device, module, policy, configuration ...
    │   ├── AlreadyExistsError      create of something that exists
    │   └── PreconditionFailedError stale etag (If-Match)
    ├── ProtocolError               a peer broke the MQTT protocol (reason code)
    └── StorageError                the store failed or its data is inconsistent

Domain code raises these; the API and the gateway translate them at the edge. An
``AuthError`` always leaves the process as one opaque answer; its ``reason`` goes to the
security log only.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AlreadyExistsError",
    "AuthError",
    "AuthFailureReason",
    "ConfigError",
    "InvalidInputError",
    "NotFoundError",
    "PkiError",
    "PreconditionFailedError",
    "ProtocolError",
    "QueryError",
    "RegistryError",
    "StorageError",
    "WellguardError",
]


class WellguardError(Exception):
    """Root of every error wellguard raises on purpose."""


class ConfigError(WellguardError):
    """Configuration is missing, malformed or inconsistent."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class InvalidInputError(WellguardError):
    """A value that came from outside failed validation."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class QueryError(InvalidInputError):
    """Query or condition text that cannot be parsed or evaluated, with its position."""

    def __init__(self, message: str, *, line: int = 1, column: int = 1) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.line = line
        self.column = column
        self.detail = message


class AuthFailureReason(StrEnum):
    """Precise reasons for refusing a caller; recorded, never sent to the caller."""

    MALFORMED_TOKEN = "malformed_token"
    EXPIRED_TOKEN = "expired_token"
    BAD_SIGNATURE = "bad_signature"
    WRONG_RESOURCE = "wrong_resource"
    UNKNOWN_POLICY = "unknown_policy"
    UNKNOWN_DEVICE = "unknown_device"
    DISABLED_DEVICE = "disabled_device"
    WRONG_AUTH_TYPE = "wrong_auth_type"
    THUMBPRINT_MISMATCH = "thumbprint_mismatch"
    CERT_EXPIRED = "certificate_expired"
    CERT_NOT_YET_VALID = "certificate_not_yet_valid"
    CERT_REVOKED = "certificate_revoked"
    CERT_UNTRUSTED = "certificate_untrusted"
    CERT_SUBJECT_MISMATCH = "certificate_subject_mismatch"
    MISSING_CREDENTIALS = "missing_credentials"
    INSUFFICIENT_RIGHTS = "insufficient_rights"
    IP_FILTERED = "ip_filtered"
    BAD_USERNAME = "bad_username"
    BAD_CLIENT_ID = "bad_client_id"
    CLIENT_ID_MISMATCH = "client_id_mismatch"
    WRONG_HOST = "wrong_host"
    TOPIC_NOT_ALLOWED = "topic_not_allowed"


class AuthError(WellguardError):
    """Refused. ``str()`` is deliberately uninformative; ``reason`` is for the security log."""

    def __init__(
        self,
        reason: AuthFailureReason,
        *,
        identity: str | None = None,
        detail: str = "",
    ) -> None:
        super().__init__("unauthorized")
        self.reason = reason
        self.identity = identity
        self.detail = detail


class PkiError(WellguardError):
    """Certificate or key material could not be created, parsed or used."""


class RegistryError(WellguardError):
    """A registry operation could not be carried out."""


class NotFoundError(RegistryError):
    """The named entity does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class AlreadyExistsError(RegistryError):
    """An entity with that key already exists."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} already exists")
        self.kind = kind
        self.key = key


class PreconditionFailedError(RegistryError):
    """The caller's etag no longer matches (optimistic concurrency)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} was changed by someone else (etag mismatch)")
        self.kind = kind
        self.key = key


class ProtocolError(WellguardError):
    """A peer violated the MQTT protocol; the connection must be closed."""

    def __init__(self, message: str, *, reason_code: int | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class StorageError(WellguardError):
    """The store failed or holds inconsistent data."""

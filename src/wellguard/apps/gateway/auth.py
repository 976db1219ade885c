"""Deciding who is on a new MQTT connection: CONNECT fields + TLS client chain → identity.

The decisions are the sans-IO ones in ``wellguard.core.identity``; this module looks up
the records they need (device, module, policies, revoked serials, trusted CAs) and
keeps what a connection authenticated with, so that a later registry change can re-run
the same decision on the live connection (live enforcement).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from wellguard.core.gateway import ClaimedIdentity, parse_connect_identity
from wellguard.core.identity import (
    parse_sas_token,
    verify_ca_device,
    verify_device_sas,
    verify_thumbprint_device,
)
from wellguard.core.registry import Registry
from wellguard.errors import AuthError, AuthFailureReason
from wellguard.model.device import AuthType, Device, Module

__all__ = ["AuthenticatedDevice", "DeviceAuthenticator"]


@dataclass(frozen=True)
class AuthenticatedDevice:
    """A device or module that passed authentication, and how."""

    identity: ClaimedIdentity
    method: str  # "sas" | "x509"
    password: str | None
    chain: tuple[x509.Certificate, ...]
    token_expiry: int | None  # unix seconds, SAS only


class DeviceAuthenticator:
    """Runs the identity decisions against the registry (blocking: call off the loop)."""

    def __init__(
        self,
        registry: Registry,
        *,
        trusted_cas: Sequence[x509.Certificate],
        revoked_serials: Callable[[], Collection[int]],
        hub_hosts: Collection[str],
        clock: Callable[[], datetime],
        max_ttl_seconds: int,
        clock_skew_seconds: int,
    ) -> None:
        self._registry = registry
        self._trusted = list(trusted_cas)
        self._revoked = revoked_serials
        self._hosts = hub_hosts
        self._clock = clock
        self._max_ttl = max_ttl_seconds
        self._skew = clock_skew_seconds
        self._policy_lock = threading.Lock()

    def claim(self, client_id: str, username: str | None) -> ClaimedIdentity:
        """The identity a CONNECT claims (AuthError when the fields are malformed)."""
        return parse_connect_identity(client_id, username, self._hosts)

    def authenticate(
        self,
        claimed: ClaimedIdentity,
        password: bytes | None,
        chain: Sequence[x509.Certificate],
    ) -> AuthenticatedDevice:
        """Check credentials; raise ``AuthError`` with the precise reason."""
        device, module = self._records(claimed)
        now = self._clock()
        if password:
            try:
                text = password.decode("utf-8")
            except UnicodeDecodeError:
                raise AuthError(
                    AuthFailureReason.MALFORMED_TOKEN,
                    identity=claimed.key,
                    detail="password not UTF-8",
                ) from None
            self._check_sas(claimed, text, device, module, now)
            expiry = parse_sas_token(text).expiry
            return AuthenticatedDevice(claimed, "sas", text, (), expiry)
        if chain:
            self._check_x509(claimed, tuple(chain), device, module, now)
            return AuthenticatedDevice(claimed, "x509", None, tuple(chain), None)
        raise AuthError(
            AuthFailureReason.MISSING_CREDENTIALS,
            identity=claimed.key,
            detail="neither a SAS token nor a client certificate",
        )

    def recheck(self, auth: AuthenticatedDevice) -> None:
        """Re-run the decision for a live connection after a registry change."""
        device, module = self._records(auth.identity)
        now = self._clock()
        if auth.method == "sas" and auth.password is not None:
            self._check_sas(auth.identity, auth.password, device, module, now)
        else:
            self._check_x509(auth.identity, auth.chain, device, module, now)

    def _records(self, claimed: ClaimedIdentity) -> tuple[Device | None, Module | None]:
        store = self._registry.store
        device = store.get_device(claimed.device_id)
        module = (
            store.get_module(claimed.device_id, claimed.module_id)
            if claimed.module_id and device is not None
            else None
        )
        return device, module

    def _check_sas(
        self,
        claimed: ClaimedIdentity,
        token: str,
        device: Device | None,
        module: Module | None,
        now: datetime,
    ) -> None:
        policies = {p.name: p for p in self._registry.list_policies()}
        verify_device_sas(
            token,
            device=device,
            module=module,
            device_id=claimed.device_id,
            module_id=claimed.module_id,
            hub_hosts=list(self._hosts),
            now=now,
            policies=policies,
            max_ttl_seconds=self._max_ttl,
            clock_skew_seconds=self._skew,
        )

    def _check_x509(
        self,
        claimed: ClaimedIdentity,
        chain: tuple[x509.Certificate, ...],
        device: Device | None,
        module: Module | None,
        now: datetime,
    ) -> None:
        identity = module if claimed.module_id else device
        auth_type = identity.authentication.type if identity is not None else None
        if auth_type is AuthType.CERTIFICATE_AUTHORITY:
            verify_ca_device(
                chain[0],
                chain[1:],
                trusted=self._trusted,
                device=device,
                module=module,
                device_id=claimed.device_id,
                now=now,
                revoked_serials=self._revoked(),
                module_id=claimed.module_id,
            )
        else:
            verify_thumbprint_device(
                chain[0], device=device, module=module, now=now, module_id=claimed.module_id
            )

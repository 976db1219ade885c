"""Deciding who is on a new MQTT connection: CONNECT fields + TLS client chain → identity.

The decisions are the sans-IO ones in ``wellguard.core.identity``; this module looks up
the records they need (device, module, policies, revoked serials, trusted CAs) and
keeps what a connection authenticated with, so that a later registry change can re-run
the same decision on the live connection (live enforcement).

The records are read through an ``AuthRecordCache``: a connect that finds them held does
no SQL. The authenticator forgets what a registry change touches (``on_change``, which it
subscribes to the registry's notifier itself) before anyone re-checks a live connection,
and a re-check reads the store afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from wellguard.apps.gateway.authcache import AuthRecordCache
from wellguard.core.gateway import ClaimedIdentity, parse_connect_identity
from wellguard.core.identity import (
    parse_sas_token,
    verify_ca_device,
    verify_device_sas,
    verify_thumbprint_device,
)
from wellguard.core.registry import Registry
from wellguard.core.registry.events import ChangeKind, RegistryChange
from wellguard.errors import AuthError, AuthFailureReason
from wellguard.model.device import AuthType, Device, Module
from wellguard.model.policy import SharedAccessPolicy

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
    """Runs the identity decisions against the registry.

    ``authenticate``, ``recheck`` and ``prefetch`` read the store (blocking: call them
    off the loop); ``try_authenticate`` decides from held records only. ``cache`` holds
    the records between connects; by default 30 s and 100,000 records.
    """

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
        cache: AuthRecordCache | None = None,
    ) -> None:
        self._registry = registry
        self._trusted = list(trusted_cas)
        self._revoked = revoked_serials
        self._hosts = hub_hosts
        self._clock = clock
        self._max_ttl = max_ttl_seconds
        self._skew = clock_skew_seconds
        self._cache = cache if cache is not None else AuthRecordCache()
        registry.notifier.subscribe(self.on_change)

    def on_change(self, change: RegistryChange) -> None:
        """Forget the cached records a committed registry change touches (never raises)."""
        if change.kind is ChangeKind.IDENTITY:
            if change.device_id is None:
                self._cache.clear()
            else:
                self._cache.forget_device(change.device_id)
        elif change.kind is ChangeKind.POLICY:
            self._cache.forget_policies()

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
        policies = self._policies(fresh=False) if password else {}
        return self._decide(claimed, password, chain, device, module, policies)

    def try_authenticate(
        self,
        claimed: ClaimedIdentity,
        password: bytes | None,
        chain: Sequence[x509.Certificate],
    ) -> AuthenticatedDevice | None:
        """``authenticate`` from held records only (no I/O: safe on the event loop);
        None when a record it needs is not held (``prefetch`` it, or ``authenticate``)."""
        held, device = self._cache.peek_device(claimed.device_id)
        if not held:
            return None
        module = None
        if claimed.module_id and device is not None:
            held, module = self._cache.peek_module(claimed.device_id, claimed.module_id)
            if not held:
                return None
        policies: Mapping[str, SharedAccessPolicy] = {}
        if password:
            peeked = self._cache.peek_policies()
            if peeked is None:
                return None
            policies = peeked
        return self._decide(claimed, password, chain, device, module, policies)

    def prefetch(self, claims: Sequence[ClaimedIdentity]) -> None:
        """Read the records ``claims`` need into the cache: every device in one query,
        then modules one by one and the policies if not held (blocking)."""
        missing = [c.device_id for c in claims if not self._cache.peek_device(c.device_id)[0]]
        store = self._registry.store
        self._cache.load_devices(missing, store.get_devices)
        for claimed in claims:
            if claimed.module_id:
                self._records(claimed)
        self._policies(fresh=False)

    def _decide(
        self,
        claimed: ClaimedIdentity,
        password: bytes | None,
        chain: Sequence[x509.Certificate],
        device: Device | None,
        module: Module | None,
        policies: Mapping[str, SharedAccessPolicy],
    ) -> AuthenticatedDevice:
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
            self._check_sas(claimed, text, device, module, policies, now)
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
        """Re-run the decision for a live connection after a registry change.

        It runs right after a change, so it reads the store rather than the cache (and
        refreshes the cache with what it read).
        """
        device, module = self._records(auth.identity, fresh=True)
        now = self._clock()
        if auth.method == "sas" and auth.password is not None:
            policies = self._policies(fresh=True)
            self._check_sas(auth.identity, auth.password, device, module, policies, now)
        else:
            self._check_x509(auth.identity, auth.chain, device, module, now)

    def _records(
        self, claimed: ClaimedIdentity, *, fresh: bool = False
    ) -> tuple[Device | None, Module | None]:
        store = self._registry.store
        device = self._cache.device(claimed.device_id, store.get_device, fresh=fresh)
        module = (
            self._cache.module(claimed.device_id, claimed.module_id, store.get_module, fresh=fresh)
            if claimed.module_id and device is not None
            else None
        )
        return device, module

    def _policies(self, *, fresh: bool) -> Mapping[str, SharedAccessPolicy]:
        return self._cache.policies(self._registry.list_policies, fresh=fresh)

    def _check_sas(
        self,
        claimed: ClaimedIdentity,
        token: str,
        device: Device | None,
        module: Module | None,
        policies: Mapping[str, SharedAccessPolicy],
        now: datetime,
    ) -> None:
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

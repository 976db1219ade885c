"""Authenticating REST callers with shared access policy tokens, as IoT Hub does.

The ``Authorization`` header carries ``SharedAccessSignature sr=<host>&sig=...&se=...&skn=
<policy>``. The signature is checked before the policy's rights, so a forged token is
recorded as a bad signature, not as a rights problem. Every refusal becomes a hub
security event with its precise reason; the caller gets one opaque 401.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from wellguard.apps.api.context import ApiContext
from wellguard.core.identity import verify_service_sas
from wellguard.core.registry import Actor
from wellguard.errors import AuthError, AuthFailureReason
from wellguard.model.policy import AccessRights
from wellguard.model.security_event import HubSecurityEvent

__all__ = ["Caller", "peer_of", "requires"]


@dataclass(frozen=True)
class Caller:
    """An authenticated REST caller."""

    policy: str
    rights: AccessRights
    source: str

    @property
    def actor(self) -> Actor:
        """The caller as the audit log names it."""
        return Actor(name=f"policy:{self.policy}", source=self.source)


def peer_of(request: Request) -> str:
    """``ip:port`` of the client."""
    client = request.client
    return f"{client.host}:{client.port}" if client else "unknown"


def authenticate(ctx: ApiContext, request: Request, any_of: tuple[AccessRights, ...]) -> Caller:
    """The caller behind the request's token, holding one of ``any_of`` (all bits of it)."""
    source = peer_of(request)
    header = request.headers.get("authorization")
    claimed: str | None = None
    try:
        if not header:
            raise AuthError(AuthFailureReason.MISSING_CREDENTIALS, detail="no Authorization header")
        policies = {p.name: p for p in ctx.registry.list_policies()}
        policy = verify_service_sas(
            header,
            policies=policies,
            hub_hosts=ctx.hub_hosts,
            now=ctx.clock(),
            required=AccessRights.NONE,
            max_ttl_seconds=ctx.config.security.sas_max_ttl_seconds,
            clock_skew_seconds=ctx.config.security.clock_skew_seconds,
        )
        claimed = policy.name
        if not any((policy.rights & need) == need for need in any_of):
            raise AuthError(
                AuthFailureReason.INSUFFICIENT_RIGHTS,
                identity=policy.name,
                detail=f"{request.method} {request.url.path} needs "
                + " or ".join(need.render() for need in any_of),
            )
    except AuthError as exc:
        ctx.security_log.record(
            HubSecurityEvent(
                at=ctx.clock(),
                kind="api.auth",
                reason=exc.reason.value,
                identity=exc.identity or claimed,
                source=source,
                detail=f"{request.method} {request.url.path}: {exc.detail}"[:500],
            )
        )
        raise
    return Caller(policy=policy.name, rights=policy.rights, source=source)


def requires(
    *any_of: AccessRights,
) -> Callable[[Request], Caller]:
    """A FastAPI dependency that admits callers with one of the given rights sets."""

    def dependency(request: Request) -> Caller:
        ctx: ApiContext = request.app.state.ctx
        return authenticate(ctx, request, any_of)

    return dependency

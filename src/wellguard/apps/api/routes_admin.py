"""wellguard's own endpoints beside IoT Hub's: PKI, audit, policies, lifecycle, keys,
hub security events and health."""

from __future__ import annotations

from typing import Annotated, Any

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from wellguard.apps.api.auth import Caller, requires
from wellguard.apps.api.inputs import api_context, check_page_size, json_object
from wellguard.apps.api.wire import certificate_to_json, device_to_json, format_time
from wellguard.core.pki import RevocationReason
from wellguard.errors import InvalidInputError
from wellguard.model.device import DeviceStatus, LifecycleState
from wellguard.model.policy import AccessRights as R

__all__ = ["router"]

router = APIRouter()

READ = Depends(requires(R.REGISTRY_READ))
WRITE = Depends(requires(R.REGISTRY_WRITE))
OWNER = Depends(requires(R.REGISTRY_READ | R.REGISTRY_WRITE | R.SERVICE_CONNECT))
JsonBody = Annotated[Any, Body()]


def _reason(doc: dict[str, Any]) -> str | None:
    reason = doc.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 128):
        raise InvalidInputError("reason must be a string of at most 128 characters", field="reason")
    return reason


@router.get("/health", tags=["hub"])
def health() -> dict[str, str]:
    """Liveness: answers without credentials."""
    return {"status": "ok"}


# -- policies ---------------------------------------------------------------------------


@router.get("/policies", tags=["policies"])
def list_policies(request: Request, _caller: Caller = OWNER) -> list[dict[str, Any]]:
    """Shared access policies with their rights and keys (owner rights needed)."""
    return [
        {
            "keyName": p.name,
            "rights": p.rights.render(),
            "primaryKey": p.primary_key,
            "secondaryKey": p.secondary_key,
        }
        for p in api_context(request).registry.list_policies()
    ]


# -- device operations beyond IoT Hub's API --------------------------------------------------


@router.post("/devices/{device_id}/status", tags=["devices"])
def set_device_status(
    request: Request, device_id: str, body: JsonBody, caller: Caller = WRITE
) -> JSONResponse:
    """Enable or disable a device: ``{"status": "disabled", "reason": "..."}``."""
    doc = json_object(body)
    try:
        status = DeviceStatus(str(doc.get("status")))
    except ValueError:
        raise InvalidInputError("status must be enabled or disabled", field="status") from None
    device = api_context(request).registry.set_status(
        device_id, status, _reason(doc), actor=caller.actor
    )
    return JSONResponse(device_to_json(device))


@router.post("/devices/{device_id}/keys/rotate", tags=["devices"])
def rotate_device_keys(request: Request, device_id: str, caller: Caller = WRITE) -> JSONResponse:
    """New primary key; the old primary becomes the secondary."""
    device = api_context(request).registry.rotate_keys(device_id, actor=caller.actor)
    return JSONResponse(device_to_json(device))


@router.post("/devices/{device_id}/lifecycle", tags=["devices"])
def set_device_lifecycle(
    request: Request, device_id: str, body: JsonBody, caller: Caller = WRITE
) -> JSONResponse:
    """Move a device to ``provisioned|active|maintenance|retired|decommissioned``;
    decommissioning disables it, wipes its credentials and revokes its certificates."""
    doc = json_object(body)
    try:
        state = LifecycleState(str(doc.get("state")))
    except ValueError:
        raise InvalidInputError(
            "state must be one of " + ", ".join(s.value for s in LifecycleState), field="state"
        ) from None
    ctx = api_context(request)
    device = ctx.registry.set_lifecycle(device_id, state, _reason(doc), actor=caller.actor)
    revoked = 0
    if state is LifecycleState.DECOMMISSIONED:
        revoked = ctx.certificates.revoke_all_for(
            device_id, RevocationReason.CESSATION_OF_OPERATION, actor=caller.actor
        )
    return JSONResponse({**device_to_json(device), "certificatesRevoked": revoked})


# -- PKI --------------------------------------------------------------------------------


@router.get("/pki/ca", tags=["pki"])
def root_ca(request: Request) -> Response:
    """The hub's trust anchor (PEM); public."""
    return Response(api_context(request).root_ca_pem, media_type="application/x-pem-file")


@router.get("/pki/crl", tags=["pki"])
def crl(request: Request, format: str = "pem") -> Response:
    """The current certificate revocation list, freshly signed; public."""
    if format not in ("pem", "der"):
        raise InvalidInputError("format must be pem or der", field="format")
    signed = api_context(request).certificates.crl()
    if format == "der":
        return Response(signed.public_bytes(Encoding.DER), media_type="application/pkix-crl")
    return Response(signed.public_bytes(Encoding.PEM), media_type="application/x-pem-file")


@router.post("/pki/certificates", tags=["pki"])
def issue_certificate(request: Request, body: JsonBody, caller: Caller = WRITE) -> JSONResponse:
    """Issue a device certificate from a CSR: ``{"deviceId": ..., "csr": "PEM"}``.
    Renewal is the same call with a new CSR; add ``"revokePrevious": true`` to revoke
    the device's older certificates (reason superseded)."""
    doc = json_object(body)
    device_id, csr = doc.get("deviceId"), doc.get("csr")
    if not isinstance(device_id, str) or not isinstance(csr, str) or len(csr) > 16384:
        raise InvalidInputError("deviceId and csr (PEM text) are required")
    revoke_previous = doc.get("revokePrevious", False)
    if not isinstance(revoke_previous, bool):
        raise InvalidInputError("revokePrevious must be true or false", field="revokePrevious")
    certs = api_context(request).certificates
    previous = certs.list(device_id=device_id, after=None, limit=10_000)
    bundle = certs.issue(device_id, csr.encode("ascii", "replace"), actor=caller.actor)
    if revoke_previous:
        for old in previous:
            if not old.revoked:
                certs.revoke(old.serial, RevocationReason.SUPERSEDED, actor=caller.actor)
    return JSONResponse({**certificate_to_json(bundle.record), "chain": bundle.chain_pem})


@router.get("/pki/certificates", tags=["pki"])
def list_certificates(
    request: Request,
    deviceId: str | None = None,  # noqa: N803 - IoT Hub style query parameter
    after: str | None = None,
    top: int = 100,
    _caller: Caller = READ,
) -> list[dict[str, Any]]:
    """Issued certificates, soonest expiry first."""
    check_page_size(top)
    after_serial = _serial(after) if after else None
    certs = api_context(request).certificates.list(
        device_id=deviceId, after=after_serial, limit=top
    )
    return [certificate_to_json(c) for c in certs]


def _serial(text: str) -> int:
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise InvalidInputError("serial must be a decimal or 0x-hex number") from None


@router.post("/pki/certificates/{serial}/revoke", tags=["pki"])
def revoke_certificate(
    request: Request, serial: str, body: JsonBody, caller: Caller = WRITE
) -> dict[str, Any]:
    """Revoke an issued certificate: ``{"reason": "keyCompromise"}``."""
    doc = json_object(body) if body is not None else {}
    try:
        reason = RevocationReason(doc.get("reason") or "unspecified")
    except ValueError:
        raise InvalidInputError(
            "reason must be one of " + ", ".join(r.value for r in RevocationReason),
            field="reason",
        ) from None
    cert = api_context(request).certificates.revoke(_serial(serial), reason, actor=caller.actor)
    return certificate_to_json(cert)


# -- audit and security events ------------------------------------------------------------


@router.get("/audit", tags=["audit"])
def list_audit(
    request: Request, after: int | None = None, top: int = 100, _caller: Caller = READ
) -> list[dict[str, Any]]:
    """Audit entries in order, after sequence number ``after``."""
    check_page_size(top)
    entries = api_context(request).registry.store.list_audit(after=after, limit=top)
    return [
        {
            "seq": e.seq,
            "at": format_time(e.record.at),
            "actor": e.record.actor,
            "action": e.record.action,
            "target": e.record.target,
            "source": e.record.source,
            "details": e.record.details,
            "prevHash": e.prev_hash,
            "hash": e.hash,
        }
        for e in entries
    ]


@router.get("/audit/verify", tags=["audit"])
def verify_audit(request: Request, _caller: Caller = READ) -> dict[str, Any]:
    """Check the audit hash chain."""
    count, broken = api_context(request).registry.verify_audit()
    return {
        "ok": broken is None,
        "entries": count,
        "firstBadSeq": broken.seq if broken else None,
        "reason": broken.reason if broken else None,
    }


@router.get("/security/events", tags=["security"])
def security_events(
    request: Request, after: int | None = None, top: int = 100, _caller: Caller = READ
) -> list[dict[str, Any]]:
    """Hub security events (refused connections and calls), oldest first."""
    check_page_size(top)
    events = api_context(request).security_log.recent(after=after, limit=top)
    return [
        {
            "id": e.id,
            "at": format_time(e.at),
            "kind": e.kind,
            "reason": e.reason,
            "identity": e.identity,
            "source": e.source,
            "detail": e.detail,
        }
        for e in events
    ]

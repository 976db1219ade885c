"""Device authentication with X.509 client certificates: thumbprints and CA chains.

Theory of operation
-------------------
The TLS layer has already proved that the client holds the private key of the leaf
certificate it sent; these functions decide whether that certificate stands for the
device (or module) it claims to be, at the injected time ``now``.

*Thumbprint* (``selfSigned``) identities register the SHA-1 or SHA-256 thumbprint of
their certificate; the certificate matches when either digest equals the primary or the
secondary thumbprint. Order: identity exists, device enabled, auth type, thumbprint,
validity dates. The thumbprint comes before the dates because a certificate that is not
the registered one says nothing about the device, and the log should say so.

*CA* (``certificateAuthority``) identities present a leaf whose subject CN is the device
id, issued through ``intermediates`` by one of the ``trusted`` (verified) CA
certificates. The chain is built depth first: each issuer must carry the issuer name of
the certificate below it, a valid signature over it (``verify_directly_issued_by``),
basicConstraints CA=true within its pathLenConstraint, and keyCertSign if it has a
keyUsage. At most ``MAX_CHAIN_DEPTH`` issuers, no certificate twice, at most
``MAX_INTERMEDIATES`` sent by the client, and each signature checked once, so a hostile
chain cannot make the search expensive. A path whose certificates are all within their
dates is preferred; only when none exists does a path through an expired (or not yet
valid) certificate decide the reason. Order: identity exists, device enabled, auth type,
trusted chain, validity of every certificate on the path, revocation of the leaf serial
(``revoked_serials`` holds serials of certificates issued under the trusted CAs),
subject CN. Anything ``cryptography`` raises on odd certificates ends as
``CERT_UNTRUSTED``, never as an exception escaping to the gateway.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from wellguard.errors import AuthError, AuthFailureReason, InvalidInputError
from wellguard.model.device import Authentication, AuthType, Device, DeviceStatus, Module

__all__ = [
    "MAX_CHAIN_DEPTH",
    "MAX_INTERMEDIATES",
    "certificate_thumbprints",
    "normalize_thumbprint",
    "verify_ca_device",
    "verify_thumbprint_device",
]

MAX_CHAIN_DEPTH = 5
MAX_INTERMEDIATES = 8
_HEX = frozenset("0123456789ABCDEF")


def certificate_thumbprints(cert: x509.Certificate) -> tuple[str, str]:
    """(SHA-1, SHA-256) thumbprints of ``cert`` as upper-case hex."""
    sha1 = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - IoT Hub's thumbprint
    sha256 = cert.fingerprint(hashes.SHA256()).hex().upper()
    return sha1, sha256


def normalize_thumbprint(text: str) -> str:
    """Upper-case hex without colons or spaces; 40 or 64 digits, else ``InvalidInputError``."""
    if not isinstance(text, str):
        raise InvalidInputError("thumbprint must be text", field="thumbprint")
    cleaned = text.replace(":", "").replace(" ", "").upper()
    if len(cleaned) not in (40, 64) or not set(cleaned) <= _HEX:
        raise InvalidInputError(
            "thumbprint must be 40 (SHA-1) or 64 (SHA-256) hex digits", field="thumbprint"
        )
    return cleaned


def _aware(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def _identity_authentication(
    *,
    device: Device | None,
    module: Module | None,
    device_id: str | None,
    module_id: str | None,
    expected: AuthType,
    identity: str | None,
) -> Authentication:
    if device is None or (device_id is not None and device.device_id != device_id):
        raise AuthError(AuthFailureReason.UNKNOWN_DEVICE, identity=identity, detail="no device")
    authentication = device.authentication
    if module_id is not None or module is not None:
        if module is None or module.device_id != device.device_id:
            raise AuthError(AuthFailureReason.UNKNOWN_DEVICE, identity=identity, detail="no module")
        if module_id is not None and module.module_id != module_id:
            raise AuthError(AuthFailureReason.UNKNOWN_DEVICE, identity=identity, detail="no module")
        authentication = module.authentication
    if device.status is DeviceStatus.DISABLED:
        raise AuthError(
            AuthFailureReason.DISABLED_DEVICE, identity=identity, detail="device is disabled"
        )
    if authentication.type is not expected:
        raise AuthError(
            AuthFailureReason.WRONG_AUTH_TYPE,
            identity=identity,
            detail=f"identity uses {authentication.type.value}, not {expected.value}",
        )
    return authentication


def _check_dates(cert: x509.Certificate, now: datetime, identity: str | None, role: str) -> None:
    if now < cert.not_valid_before_utc:
        raise AuthError(
            AuthFailureReason.CERT_NOT_YET_VALID,
            identity=identity,
            detail=f"{role} certificate valid from {cert.not_valid_before_utc.isoformat()}",
        )
    if now > cert.not_valid_after_utc:
        raise AuthError(
            AuthFailureReason.CERT_EXPIRED,
            identity=identity,
            detail=f"{role} certificate expired {cert.not_valid_after_utc.isoformat()}",
        )


def _within_dates(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _identity_label(
    device: Device | None, device_id: str | None, module_id: str | None
) -> str | None:
    base = device_id if device_id is not None else (device.device_id if device else None)
    if base is None:
        return None
    return f"{base}/{module_id}" if module_id else base


def verify_thumbprint_device(
    cert: x509.Certificate,
    *,
    device: Device | None,
    module: Module | None,
    now: datetime,
    module_id: str | None = None,
) -> None:
    """Accept ``cert`` for a ``selfSigned`` identity whose thumbprint it matches."""
    identity = _identity_label(device, None, module_id)
    authentication = _identity_authentication(
        device=device,
        module=module,
        device_id=None,
        module_id=module_id,
        expected=AuthType.SELF_SIGNED,
        identity=identity,
    )
    presented = certificate_thumbprints(cert)
    matched = False
    for registered in (authentication.primary_thumbprint, authentication.secondary_thumbprint):
        if not registered:
            continue
        try:
            wanted = normalize_thumbprint(registered).encode("ascii")
        except InvalidInputError:
            continue
        for digest in presented:
            matched |= hmac.compare_digest(wanted, digest.encode("ascii"))
    if not matched:
        raise AuthError(
            AuthFailureReason.THUMBPRINT_MISMATCH,
            identity=identity,
            detail=f"certificate sha1 {presented[0]} matches no registered thumbprint",
        )
    _check_dates(cert, _aware(now), identity, "device")


def _can_issue(issuer: x509.Certificate, below: int) -> bool:
    """Whether ``issuer`` may sign a certificate that has ``below`` CA certificates under it."""
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    if constraints.path_length is not None and below > constraints.path_length:
        return False
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_cert_sign


class _ChainBuilder:
    """Depth-first path search with each (certificate, issuer) signature checked once."""

    def __init__(
        self, intermediates: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate]
    ) -> None:
        self._intermediates = list(intermediates)
        self._trusted = list(trusted)
        self._verdicts: dict[tuple[bytes, bytes], bool] = {}

    def _issued_by(self, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        key = (cert.fingerprint(hashes.SHA256()), issuer.fingerprint(hashes.SHA256()))
        verdict = self._verdicts.get(key)
        if verdict is None:
            try:
                cert.verify_directly_issued_by(issuer)
                verdict = True
            except Exception:
                # Wrong name, bad signature, unsupported key: all mean "not this issuer".
                verdict = False
            self._verdicts[key] = verdict
        return verdict

    def find(
        self, path: list[x509.Certificate], now: datetime | None
    ) -> list[x509.Certificate] | None:
        """A chain from ``path[-1]`` to a trusted certificate; issuers in date if ``now``."""
        current = path[-1]
        below = len(path) - 1  # CA certificates already under the next issuer
        if below >= MAX_CHAIN_DEPTH:
            return None
        for anchor in self._trusted:
            if now is not None and not _within_dates(anchor, now):
                continue
            if _can_issue(anchor, below) and self._issued_by(current, anchor):
                return [*path, anchor]
        seen = {cert.fingerprint(hashes.SHA256()) for cert in path}
        for candidate in self._intermediates:
            if candidate.fingerprint(hashes.SHA256()) in seen:
                continue
            if now is not None and not _within_dates(candidate, now):
                continue
            if candidate.subject != current.issuer or not _can_issue(candidate, below):
                continue
            if not self._issued_by(current, candidate):
                continue
            found = self.find([*path, candidate], now)
            if found is not None:
                return found
        return None


def _common_names(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _check_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    trusted: Sequence[x509.Certificate],
    moment: datetime,
    revoked_serials: Collection[int],
    identity: str | None,
) -> list[str]:
    """Trust, dates and revocation of ``leaf``; returns its subject CNs."""
    if len(intermediates) > MAX_INTERMEDIATES:
        raise AuthError(
            AuthFailureReason.CERT_UNTRUSTED,
            identity=identity,
            detail=f"{len(intermediates)} intermediates sent, at most {MAX_INTERMEDIATES}",
        )
    builder = _ChainBuilder(intermediates, trusted)
    if builder.find([leaf], moment) is None:
        undated = builder.find([leaf], None)
        if undated is None:
            raise AuthError(
                AuthFailureReason.CERT_UNTRUSTED,
                identity=identity,
                detail=f"no chain from issuer {leaf.issuer.rfc4514_string()[:256]!r}",
            )
        # A chain exists, but only through certificates out of their dates.
        for position, cert in enumerate(undated[1:], start=1):
            _check_dates(cert, moment, identity, f"issuer #{position}")
        raise AuthError(  # pragma: no cover - the dated search would have found it
            AuthFailureReason.CERT_UNTRUSTED, identity=identity, detail="no dated chain"
        )
    _check_dates(leaf, moment, identity, "leaf")
    if leaf.serial_number in revoked_serials:
        raise AuthError(
            AuthFailureReason.CERT_REVOKED,
            identity=identity,
            detail=f"serial {leaf.serial_number:x} is revoked",
        )
    return _common_names(leaf)


def verify_ca_device(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    trusted: Sequence[x509.Certificate],
    device: Device | None,
    module: Module | None,
    device_id: str,
    now: datetime,
    revoked_serials: Collection[int],
    module_id: str | None = None,
) -> None:
    """Accept ``leaf`` for a ``certificateAuthority`` identity: trusted chain, dates, CN."""
    identity = _identity_label(device, device_id, module_id)
    _identity_authentication(
        device=device,
        module=module,
        device_id=device_id,
        module_id=module_id,
        expected=AuthType.CERTIFICATE_AUTHORITY,
        identity=identity,
    )
    try:
        names = _check_chain(
            leaf,
            intermediates,
            trusted=trusted,
            moment=_aware(now),
            revoked_serials=revoked_serials,
            identity=identity,
        )
    except AuthError:
        raise
    except Exception as error:
        # Odd certificates must end as a refusal, never as a crash of the gateway.
        raise AuthError(
            AuthFailureReason.CERT_UNTRUSTED,
            identity=identity,
            detail=f"certificate could not be processed: {type(error).__name__}",
        ) from None
    if names != [device_id]:
        raise AuthError(
            AuthFailureReason.CERT_SUBJECT_MISMATCH,
            identity=identity,
            detail=f"leaf CN {names[:2]!r} is not the device id",
        )

"""Registry records, keys and certificates for the identity tests."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wellguard.model.device import (
    Authentication,
    AuthType,
    ConnectionState,
    Device,
    DeviceStatus,
    LifecycleState,
    Module,
)
from wellguard.model.policy import DEFAULT_POLICY_RIGHTS, SharedAccessPolicy

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
HUB = "hub.local"
HUB_HOSTS = ("hub.local", "hub.local:8443")
MAX_TTL = 86_400


def key(n: int) -> str:
    """A fixed, distinct 32-byte key."""
    return base64.b64encode(bytes([n]) * 32).decode()


DEVICE_KEY, DEVICE_KEY2 = key(1), key(2)
MODULE_KEY, MODULE_KEY2 = key(3), key(4)
OTHER_KEY = key(9)


def policies() -> dict[str, SharedAccessPolicy]:
    """IoT Hub's default policies, each with its own key pair."""
    return {
        name: SharedAccessPolicy(name, rights, key(20 + 2 * i), key(21 + 2 * i))
        for i, (name, rights) in enumerate(DEFAULT_POLICY_RIGHTS.items())
    }


def sas_auth(primary: str = DEVICE_KEY, secondary: str = DEVICE_KEY2) -> Authentication:
    """Symmetric-key authentication."""
    return Authentication(AuthType.SAS, primary_key=primary, secondary_key=secondary)


def make_device(
    device_id: str = "well-01",
    *,
    authentication: Authentication | None = None,
    status: DeviceStatus = DeviceStatus.ENABLED,
) -> Device:
    """A registry device record."""
    return Device(
        device_id=device_id,
        generation_id="638000000000000000",
        etag="AAAAAAAAAAE=",
        status=status,
        status_reason=None,
        status_updated=NOW,
        authentication=authentication or sas_auth(),
        connection_state=ConnectionState.DISCONNECTED,
        connection_state_updated=None,
        last_activity=None,
        c2d_count=0,
        iot_edge=False,
        lifecycle=LifecycleState.ACTIVE,
        created=NOW,
        updated=NOW,
    )


def make_module(
    device_id: str = "well-01",
    module_id: str = "agent",
    *,
    authentication: Authentication | None = None,
) -> Module:
    """A registry module record."""
    return Module(
        device_id=device_id,
        module_id=module_id,
        generation_id="638000000000000001",
        etag="AAAAAAAAAAE=",
        authentication=authentication or sas_auth(MODULE_KEY, MODULE_KEY2),
        managed_by=None,
        connection_state=ConnectionState.DISCONNECTED,
        connection_state_updated=None,
        last_activity=None,
        c2d_count=0,
        created=NOW,
        updated=NOW,
    )


class Issued:
    """A certificate together with the private key that can issue below it."""

    def __init__(self, cert: x509.Certificate, private_key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = private_key


def make_cert(
    common_name: str,
    *,
    issuer: Issued | None = None,
    ca: bool = False,
    path_length: int | None = None,
    key_cert_sign: bool = True,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
    serial: int | None = None,
    basic_constraints: bool = True,
    subject: x509.Name | None = None,
    private_key: ec.EllipticCurvePrivateKey | None = None,
) -> Issued:
    """An EC P-256 certificate (new key unless given); self-signed unless ``issuer`` is."""
    private_key = private_key or ec.generate_private_key(ec.SECP256R1())
    name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(private_key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
            critical=True,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    signer = issuer.key if issuer else private_key
    return Issued(builder.sign(signer, hashes.SHA256()), private_key)

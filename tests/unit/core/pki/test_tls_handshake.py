"""The proof that what ``wellguard init`` writes works: real TLS handshakes with ``ssl``.

These certificates are checked by OpenSSL against the real clock, so they are made at
``datetime.now()`` rather than the fixed test clock.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from wellguard.core.pki import (
    CertificateAuthority,
    KeyType,
    certificate_to_pem,
    certificates_to_pem,
    create_device_key_and_csr,
    create_issuing_ca,
    create_root_ca,
    issue_device_certificate,
    issue_server_certificate,
    private_key_to_pem,
)

TIMEOUT = 10.0


@dataclass(frozen=True)
class Outcome:
    version: str | None
    server_saw_client_cn: str | None
    server_error: BaseException | None


def _pki(ca_key: KeyType) -> tuple[CertificateAuthority, CertificateAuthority]:
    now = datetime.now(UTC)
    root = create_root_ca("Handshake Root", key_type=ca_key, now=now)
    return root, create_issuing_ca(root, "Handshake Issuing", key_type=ca_key, now=now)


def _server_context(
    tmp_path: Path, issuing: CertificateAuthority, server_key: KeyType
) -> ssl.SSLContext:
    cert, key = issue_server_certificate(
        issuing,
        hostnames=["localhost"],
        ip_addresses=["127.0.0.1", "::1"],
        key_type=server_key,
        now=datetime.now(UTC),
    )
    # What init writes: leaf plus issuing CA in one file, the key encrypted.
    (tmp_path / "server.pem").write_bytes(certificates_to_pem([cert, issuing.certificate]))
    (tmp_path / "server.key").write_bytes(private_key_to_pem(key, b"key password"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(
        tmp_path / "server.pem", tmp_path / "server.key", password=b"key password"
    )
    return context


def _client_context(root: CertificateAuthority) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=certificate_to_pem(root.certificate).decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Python 3.13 turns strict RFC 5280 checking on by default; hold our certificates to it.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    assert context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED
    return context


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str) -> Outcome:
    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(TIMEOUT)
    client_sock.settimeout(TIMEOUT)
    seen: dict[str, object] = {}

    def serve() -> None:
        try:
            with server.wrap_socket(server_sock, server_side=True) as tls:
                peer = tls.getpeercert(binary_form=True)
                if peer:
                    subject = x509.load_der_x509_certificate(peer).subject
                    seen["cn"] = subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
                tls.sendall(tls.recv(5))
        except (OSError, ssl.SSLError) as exc:
            seen["error"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(client_sock, server_hostname=server_hostname) as tls:
            tls.sendall(b"hello")
            assert tls.recv(5) == b"hello"
            version = tls.version()
    finally:
        client_sock.close()
        thread.join(TIMEOUT)
        server_sock.close()
    error = seen.get("error")
    assert error is None or isinstance(error, BaseException)
    cn = seen.get("cn")
    return Outcome(version, cn if isinstance(cn, str) else None, error)


@pytest.mark.parametrize(
    ("ca_key", "server_key"),
    [
        (KeyType.EC_P256, KeyType.EC_P256),
        (KeyType.EC_P384, KeyType.RSA_2048),
        (KeyType.RSA_2048, KeyType.EC_P384),
    ],
)
@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1"])
def test_server_certificate_completes_a_verified_handshake(
    tmp_path: Path, ca_key: KeyType, server_key: KeyType, hostname: str
) -> None:
    root, issuing = _pki(ca_key)
    outcome = _handshake(
        _server_context(tmp_path, issuing, server_key), _client_context(root), hostname
    )
    assert outcome.server_error is None
    assert outcome.version in {"TLSv1.2", "TLSv1.3"}


def test_handshake_works_when_pinned_to_tls_1_2(tmp_path: Path) -> None:
    root, issuing = _pki(KeyType.EC_P256)
    client = _client_context(root)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    outcome = _handshake(_server_context(tmp_path, issuing, KeyType.EC_P256), client, "localhost")
    assert outcome.version == "TLSv1.2"


def test_wrong_hostname_is_refused_by_the_client(tmp_path: Path) -> None:
    root, issuing = _pki(KeyType.EC_P256)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(
            _server_context(tmp_path, issuing, KeyType.EC_P256),
            _client_context(root),
            "evil.example",
        )


def test_untrusted_root_is_refused_by_the_client(tmp_path: Path) -> None:
    _, issuing = _pki(KeyType.EC_P256)
    stranger, _ = _pki(KeyType.EC_P256)
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(
            _server_context(tmp_path, issuing, KeyType.EC_P256),
            _client_context(stranger),
            "localhost",
        )


@pytest.mark.parametrize("device_key", [KeyType.EC_P256, KeyType.RSA_2048])
def test_device_certificate_authenticates_over_mutual_tls(
    tmp_path: Path, device_key: KeyType
) -> None:
    root, issuing = _pki(KeyType.EC_P256)
    server = _server_context(tmp_path, issuing, KeyType.EC_P256)
    server.verify_mode = ssl.CERT_REQUIRED
    server.verify_flags |= ssl.VERIFY_X509_STRICT
    server.load_verify_locations(cadata=certificate_to_pem(root.certificate).decode())
    key, csr_pem = create_device_key_and_csr("well-01", device_key)
    cert = issue_device_certificate(
        csr_pem, issuing, device_id="well-01", now=datetime.now(UTC), days=30
    )
    (tmp_path / "device.pem").write_bytes(certificates_to_pem([cert, issuing.certificate]))
    (tmp_path / "device.key").write_bytes(private_key_to_pem(key, None))
    client = _client_context(root)
    client.load_cert_chain(tmp_path / "device.pem", tmp_path / "device.key")
    outcome = _handshake(server, client, "localhost")
    assert outcome.server_error is None
    assert outcome.server_saw_client_cn == "well-01"

"""The data folder of a hub: what ``wellguard init`` creates and ``wellguard up`` reads.

::

    DIR/wellguard.toml      configuration (hostname, ports, ...)
    DIR/wellguard.db        SQLite store (WAL) unless store.url names PostgreSQL
    DIR/master.key          master key (0600) unless WELLGUARD_MASTER_KEY is set
    DIR/admin.json          iothubowner credentials for the CLI (0600)
    DIR/pki/root-ca.pem     the one file devices and services need to trust the hub
    DIR/pki/issuing-ca.pem  issuing CA certificate (+ chain); its key sealed beside it
    DIR/pki/hub.pem         hub TLS certificate + chain; hub.key.pem encrypted
    DIR/run/hub.json        where the running hub listens (written by ``up``)

Private keys of the CAs and of the hub certificate are PKCS#8 PEM encrypted with
passwords derived from the master key, so a copy of the folder without the master key
(keep ``master.key`` elsewhere in production, or use the environment variable) gives
away no key material. Device keys in the store are sealed with the same master key.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from wellguard.core.pki import (
    CertificateAuthority,
    KeyType,
    certificates_from_pem,
    certificates_to_pem,
    create_issuing_ca,
    create_root_ca,
    issue_server_certificate,
    load_certificate_authority,
    private_key_from_pem,
    private_key_to_pem,
)
from wellguard.core.secretbox import (
    SecretBox,
    generate_master_key,
    master_key_from_text,
    master_key_to_text,
)
from wellguard.errors import ConfigError

__all__ = ["DataDir", "HubTls", "write_private"]

MASTER_KEY_ENV = "WELLGUARD_MASTER_KEY"


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only (created 0600, never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class HubTls:
    """What the hub's TLS listeners need: certificate chain file, key file and password."""

    cert_file: Path
    key_file: Path
    key_password: str
    root_ca_file: Path


@dataclass(frozen=True)
class DataDir:
    """Paths and secrets of one hub's data folder."""

    root: Path

    @property
    def config_file(self) -> Path:
        """``wellguard.toml``."""
        return self.root / "wellguard.toml"

    @property
    def database_file(self) -> Path:
        """The SQLite database."""
        return self.root / "wellguard.db"

    @property
    def master_key_file(self) -> Path:
        """The generated master key (when not given by environment)."""
        return self.root / "master.key"

    @property
    def admin_file(self) -> Path:
        """The CLI's admin credentials."""
        return self.root / "admin.json"

    @property
    def pki_dir(self) -> Path:
        """CA and TLS material."""
        return self.root / "pki"

    @property
    def root_ca_file(self) -> Path:
        """The trust anchor devices and services use."""
        return self.pki_dir / "root-ca.pem"

    @property
    def run_file(self) -> Path:
        """Where ``up`` records its listeners."""
        return self.root / "run" / "hub.json"

    def exists(self) -> bool:
        """True when the folder has been initialised."""
        return self.config_file.exists()

    # -- secrets ------------------------------------------------------------------------

    def master_key(self, environ: Mapping[str, str]) -> bytes:
        """The master key from ``WELLGUARD_MASTER_KEY`` or ``master.key``."""
        text = environ.get(MASTER_KEY_ENV)
        if text:
            return master_key_from_text(text.strip())
        if not self.master_key_file.exists():
            raise ConfigError(
                f"no master key: set {MASTER_KEY_ENV} or restore {self.master_key_file}",
                setting=MASTER_KEY_ENV,
            )
        return master_key_from_text(self.master_key_file.read_text(encoding="ascii").strip())

    def create_master_key(self, environ: Mapping[str, str]) -> bytes:
        """Use the environment's master key, or generate one into ``master.key``."""
        if environ.get(MASTER_KEY_ENV):
            return self.master_key(environ)
        key = generate_master_key()
        write_private(self.master_key_file, master_key_to_text(key).encode("ascii") + b"\n")
        return key

    @staticmethod
    def key_password(box: SecretBox, purpose: str) -> bytes:
        """An ASCII password for an encrypted PEM, derived from the master key."""
        return base64.urlsafe_b64encode(box.derive_password(purpose))

    # -- PKI ----------------------------------------------------------------------------

    def create_pki(
        self,
        box: SecretBox,
        *,
        hostname: str,
        extra_names: Sequence[str],
        key_type: KeyType,
        now: datetime,
        byo_ca: tuple[bytes, bytes, bytes | None] | None = None,
    ) -> CertificateAuthority:
        """Create (or adopt) the CAs and the hub TLS certificate; return the issuing CA."""
        if byo_ca is not None:
            cert_pem, key_pem, password = byo_ca
            issuing = load_certificate_authority(cert_pem, key_pem, password, now=now)
            self.pki_dir.mkdir(parents=True, exist_ok=True)
        else:
            root = create_root_ca("wellguard root CA", key_type=key_type, now=now)
            issuing = create_issuing_ca(
                root, f"wellguard issuing CA {hostname}"[:64], key_type=key_type, now=now
            )
            self._write_key(box, "root-ca", root.private_key)
        self.root_ca_file.parent.mkdir(parents=True, exist_ok=True)
        self.root_ca_file.write_bytes(certificates_to_pem([issuing.root_certificate]))
        (self.pki_dir / "issuing-ca.pem").write_bytes(certificates_to_pem(issuing.full_chain))
        self._write_key(box, "issuing-ca", issuing.private_key)
        self.issue_hub_certificate(
            box, issuing, hostname=hostname, extra_names=extra_names, key_type=key_type, now=now
        )
        return issuing

    def issue_hub_certificate(
        self,
        box: SecretBox,
        issuing: CertificateAuthority,
        *,
        hostname: str,
        extra_names: Sequence[str],
        key_type: KeyType,
        now: datetime,
    ) -> None:
        """(Re)issue the hub's TLS server certificate for its names."""
        dns, ips = _split_names([hostname, "localhost", "127.0.0.1", *extra_names])
        # The hub certificate is ECDSA by default: handshakes are several times cheaper.
        cert, key = issue_server_certificate(
            issuing, hostnames=dns, ip_addresses=ips, key_type=key_type, now=now
        )
        chain = [cert, *issuing.full_chain[:-1]]
        (self.pki_dir / "hub.pem").write_bytes(certificates_to_pem(chain))
        self._write_key(box, "hub", key)

    def _write_key(self, box: SecretBox, name: str, key: Any) -> None:
        pem = private_key_to_pem(key, self.key_password(box, f"pki:{name}"))
        write_private(self.pki_dir / f"{name}.key.pem", pem)

    def load_issuing_ca(self, box: SecretBox) -> CertificateAuthority:
        """The CA that signs device certificates."""
        certs = certificates_from_pem((self.pki_dir / "issuing-ca.pem").read_bytes())
        key = private_key_from_pem(
            (self.pki_dir / "issuing-ca.key.pem").read_bytes(),
            self.key_password(box, "pki:issuing-ca"),
        )
        return CertificateAuthority(certificate=certs[0], private_key=key, chain=tuple(certs[1:]))

    def hub_tls(self, box: SecretBox) -> HubTls:
        """The hub's TLS files and key password."""
        return HubTls(
            cert_file=self.pki_dir / "hub.pem",
            key_file=self.pki_dir / "hub.key.pem",
            key_password=self.key_password(box, "pki:hub").decode("ascii"),
            root_ca_file=self.root_ca_file,
        )

    # -- admin credentials and run file ---------------------------------------------------

    def write_admin(self, *, hostname: str, policy_name: str, key: str) -> None:
        """Store the CLI's admin credentials (0600)."""
        doc = {"hostName": hostname, "sharedAccessKeyName": policy_name, "sharedAccessKey": key}
        write_private(self.admin_file, json.dumps(doc, indent=2).encode() + b"\n")

    def read_admin(self) -> dict[str, str]:
        """The CLI's admin credentials."""
        try:
            doc = json.loads(self.admin_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read admin credentials {self.admin_file}: {exc}") from None
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), str)
            for k in ("hostName", "sharedAccessKeyName", "sharedAccessKey")
        ):
            raise ConfigError(f"{self.admin_file} is not a wellguard admin credentials file")
        return {k: str(v) for k, v in doc.items()}

    def write_run_info(self, info: dict[str, Any]) -> None:
        """Record where the running hub listens."""
        self.run_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
        tmp.replace(self.run_file)

    def read_run_info(self) -> dict[str, Any]:
        """Where the running hub listens, or ConfigError when it is not running."""
        try:
            info = json.loads(self.run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ConfigError(
                f"the hub for {self.root} is not running (start it with: wellguard up "
                f"--data {self.root})"
            ) from None
        if not isinstance(info, dict):
            raise ConfigError(f"{self.run_file} is damaged")
        return info

    def clear_run_info(self) -> None:
        """Forget the listeners (hub stopped)."""
        self.run_file.unlink(missing_ok=True)


def _split_names(names: Sequence[str]) -> tuple[list[str], list[str]]:
    import ipaddress

    dns: list[str] = []
    ips: list[str] = []
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if name not in dns:
                dns.append(name)
        else:
            if name not in ips:
                ips.append(name)
    return dns, ips

"""The servers the MQTT benchmarks drive: a wellguard hub in a subprocess, and Mosquitto.

The hub is started like the integration tests start it (``tests.support.hubproc``:
``wellguard init`` + ``wellguard up``), MQTT on 127.0.0.1 with a free port, and its devices
are created over REST. Mosquitto is the peer, when installed (Debian:
``apt-get install mosquitto``): a TLS listener on 127.0.0.1 with a throwaway CA and an
EC P-256 server certificate like the hub's, anonymous access, no persistence, Nagle off.
Every device connects from its own loopback address (127.x.y.z), as separate field
devices would, so the hub's per-address admission control (50 connects/s, burst 100)
never sees two devices at once and no source address runs out of ephemeral ports.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import ipaddress
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from _loadgen import DeviceSpec, Target
from wellguard.core.identity import generate_sas_token

if TYPE_CHECKING:
    from tests.support.hubproc import HubProcess

__all__ = [
    "Mosquitto",
    "WellguardHub",
    "device_address",
    "mosquitto_binary",
    "process_cpu_seconds",
    "throwaway_pki",
    "tls_libraries",
]

REPO = Path(__file__).resolve().parents[1]
TELEMETRY_FILTER = "devices/+/messages/events/#"
MOSQUITTO_HINT = "install it with: apt-get install -y mosquitto"
BULK = 100  # entries per bulk registry call, IoT Hub's maximum


def device_address(index: int, block: int = 0) -> str:
    """A loopback source address of its own for device ``index`` (``block`` separates runs)."""
    base = int(ipaddress.IPv4Address("127.16.0.0")) + block * 65_536 * 4
    return str(ipaddress.IPv4Address(base + (index // 250) * 256 + index % 250 + 1))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (a hub's gateway workers)
    so far, all their threads."""
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children()]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def tls_libraries() -> str:
    """Which OpenSSL the generator (``ssl``) and the hub (pyOpenSSL) run on."""
    from OpenSSL import SSL

    hub = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    return f"generator {' '.join(ssl.OPENSSL_VERSION.split()[:2])}, hub {' '.join(hub.split()[:2])}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WellguardHub:
    """A hub under test, with device credentials made over REST."""

    process: HubProcess

    @classmethod
    def start(cls, folder: Path, env: dict[str, str] | None = None) -> WellguardHub:
        """``wellguard init`` + ``up`` in ``folder``; MQTT on 127.0.0.1, a free port."""
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from tests.support.hubproc import start_hub

        env = {
            "WELLGUARD_MQTT_BIND": "127.0.0.1",
            "WELLGUARD_MQTT_PORT": "0",
            # High enough never to hold a PUBACK back: the bench measures ingest, not policy.
            "WELLGUARD_MQTT_RATE_PER_DEVICE": "100000",
            "WELLGUARD_MQTT_HUB_RATE": "10000000",
            **(env or {}),
        }
        hub = start_hub(folder / "data", init_args=("--san", "127.0.0.1"), env=env)
        return cls(hub)

    @property
    def pid(self) -> int:
        return int(self.process.process.pid)

    @property
    def target(self) -> Target:
        return Target(
            self.process.mqtt_host, self.process.mqtt_port, str(self.process.root_ca), "localhost"
        )

    def create_devices(self, ids: Sequence[str], threads: int = 4) -> dict[str, str]:
        """SAS devices with keys made here, ``BULK`` per ``POST /devices`` (IoT Hub's bulk
        registry operation), ``threads`` calls in flight; id → primary key. (More calls in
        flight only queue for the store's one writer.)"""
        hub = self.process
        token = hub.token(ttl=3600)
        context = ssl.create_default_context(cafile=str(hub.root_ca))
        clients = [
            httpx.Client(base_url=hub.api_url, verify=context, timeout=120) for _ in range(threads)
        ]
        keys = {device_id: base64.b64encode(secrets.token_bytes(32)).decode() for device_id in ids}
        batches = [ids[start : start + BULK] for start in range(0, len(ids), BULK)]

        def create(index: int) -> None:
            entries = [
                {
                    "id": device_id,
                    "importMode": "create",
                    "authentication": {
                        "type": "sas",
                        "symmetricKey": {"primaryKey": keys[device_id]},
                    },
                }
                for device_id in batches[index]
            ]
            response = clients[index % threads].post(
                "/devices",
                json=entries,
                headers={"Authorization": token},
                params={"api-version": "2021-04-12"},
            )
            if response.status_code != 200:
                raise RuntimeError(f"bulk create failed ({response.status_code}): {response.text}")

        try:
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                list(pool.map(create, range(len(batches))))
        finally:
            for client in clients:
                client.close()
        return keys

    def devices(self, keys: dict[str, str], block: int = 0, ttl: int = 7200) -> list[DeviceSpec]:
        """IoT Hub style CONNECT credentials (SAS tokens) for the created devices."""
        host = self.process.hostname
        expiry = int(time.time()) + ttl
        return [
            DeviceSpec(
                client_id=device_id,
                username=f"{host}/{device_id}/?api-version=2021-04-12",
                password=generate_sas_token(f"{host}/devices/{device_id}", key, expiry).encode(),
                source=device_address(index, block),
                topic=f"devices/{device_id}/messages/events/",
            )
            for index, (device_id, key) in enumerate(keys.items())
        ]

    def connections(self) -> int:
        """Device connections the hub itself reports (``GET /status``)."""
        response = self.process.api("GET", "/status")
        response.raise_for_status()
        return int(response.json()["connections"])

    def rss(self) -> int:
        """Resident set size of the hub process, bytes."""
        return int(psutil.Process(self.pid).memory_info().rss)

    def stop(self) -> None:
        self.process.stop()


def mosquitto_binary() -> str | None:
    """The Mosquitto broker's path, or None when it is not installed."""
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )


def mosquitto_version(binary: str) -> str:
    out = subprocess.run(
        [binary, "-h"], capture_output=True, text=True, check=False, timeout=10
    ).stdout
    first = out.splitlines()[0] if out else ""
    return first.removeprefix("mosquitto version ").strip() or "unknown"


def throwaway_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate (EC P-256, like the hub's) for localhost/127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench throwaway CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


class Mosquitto:
    """A Mosquitto broker on 127.0.0.1 over TLS (no auth, no persistence)."""

    def __init__(self, folder: Path, binary: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        ca_file, cert_file, key_file = throwaway_pki(folder)
        self.port = _free_port()
        self.version = mosquitto_version(binary)
        config = folder / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    # Running as root it would switch to the user "mosquitto", who cannot
                    # read this folder.
                    "user root" if os.geteuid() == 0 else "",
                    "persistence false",
                    "allow_anonymous true",
                    "log_dest stderr",
                    "log_type error",
                    "set_tcp_nodelay true",
                    "max_queued_messages 100000",
                    f"listener {self.port} 127.0.0.1",
                    f"certfile {cert_file}",
                    f"keyfile {key_file}",
                    "",
                ]
            )
        )
        self.log_file = folder / "mosquitto.log"
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        self.target = Target("127.0.0.1", self.port, str(ca_file), "localhost")
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"mosquitto did not start:\n{self.log_file.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        """Resident set size of the broker, bytes."""
        return int(psutil.Process(self.pid).memory_info().rss)

    def devices(self, ids: Sequence[str], block: int = 0) -> list[DeviceSpec]:
        """CONNECTs shaped like the hub's (Mosquitto does not check the credentials)."""
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        expiry = int(time.time()) + 7200
        return [
            DeviceSpec(
                client_id=device_id,
                username=f"localhost/{device_id}/?api-version=2021-04-12",
                password=generate_sas_token(f"localhost/devices/{device_id}", key, expiry).encode(),
                source=device_address(index, block),
                topic=f"devices/{device_id}/messages/events/",
            )
            for index, device_id in enumerate(ids)
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

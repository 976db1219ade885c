"""Running a real hub (``wellguard init`` + ``wellguard up``) in a subprocess for tests."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from wellguard.core.identity import generate_sas_token

__all__ = ["HubProcess", "random_loopback", "run_cli", "start_hub"]


def random_loopback() -> str:
    """A random 127.x.y.z address (the SDK's MQTT port is fixed at 8883, so each hub
    gets its own address; devices reach it through GatewayHostName)."""
    import secrets

    octets = (secrets.randbelow(200) + 20, secrets.randbelow(250) + 1, secrets.randbelow(250) + 2)
    return "127.{}.{}.{}".format(*octets)


def run_cli(
    *args: str, data: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``wellguard ARGS --data DATA`` and return the finished process."""
    full_env = {**os.environ, **(env or {}), "WELLGUARD_DATA": str(data)}
    proc = subprocess.run(
        [sys.executable, "-m", "wellguard.apps.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"wellguard {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@dataclass
class HubProcess:
    """A hub running in a child process."""

    data: Path
    process: subprocess.Popen[bytes]
    api_url: str
    api_port: int
    hostname: str
    admin: dict[str, str]
    log_file: Path
    mqtt_host: str = ""
    mqtt_port: int = 0

    @property
    def root_ca(self) -> Path:
        """The trust anchor."""
        return self.data / "pki" / "root-ca.pem"

    def service_connection_string(self, policy: str = "iothubowner", key: str | None = None) -> str:
        """IoT Hub style service connection string (HostName includes the API port)."""
        key = key or self.admin["sharedAccessKey"]
        return (
            f"HostName={self.hostname}:{self.api_port};"
            f"SharedAccessKeyName={policy};SharedAccessKey={key}"
        )

    def token(self, policy: str = "iothubowner", key: str | None = None, ttl: int = 300) -> str:
        """A fresh service SAS token."""
        return generate_sas_token(
            f"{self.hostname}:{self.api_port}",
            key or self.admin["sharedAccessKey"],
            int(time.time()) + ttl,
            key_name=policy,
        )

    def client(self) -> httpx.Client:
        """An HTTPS client trusting only the hub's CA (no credentials attached)."""
        return httpx.Client(
            base_url=self.api_url,
            verify=ssl.create_default_context(cafile=str(self.root_ca)),
            timeout=30,
        )

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One authenticated REST call as iothubowner."""
        headers = {"Authorization": self.token(), **kwargs.pop("headers", {})}
        params = {"api-version": "2021-04-12", **kwargs.pop("params", {})}
        with self.client() as client:
            return client.request(method, path, headers=headers, params=params, **kwargs)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log(self) -> str:
        """What the hub printed."""
        return self.log_file.read_text(errors="replace")


def start_hub(
    data: Path,
    *,
    hostname: str = "localhost",
    init_args: Sequence[str] = (),
    up_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    initialise: bool = True,
    https_port: int = 0,
) -> HubProcess:
    """``wellguard init`` (unless told not to) and ``wellguard up --https-port PORT``
    (0, the default, picks a free port)."""
    if initialise:
        run_cli("init", "--hostname", hostname, *init_args, data=data, env=env)
    run_file = data / "run" / "hub.json"
    run_file.unlink(missing_ok=True)
    log_file = data.parent / f"{data.name}-hub.log"
    full_env = {**os.environ, **(env or {})}
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wellguard.apps.cli.main",
                "up",
                "--data",
                str(data),
                "--https-port",
                str(https_port),
                *up_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    deadline = time.monotonic() + 60
    while not run_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"hub did not start:\n{log_file.read_text(errors='replace')}")
        time.sleep(0.05)
    info = json.loads(run_file.read_text())
    admin = json.loads((data / "admin.json").read_text())
    hub = HubProcess(
        data=data,
        process=process,
        api_url=info["apiUrl"],
        api_port=info["apiPort"],
        hostname=admin["hostName"],
        admin=admin,
        log_file=log_file,
        mqtt_host=info.get("mqttBind", ""),
        mqtt_port=info.get("mqttPort", 0),
    )
    try:
        _wait_healthy(hub, deadline)
    except BaseException:
        hub.stop()
        raise
    return hub


def _wait_healthy(hub: HubProcess, deadline: float) -> None:
    with hub.client() as client:
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"hub never answered /health:\n{hub.log()}")
            time.sleep(0.05)

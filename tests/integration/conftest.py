"""Integration fixtures: a real hub over real TLS, MQTT on a random loopback address."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.hubproc import HubProcess, random_loopback, start_hub


def _start(
    data: Path, extra_env: dict[str, str] | None = None, *, https_port: int = 0
) -> HubProcess:
    """A hub with MQTT on ``random_loopback():8883`` and that address in its certificate.

    With a fixed HTTPS port (``https_port`` or ``WELLGUARD_API_HTTPS_PORT``, e.g. the
    device SDK's 443 for MQTT over WebSockets) the REST API moves to that address too,
    since two hubs cannot share one address and port. An API address given in
    ``extra_env`` (``WELLGUARD_API_BIND``) goes into the certificate as well.
    """
    address = random_loopback()
    env = {"WELLGUARD_MQTT_BIND": address, "WELLGUARD_MQTT_PORT": "8883", **(extra_env or {})}
    https_port = https_port or int(env.get("WELLGUARD_API_HTTPS_PORT", "0"))
    if https_port:
        env.setdefault("WELLGUARD_API_BIND", address)
    names = dict.fromkeys([address, env.get("WELLGUARD_API_BIND", address)])
    init_args = tuple(arg for name in names for arg in ("--san", name))
    return start_hub(data, init_args=init_args, env=env, https_port=https_port)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub for the session (tests use their own device ids)."""
    process = _start(tmp_path_factory.mktemp("hub") / "data")
    yield process
    process.stop()


@pytest.fixture(scope="module", params=[1, 2], ids=["in-process", "2-workers"])
def gateway_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubProcess]:
    """A hub per module for each gateway layout: MQTT/TLS served by the hub process
    (``mqtt.workers = 1``) and by two gateway worker processes (``mqtt.workers = 2``)."""
    workers = int(request.param)
    data = tmp_path_factory.mktemp(f"hub-{workers}w") / "data"
    process = _start(data, {"WELLGUARD_MQTT_WORKERS": str(workers)})
    yield process
    process.stop()


@pytest.fixture
def fresh_hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub of the test's own, for tests that stop it or tamper with its files."""
    process = _start(tmp_path / "data")
    yield process
    process.stop()


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Start hubs with extra environment (e.g. a low throttle) or a fixed HTTPS port on
    an address of their own (``https_port=443``); stopped at the end."""
    started: list[HubProcess] = []

    def factory(
        name: str = "data", env: dict[str, str] | None = None, *, https_port: int = 0
    ) -> HubProcess:
        process = _start(tmp_path / name, env, https_port=https_port)
        started.append(process)
        return process

    yield factory
    for process in started:
        process.stop()

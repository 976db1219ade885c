"""Starting, watching and stopping the gateway worker processes (``mqtt.workers`` > 1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from wellguard.apps.gateway.cluster import ClusterHub
from wellguard.errors import ConfigError

__all__ = ["WorkerPool", "reserve_port"]

_log = logging.getLogger("wellguard.workers")
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0
_RESTART_BACKOFF = 1.0


def reserve_port(bind: str, port: int) -> socket.socket:
    """Bind (without listening) the MQTT address with ``SO_REUSEPORT``: it fixes the
    port the workers share (``port`` 0 picks one) and fails early when it is taken."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((bind, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen for MQTT on {bind}:{port}: {exc.strerror}") from None
    return sock


class WorkerPool:
    """N worker processes on one data folder, restarted when one dies."""

    def __init__(
        self,
        *,
        count: int,
        data_dir: Path,
        cluster: ClusterHub,
        port: int,
        api_port: int,
        log_level: str,
    ) -> None:
        self._count = count
        self._data = data_dir
        self._cluster = cluster
        self._port = port
        self._api_port = api_port
        self._log_level = log_level
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        """Start every worker and wait until each one listens."""
        await asyncio.gather(*(self._spawn(i) for i in range(self._count)))
        loop = asyncio.get_running_loop()
        self._watchers = [loop.create_task(self._watch(i)) for i in range(self._count)]

    async def stop(self) -> None:
        """SIGTERM every worker (they close their connections), then wait for them."""
        self._stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        for process in self.processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [p.pid for p in self.processes.values() if p.returncode is None]

    async def _spawn(self, index: int) -> None:
        ready: asyncio.Future[Any] = self._cluster.expect(index)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wellguard.apps.gateway.worker",
            "--data",
            str(self._data),
            "--index",
            str(index),
            "--control",
            self._cluster.argv_address,
            "--port",
            str(self._port),
            "--api-port",
            str(self._api_port),
            "--log-level",
            self._log_level,
            stdin=asyncio.subprocess.DEVNULL,
        )
        self.processes[index] = process
        self._cluster.allow(process.pid)
        exited: asyncio.Future[Any] = asyncio.get_running_loop().create_task(process.wait())
        done, _ = await asyncio.wait(
            {ready, exited}, timeout=_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            exited.cancel()
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise ConfigError(
                f"gateway worker {index} did not start (exit code {process.returncode})"
            )
        exited.cancel()

    async def _watch(self, index: int) -> None:
        while not self._stopping:
            process = self.processes[index]
            code = await process.wait()
            self._cluster.disallow(process.pid)
            if self._stopping:
                return
            _log.error("gateway worker %d exited with code %s; restarting it", index, code)
            await asyncio.sleep(_RESTART_BACKOFF)
            try:
                await self._spawn(index)
            except ConfigError as exc:
                _log.error("%s", exc)

"""A throwaway PostgreSQL server for tests: ``initdb`` + ``postgres`` on a free local port.

The server trusts every local connection, keeps its data and unix socket in a fresh
temporary directory, runs with fsync off (nothing in it must survive), and is stopped
with a fast shutdown. PostgreSQL refuses to run as root, so under root the server runs as
the ``postgres`` user (or ``nobody``) and its directory is handed to that user. Each test
gets a database of its own from ``create_database``, or an emptied one from
``reset_schema`` when creating databases (a checkpoint each) would be too slow.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

__all__ = ["PostgresBinaries", "PostgresServer", "find_postgres_binaries", "start_postgres"]

SEARCH_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/local/bin", "/usr/local/pgsql/bin")
SUPERUSER = "postgres"
_RUN_AS_CANDIDATES = ("postgres", "nobody")


@dataclass(frozen=True)
class PostgresBinaries:
    """``initdb`` and ``postgres`` of one installation."""

    initdb: Path
    postgres: Path


def find_postgres_binaries() -> PostgresBinaries | None:
    """The newest installation's binaries (PATH first, then the usual places), or None."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for pattern in SEARCH_DIRS:
        candidates.extend(sorted(Path("/").glob(pattern.lstrip("/")), reverse=True))
    for directory in candidates:
        initdb, postgres = directory / "initdb", directory / "postgres"
        if initdb.is_file() and postgres.is_file():
            return PostgresBinaries(initdb=initdb.resolve(), postgres=postgres.resolve())
    return None


@dataclass
class PostgresServer:
    """A running server; ``stop`` ends it and removes its files."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    log_file: Path
    host: str = "127.0.0.1"
    _databases: set[str] = field(default_factory=set)

    @property
    def socket_dir(self) -> Path:
        """Where the server's unix socket lives."""
        return self.root / "socket"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3) of ``database`` over TCP."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A plain psycopg connection in autocommit mode (for CREATE/DROP DATABASE)."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self) -> str:
        """Create an empty database with a fresh name and return the name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._databases.add(name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database made by ``create_database``, closing whatever still uses it."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self._databases.discard(name)

    def reset_schema(self, database: str) -> None:
        """Empty ``database``: drop and recreate its ``public`` schema (much faster than a
        new database). Connections still using it must be closed first."""
        with self.connect(database) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def log(self) -> str:
        """What the server printed."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        """Fast shutdown, then remove the directory."""
        self.stop_process()
        shutil.rmtree(self.root, ignore_errors=True)

    def stop_process(self) -> None:
        """Fast shutdown (SIGINT: roll back sessions, exit), SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in _RUN_AS_CANDIDATES:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class _Account:
    """Whom the server processes run as (None fields: as ourselves)."""

    uid: int | None = None
    gid: int | None = None

    @property
    def extra_groups(self) -> list[int] | None:
        # Drop root's supplementary groups along with root.
        return None if self.uid is None else []


def start_postgres(binaries: PostgresBinaries, *, timeout: float = 30.0) -> PostgresServer:
    """initdb a fresh cluster in a temporary directory and start it on a free port."""
    account = _run_as()
    # Not under pytest's tmp_path: that is private to the invoking user, and the server
    # may run as someone else.
    root = Path(tempfile.mkdtemp(prefix="wellguard-pg-"))
    (root / "socket").mkdir()
    if account is not None:
        for path in (root, root / "socket"):
            os.chown(path, account.pw_uid, account.pw_gid)
    data = root / "data"
    run_as = _Account() if account is None else _Account(account.pw_uid, account.pw_gid)
    try:
        subprocess.run(
            [
                str(binaries.initdb),
                "--pgdata",
                str(data),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=timeout,
            user=run_as.uid,
            group=run_as.gid,
            extra_groups=run_as.extra_groups,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(
            f"initdb failed:\n{exc.stdout.decode()}\n{exc.stderr.decode()}"
        ) from None
    # A port picked now may be taken before the server binds it; try a few.
    for _attempt in range(5):
        server = _launch(binaries, root, _free_port(), run_as)
        if _wait_until_ready(server, timeout):
            return server
        server.stop_process()
        if "could not bind" not in server.log() and "in use" not in server.log():
            break
    log = server.log()
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start:\n{log}")


def _launch(binaries: PostgresBinaries, root: Path, port: int, run_as: _Account) -> PostgresServer:
    log_file = root / f"postgres-{port}.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [
                str(binaries.postgres),
                "-D",
                str(root / "data"),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(root / "socket"),
                # Throwaway data: durability only costs time here.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=run_as.uid,
            group=run_as.gid,
            extra_groups=run_as.extra_groups,
        )
    return PostgresServer(root=root, port=port, process=process, log_file=log_file)


def _wait_until_ready(server: PostgresServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with server.connect() as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            time.sleep(0.05)
        else:
            return True
    return False

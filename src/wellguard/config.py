"""Typed configuration of a hub, with documented defaults and units.

Only entry points read files and the environment (``wellguard.adapters.configfile``);
components receive these frozen objects. Every field is documented in
``docs/configuration.md`` and a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wellguard.errors import ConfigError

__all__ = ["ApiConfig", "HubConfig", "IngestConfig", "MqttConfig", "SecurityConfig", "StoreConfig"]


def _check_port(name: str, port: int | None) -> None:
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(f"{name} must be a TCP port 0-65535, got {port}", setting=name)


@dataclass(frozen=True)
class ApiConfig:
    """The HTTPS listener: REST API (and later dashboard and MQTT over WebSockets)."""

    bind: str = "127.0.0.1"
    """Address to listen on."""
    https_port: int | None = None
    """TCP port; unset means 443 when the process may bind it, else 8443; 0 picks a free port."""
    max_body_bytes: int = 1_048_576
    """Largest request body accepted, in bytes; larger ones get 413."""
    page_size: int = 100
    """Default page size of list endpoints (devices, certificates, audit), in items."""

    def __post_init__(self) -> None:
        _check_port("api.https_port", self.https_port)
        if self.max_body_bytes < 1024:
            raise ConfigError(
                "api.max_body_bytes must be at least 1024", setting="api.max_body_bytes"
            )
        if not 1 <= self.page_size <= 1000:
            raise ConfigError("api.page_size must be 1-1000", setting="api.page_size")


@dataclass(frozen=True)
class MqttConfig:
    """The MQTT over TLS listener (hub gateway)."""

    bind: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8883
    """TCP port for MQTT over TLS; 0 picks a free port."""
    enabled: bool = True
    """Run the device gateway (MQTT over TLS, and over WebSockets on the HTTPS port)."""
    rate_per_device: float = 100.0
    """Publishes per second a device may send before its PUBACKs are held back; a device
    may burst to twice that, and one that stays over it for 10 s is disconnected."""
    hub_rate: float = 50_000.0
    """Publishes per second the whole hub takes before it holds PUBACKs back (protects
    the store); beyond 2 s of backlog new messages are refused."""
    connect_timeout_seconds: float = 30.0
    """How long a connection may stay open without sending CONNECT, from the moment it
    was accepted (closed and recorded as ``connect_timeout``); the TLS handshake itself
    must finish within 10 s."""
    workers: int = 1
    """Processes serving MQTT/TLS. 1: the hub process itself. N > 1: N gateway worker
    processes share the port (the kernel spreads connections over them), for more cores
    and more connections than one process may open files (each holds up to its open
    file limit, `ulimit -n`)."""

    def __post_init__(self) -> None:
        _check_port("mqtt.port", self.port)
        if not 1 <= self.workers <= 64:
            raise ConfigError("mqtt.workers must be 1-64", setting="mqtt.workers")
        if not 0 < self.rate_per_device <= 100_000:
            raise ConfigError(
                "mqtt.rate_per_device must be 0-100000 messages/s", setting="mqtt.rate_per_device"
            )
        if not 1 <= self.connect_timeout_seconds <= 300:
            raise ConfigError(
                "mqtt.connect_timeout_seconds must be 1-300 s",
                setting="mqtt.connect_timeout_seconds",
            )
        if not 0 < self.hub_rate <= 10_000_000:
            raise ConfigError(
                "mqtt.hub_rate must be 0-10000000 messages/s", setting="mqtt.hub_rate"
            )


@dataclass(frozen=True)
class IngestConfig:
    """The durable ingest journal (what a QoS 1 PUBACK waits for)."""

    synchronous: str = "FULL"
    """SQLite sync mode of the journal: ``FULL`` survives power loss (fsync per group
    commit), ``NORMAL`` survives a process crash only."""
    max_batch: int = 2048
    """Most messages committed together, in messages."""
    max_delay_ms: float = 2.0
    """Longest a message waits for companions before its commit starts, in milliseconds."""

    def __post_init__(self) -> None:
        if self.synchronous not in ("FULL", "NORMAL"):
            raise ConfigError(
                "ingest.synchronous must be FULL or NORMAL", setting="ingest.synchronous"
            )
        if not 1 <= self.max_batch <= 100_000:
            raise ConfigError("ingest.max_batch must be 1-100000", setting="ingest.max_batch")
        if not 0 <= self.max_delay_ms <= 1000:
            raise ConfigError("ingest.max_delay_ms must be 0-1000", setting="ingest.max_delay_ms")


@dataclass(frozen=True)
class SecurityConfig:
    """Token lifetimes, key sizes and the hub-wide IP filter default."""

    sas_max_ttl_seconds: int = 365 * 24 * 3600
    """Longest SAS token lifetime accepted (expiry minus now), in seconds."""
    clock_skew_seconds: int = 300
    """Tolerance for clocks of devices and services, in seconds."""
    ip_filter_default_action: str = "accept"
    """Action when no IP filter rule matches: ``accept`` or ``reject``. Add rules, then set
    ``reject`` for production (deny by default)."""
    device_cert_days: int = 365
    """Validity of device certificates issued by the hub CA, in days."""

    def __post_init__(self) -> None:
        if self.ip_filter_default_action not in ("accept", "reject"):
            raise ConfigError(
                "security.ip_filter_default_action must be 'accept' or 'reject'",
                setting="security.ip_filter_default_action",
            )
        if self.sas_max_ttl_seconds <= 0 or self.device_cert_days <= 0:
            raise ConfigError("token and certificate lifetimes must be positive")


@dataclass(frozen=True)
class StoreConfig:
    """Where registry and telemetry live."""

    url: str = ""
    """SQLAlchemy URL; empty means SQLite ``wellguard.db`` in the data folder.
    PostgreSQL: ``postgresql+psycopg://user:pass@host/db``."""


@dataclass(frozen=True)
class HubConfig:
    """Everything a hub process needs, loaded from ``DIR/wellguard.toml`` plus environment."""

    hostname: str = "localhost"
    """Host name devices and services use to reach the hub; it is in the TLS certificate."""
    api: ApiConfig = field(default_factory=ApiConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    store: StoreConfig = field(default_factory=StoreConfig)

    def __post_init__(self) -> None:
        if not self.hostname or len(self.hostname) > 253:
            raise ConfigError("hostname must be 1-253 characters", setting="hostname")

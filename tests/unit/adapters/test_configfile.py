"""Loading wellguard.toml and WELLGUARD_* overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellguard.adapters.configfile import dump_config, load_config
from wellguard.config import HubConfig
from wellguard.errors import ConfigError


def test_defaults_without_a_file() -> None:
    assert load_config(None, {}) == HubConfig()


def test_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "wellguard.toml"
    path.write_text(
        'hostname = "hub.field"\n[api]\nhttps_port = 9443\n[mqtt]\nrate_per_device = 5\n'
    )
    config = load_config(
        path,
        {
            "WELLGUARD_API_BIND": "0.0.0.0",
            "WELLGUARD_MQTT_ENABLED": "false",
            "WELLGUARD_INGEST_MAX_DELAY_MS": "0.5",
        },
    )
    assert config.hostname == "hub.field"
    assert config.api.https_port == 9443
    assert config.api.bind == "0.0.0.0"
    assert config.mqtt.enabled is False
    assert config.mqtt.rate_per_device == 5.0
    assert config.ingest.max_delay_ms == 0.5


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "wellguard.toml"
    original = HubConfig(hostname="a.b")
    path.write_text(dump_config(original))
    assert load_config(path, {}) == original


@pytest.mark.parametrize(
    ("text", "env", "setting"),
    [
        ("colour = 1\n", {}, "colour"),
        ("[api]\nport = 1\n", {}, "api.port"),
        ('[api]\nhttps_port = "x"\n', {}, "api.https_port"),
        ("[api]\nhttps_port = 70000\n", {}, "api.https_port"),
        ("", {"WELLGUARD_API_HTTPS_PORT": "eighty"}, "api.https_port"),
        (
            '[security]\nip_filter_default_action = "maybe"\n',
            {},
            "security.ip_filter_default_action",
        ),
        ('[ingest]\nsynchronous = "OFF"\n', {}, "ingest.synchronous"),
        ("[mqtt]\nconnect_timeout_seconds = 0.5\n", {}, "mqtt.connect_timeout_seconds"),
        ("", {"WELLGUARD_MQTT_CONNECT_TIMEOUT_SECONDS": "301"}, "mqtt.connect_timeout_seconds"),
        ("[mqtt]\nworkers = 0\n", {}, "mqtt.workers"),
        ("api = 3\n", {}, "api"),
    ],
)
def test_bad_settings_name_themselves(
    tmp_path: Path, text: str, env: dict[str, str], setting: str
) -> None:
    path = tmp_path / "wellguard.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    assert info.value.setting == setting


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "wellguard.toml"
    path.write_text("hostname = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, {})

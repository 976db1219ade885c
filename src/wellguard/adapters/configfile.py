"""Reading ``wellguard.toml`` plus ``WELLGUARD_*`` environment overrides into ``HubConfig``.

The file has top-level ``hostname`` and sections named after the ``HubConfig`` fields
(``[api]``, ``[mqtt]``, ``[security]``, ``[store]``). Each setting can be overridden by
``WELLGUARD_<SECTION>_<NAME>`` (``WELLGUARD_HOSTNAME`` for the top level), e.g.
``WELLGUARD_API_HTTPS_PORT=9443``. Unknown settings and wrong types are errors.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from wellguard.config import HubConfig
from wellguard.errors import ConfigError

__all__ = ["config_settings", "dump_config", "load_config"]


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(HubConfig)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(HubConfig)
        if dataclasses.is_dataclass(hints[f.name])
    }


def config_settings() -> list[tuple[str, str]]:
    """Every setting as (dotted name, type name), e.g. ("api.https_port", "int | None")."""
    out: list[tuple[str, str]] = []
    sections = _section_types()
    for f in dataclasses.fields(HubConfig):
        if f.name in sections:
            hints = typing.get_type_hints(sections[f.name])
            for sub in dataclasses.fields(sections[f.name]):
                out.append((f"{f.name}.{sub.name}", _type_name(hints[sub.name])))
        else:
            out.append((f.name, _type_name(typing.get_type_hints(HubConfig)[f.name])))
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(name: str, tp: Any, value: Any, *, from_env: bool) -> Any:
    allowed = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    if from_env and value == "" and type(None) in allowed:
        return None
    for option in allowed:
        if option is type(None):
            continue
        if option is bool:
            if isinstance(value, bool):
                return value
            if from_env and value.lower() in ("1", "true", "yes", "0", "false", "no"):
                return value.lower() in ("1", "true", "yes")
        elif option is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if from_env:
                try:
                    return int(value)
                except ValueError:
                    pass
        elif option is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if from_env:
                try:
                    return float(value)
                except ValueError:
                    pass
        elif option is str and isinstance(value, str):
            return value
    if value is None and type(None) in allowed:
        return None
    raise ConfigError(f"setting {name} must be {_type_name(tp)}, got {value!r}", setting=name)


def load_config(path: Path | None, environ: Mapping[str, str]) -> HubConfig:
    """Build the hub configuration from an optional TOML file and the environment."""
    raw: dict[str, Any] = {}
    if path is not None and path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    sections = _section_types()
    top_hints = typing.get_type_hints(HubConfig)
    top: dict[str, Any] = {}
    for key, value in raw.items():
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table", setting=key)
            continue
        if key not in top_hints:
            raise ConfigError(f"unknown setting {key!r} in {path}", setting=key)
        top[key] = _coerce(key, top_hints[key], value, from_env=False)
    env_top = environ.get("WELLGUARD_HOSTNAME")
    if env_top is not None:
        top["hostname"] = env_top
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        given = raw.get(section, {})
        values: dict[str, Any] = {}
        for key, value in given.items():
            if key not in hints:
                raise ConfigError(f"unknown setting {section}.{key}", setting=f"{section}.{key}")
            values[key] = _coerce(f"{section}.{key}", hints[key], value, from_env=False)
        for key, tp in hints.items():
            env_name = f"WELLGUARD_{section}_{key}".upper()
            if env_name in environ:
                values[key] = _coerce(f"{section}.{key}", tp, environ[env_name], from_env=True)
        top[section] = cls(**values)
    return HubConfig(**top)


def dump_config(config: HubConfig) -> str:
    """The TOML text of ``config`` with unset (None) values left out."""

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {k: clean(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return tomli_w.dumps(clean(dataclasses.asdict(config)))

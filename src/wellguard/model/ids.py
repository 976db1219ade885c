"""Identifier rules, as IoT Hub has them."""

from __future__ import annotations

import re

from wellguard.errors import InvalidInputError

__all__ = ["validate_configuration_id", "validate_device_id", "validate_module_id"]

# IoT Hub: up to 128 characters, ASCII letters and digits plus - . % _ * ? ! ( ) , : = @ $ '
_DEVICE_ID = re.compile(r"[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}")
# Configurations: lower-case letters, digits and - : + % _ # * ? ! ( ) , = @ ; $ '
_CONFIGURATION_ID = re.compile(r"[a-z0-9\-:+%_#*?!(),=@;$']{1,128}")


def validate_device_id(value: str, *, field: str = "deviceId") -> str:
    """Return ``value`` if it is a valid device id, else raise ``InvalidInputError``."""
    if not isinstance(value, str) or not _DEVICE_ID.fullmatch(value):
        raise InvalidInputError(
            f"{field} must be 1-128 characters of letters, digits and -.%_*?!(),:=@$'",
            field=field,
        )
    return value


def validate_module_id(value: str) -> str:
    """Return ``value`` if it is a valid module id (same rules as device ids)."""
    return validate_device_id(value, field="moduleId")


def validate_configuration_id(value: str) -> str:
    """Return ``value`` if it is a valid configuration id."""
    if not isinstance(value, str) or not _CONFIGURATION_ID.fullmatch(value):
        raise InvalidInputError(
            "configurationId must be 1-128 lower-case letters, digits and -:+%_#*?!(),=@;$'",
            field="configurationId",
        )
    return value

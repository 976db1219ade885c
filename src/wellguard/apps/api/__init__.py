"""The hub's REST API (IoT Hub's service API plus wellguard administration)."""

from wellguard.apps.api.app import create_app
from wellguard.apps.api.context import ApiContext, DeviceMethods, MethodResult

__all__ = ["ApiContext", "DeviceMethods", "MethodResult", "create_app"]

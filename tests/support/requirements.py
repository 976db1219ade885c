"""Skip a test when something it needs is not on the machine, except where it must not.

CI sets ``WELLGUARD_REQUIRE_ALL=1`` after installing every component, so there a missing
component fails the run instead of quietly skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

__all__ = ["require", "require_executable", "sdk_python"]


def require(condition: bool, what: str, how_to_install: str) -> None:
    """Skip (or fail under WELLGUARD_REQUIRE_ALL=1) unless ``condition`` holds."""
    if condition:
        return
    message = f"{what} is not available; install it with: {how_to_install}"
    if os.environ.get("WELLGUARD_REQUIRE_ALL") == "1":
        pytest.fail(message + " (WELLGUARD_REQUIRE_ALL=1 forbids skipping)")
    pytest.skip(message)


def require_executable(name: str, how_to_install: str, extra_dirs: tuple[str, ...] = ()) -> str:
    """Return the path of executable ``name``, or skip/fail as ``require`` does."""
    found = shutil.which(name)
    if found is None:
        for directory in extra_dirs:
            for candidate in sorted(Path("/").glob(directory.lstrip("/"))):
                if (candidate / name).is_file():
                    found = str(candidate / name)
    require(found is not None, name, how_to_install)
    assert found is not None
    return found


def sdk_python() -> str:
    """The interpreter of the virtualenv that holds azure-iot-device and azure-iot-hub."""
    path = os.environ.get("WELLGUARD_SDK_PYTHON", "")
    if not path:
        default = Path(__file__).resolve().parents[2] / ".venv-sdk" / "bin" / "python"
        path = str(default) if default.exists() else ""
    require(
        bool(path) and Path(path).exists(),
        "the Azure IoT SDK virtualenv",
        "make sdk-venv (or set WELLGUARD_SDK_PYTHON to a python that has "
        "azure-iot-device==2.14.0 and azure-iot-hub==2.7.0)",
    )
    return path

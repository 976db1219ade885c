"""The package exports exactly its public API, every public name documented."""

from __future__ import annotations

from pathlib import Path

import wellguard.core.gateway as gateway
from wellguard.core.gateway import admission, counters, dialect, throttle

MODULES = (admission, counters, dialect, throttle)


def test_all_is_exact() -> None:
    expected = {name for module in MODULES for name in module.__all__}
    assert set(gateway.__all__) == expected
    assert len(gateway.__all__) == len(expected)
    public = {n for n in vars(gateway) if not n.startswith("_")} - {
        "admission",
        "counters",
        "dialect",
        "throttle",
    }
    assert public == expected
    for module in MODULES:
        for name in module.__all__:
            assert getattr(gateway, name) is getattr(module, name)


def test_public_names_have_docstrings() -> None:
    for name in gateway.__all__:
        value = getattr(gateway, name)
        if isinstance(value, type) or callable(value):
            assert value.__doc__, name
    for module in (gateway, *MODULES):
        assert module.__doc__
        assert "Theory of operation" in (module.__doc__ or "") or module is gateway


def test_modules_do_no_io_and_read_no_clock() -> None:
    for path in Path(gateway.__file__).parent.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for forbidden in ("import socket", "import asyncio", "import time", ".now("):
            assert forbidden not in source, (path.name, forbidden)

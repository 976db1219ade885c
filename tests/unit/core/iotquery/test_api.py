"""The package's public surface is exactly its ``__all__``."""

from __future__ import annotations

from types import ModuleType

import wellguard.core.iotquery as iotquery


def test_all_is_exact_and_sorted() -> None:
    public = {
        name
        for name, value in vars(iotquery).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    }
    assert set(iotquery.__all__) == public
    assert sorted(iotquery.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n)) == (
        iotquery.__all__
    )
    assert len(iotquery.__all__) == len(set(iotquery.__all__))


def test_public_names_have_docstrings() -> None:
    for name in iotquery.__all__:
        value = getattr(iotquery, name)
        if callable(value) and getattr(value, "__module__", "").startswith("wellguard"):
            assert value.__doc__, name

from __future__ import annotations

import types

import wellguard.core.mqtt as mqtt


def test_all_is_exact() -> None:
    public = {
        name
        for name, value in vars(mqtt).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(mqtt.__all__) == sorted(public)
    for name in mqtt.__all__:
        assert getattr(mqtt, name) is not None


def test_public_names_have_docstrings() -> None:
    for name in mqtt.__all__:
        value = getattr(mqtt, name)
        if isinstance(value, type) or callable(value):
            assert (value.__doc__ or "").strip(), name

"""The package exports exactly its public API."""

from __future__ import annotations

import wellguard.core.identity as identity
from wellguard.core.identity import ipfilter, keys, sas, x509


def test_all_is_exact_and_sorted_like_ruff() -> None:
    modules = (ipfilter, keys, sas, x509)
    expected = {name for module in modules for name in module.__all__}
    assert set(identity.__all__) == expected
    assert len(identity.__all__) == len(expected)
    for name in identity.__all__:
        assert getattr(identity, name) is not None
    public = {n for n in vars(identity) if not n.startswith("_")} - {
        "ipfilter",
        "keys",
        "sas",
        "x509",
    }
    assert public == expected


def test_public_names_have_docstrings() -> None:
    for name in identity.__all__:
        value = getattr(identity, name)
        if callable(value):
            assert value.__doc__, name

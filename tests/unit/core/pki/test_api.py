from __future__ import annotations

import wellguard.core.pki as pki
from wellguard.core.pki import authority, encoding, issuance, keys, revocation


def test_package_re_exports_exactly_the_public_api() -> None:
    modules = (authority, encoding, issuance, keys, revocation)
    assert set(pki.__all__) == {name for module in modules for name in module.__all__}
    assert pki.__all__ == sorted(pki.__all__, key=lambda n: (not n.isupper(), n))
    for name in pki.__all__:
        assert getattr(pki, name) is not None

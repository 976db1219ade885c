"""The configuration reference documents every setting the code has (and no others)."""

from __future__ import annotations

import re
from pathlib import Path

from wellguard.adapters.configfile import config_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", DOC.read_text(), flags=re.MULTILINE))
    in_code = {name for name, _type in config_settings()}
    assert in_code - documented == set(), "settings missing from docs/configuration.md"
    assert documented - in_code == set(), "docs/configuration.md names settings the code lacks"

"""docs/cli.md is the reference generated from the CLI itself."""

from __future__ import annotations

from pathlib import Path

from wellguard.apps.cli.main import cli
from wellguard.apps.cli.reference import render_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    assert DOC.read_text() == render_reference(cli), "run: make docs"


def test_every_command_has_help() -> None:
    text = render_reference(cli)
    assert "`wellguard device create`" in text
    assert "`wellguard policy connection-string`" in text

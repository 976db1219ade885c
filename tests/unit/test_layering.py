"""The layers of STYLE.md hold: model → core → adapters → apps, never upwards."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "wellguard"
RANK = {"model": 0, "core": 1, "adapters": 2, "apps": 3}
# Modules at the package root that every layer may use.
SHARED = {"wellguard", "wellguard.errors", "wellguard.config"}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name.startswith("wellguard")]


def test_no_layer_imports_a_higher_one() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        module = "wellguard." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        own = _layer(module)
        if own is None:
            continue
        for target in _imports(path):
            if target in SHARED:
                continue
            theirs = _layer(target)
            if theirs is not None and theirs > own:
                violations.append(f"{module} imports {target}")
    assert violations == []


def test_core_does_no_io() -> None:
    banned = {"socket", "asyncio", "sqlalchemy", "httpx", "subprocess", "uvicorn", "fastapi"}
    offenders = []
    for path in (PACKAGE / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            allowed = {"asyncio"} if path.name == "ports.py" else set()  # async port signatures
            offenders += [f"{path.name}: {n}" for n in names if n in banned - allowed]
    assert offenders == []

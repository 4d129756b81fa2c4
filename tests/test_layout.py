"""The shape of the package: no module imports a private name of another package, and the
API package has no import cycle (its blueprints import the request context, not the app)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "adapter"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("adapter"):
            out.append((node.module, [a.name for a in node.names]))
    return out


def _package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_module_imports_a_private_name_of_another_package():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _package_of(".".join(path.relative_to(REPO).with_suffix("").parts))
        for module, names in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and _package_of(module) != own:
                offenders.append(f"{path.relative_to(REPO)}: {module} {private}")
    assert offenders == []


def test_the_api_package_has_no_import_cycle():
    graph = {f"adapter.api.{p.stem}": {m for m, _ in _imports(p) if m.startswith("adapter.api.")}
             for p in (PACKAGE / "api").glob("*.py")}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt}))
                   for nxt in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m, {m})] == []
    assert "adapter.api.app" not in set().union(*graph.values())

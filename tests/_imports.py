"""What a module of the package imports, read from its source (no import runs)."""

from __future__ import annotations

import ast
from pathlib import Path

import converter

PACKAGE = Path(converter.__file__).parent


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a module, relative ones resolved against converter."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = list(rel[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.append((module, [a.name for a in node.names]))
    return out

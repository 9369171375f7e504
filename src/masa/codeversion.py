"""The version of the code a workflow stage runs: a hash of its script and every ``masa`` module it imports.

Snakemake re-runs a job when its params change, and on its own notices only an edit of the rule's script.
Each rule that runs package code therefore takes ``code=code_version(<its script>)`` as a param, so an edit of
any module the stage imports (directly, transitively, or inside a function) marks that stage outdated and no
other (docs/workflow.md).
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def masa_imports(path: Path) -> set[str]:
    """Names of the ``masa`` modules a source file imports anywhere in it (``from masa import x`` counts
    ``masa.x``, which is a module or a name of ``masa/__init__.py``; both are followed)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "masa"}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "masa"
        ):
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def module_file(name: str, package: Path = PACKAGE) -> Path | None:
    """The source file of module ``masa.<...>`` in ``package`` (None for a name that is not a module)."""
    relative = package.joinpath(*name.split(".")[1:])
    for candidate in (relative.with_suffix(".py"), relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def source_closure(start: Path, package: Path = PACKAGE) -> list[Path]:
    """``start`` and every package file it reaches through imports, with the packages' ``__init__`` files."""
    seen: set[Path] = set()
    todo = [start.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in masa_imports(path):
            parts = name.split(".")
            for depth in range(
                1, len(parts) + 1
            ):  # importing masa.a.b runs masa/__init__ and masa/a/__init__
                found = module_file(".".join(parts[:depth]), package)
                if found and found not in seen:
                    todo.append(found)
    return sorted(seen)


def source_hash(script: Path, package: Path = PACKAGE) -> str:
    """A short hash of ``script`` and the files of ``package`` it imports, by name and content."""
    hasher = hashlib.sha256()
    package = package.resolve()
    for path in source_closure(script, package):
        name = path.relative_to(package).as_posix() if path.is_relative_to(package) else path.name
        hasher.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()[:16]


@cache
def code_version(script: str | Path) -> str:
    """The version of the source a stage runs: its script and the installed package files it imports
    (computed once per process; Snakemake parses the workflow once)."""
    return source_hash(Path(script))

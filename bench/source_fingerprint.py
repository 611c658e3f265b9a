"""The code a record measured: a hash of the source that can change a method's output or time.

A record's identity names its method, options, dataset, checkpoints and seed; this adds the
code. The fingerprint covers every vidbench module reachable by imports (top-level or inside
functions) from the method's module, the task's module, the dataset's module and the passes
the runner drives (accuracy, stream, cost, offline: ``vidbench.passes``, the speed summary and
the runner itself). So an edit to a method re-runs that method's records and no other's, an
edit to a shared layer (the warp, the codec layer, an evaluator) re-runs whatever runs through
it, and an edit to the harness's measuring path re-runs everything. Left out, because they
choose what to run or read records but never change a number: the registry (names only), the
CLI, reports, the regression gate and the studies.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import cache
from pathlib import Path

MEASURING_PATH = ("vidbench.passes", "vidbench.speed", "vidbench.runner")
LEFT_OUT = (
    "vidbench.registry",
    "vidbench.cli",
    "vidbench.report",
    "vidbench.regression",
    "vidbench.studies",
)


def _is_left_out(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in LEFT_OUT)


def _package_dirs() -> dict[str, Path]:
    """Where vidbench's three code folders are (pyproject.toml maps them), found without
    importing any module below them."""
    import vidbench

    def folder(name: str) -> Path:
        return Path(next(iter(importlib.util.find_spec(name).submodule_search_locations)))

    return {
        "vidbench.methods": folder("vidbench.methods"),
        "vidbench.datasets": folder("vidbench.datasets"),
        "vidbench": Path(vidbench.__file__).parent,
    }


@cache
def _source(name: str) -> Path | None:
    """The source file of module ``name`` (a vidbench module, or one of a plug-in's package),
    or None when ``name`` is not a module (an attribute imported from one)."""
    if name == "vidbench" or name.startswith("vidbench."):
        for prefix, folder in _package_dirs().items():
            if name == prefix or name.startswith(prefix + "."):
                base = folder.joinpath(*name[len(prefix) :].split(".")[1:])
                for candidate in (base / "__init__.py", base.with_suffix(".py")):
                    if candidate.is_file():
                        return candidate
                return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


@cache
def _imports(path: Path, name: str) -> tuple[str, ...]:
    """The vidbench modules ``path`` imports: ``from a.b import c`` yields a.b and, when c is
    a submodule, a.b.c."""
    found: list[str] = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    tops = {"vidbench", name.split(".")[0]}
    return tuple(n for n in found if n.split(".")[0] in tops and _source(n) is not None)


def closure(roots: tuple[str, ...]) -> list[tuple[str, Path]]:
    """Every vidbench module reachable from ``roots`` by imports, with its file, sorted."""
    seen: dict[str, Path] = {}
    todo = [r for r in roots if not _is_left_out(r)]
    while todo:
        name = todo.pop()
        path = _source(name)
        if name in seen or path is None or _is_left_out(name):
            continue
        seen[name] = path
        parent = name.rpartition(".")[0]
        todo += [n for n in _imports(path, name) if n not in seen]
        if parent and parent not in seen:
            todo.append(parent)  # a package's __init__ runs before its modules
    return sorted(seen.items())


def code_fingerprint(*modules: str) -> str:
    """16 hex digits over the names and contents of ``closure(modules + MEASURING_PATH)``."""
    digest = hashlib.sha256()
    for name, path in closure(tuple(modules) + MEASURING_PATH):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]

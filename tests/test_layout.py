"""The layout is the architecture: which folder may import which (the rule each package's
docstring states), and the top-level ``datasets/`` folder never shadows the installed package
of that name."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"bench": "vidbench", "methods": "vidbench.methods", "datasets": "vidbench.datasets"}
STUDIES = "vidbench.studies"
VIDEO = "vidbench.datasets.video"
SCENERY = "vidbench.datasets.scenery"
SHARED_METHODS = ("vidbench.methods.common", "vidbench.methods.motion", "vidbench.methods.psla")
TASKS = ("segmentation", "detection", "recognition")

# package -> the vidbench packages (besides itself and the harness) it may import
ALLOWED: dict[str, tuple[str, ...]] = {
    VIDEO: (),
    SCENERY: (),
    **{f"vidbench.datasets.{task}": (VIDEO, SCENERY) for task in TASKS},
    "vidbench.methods.common": (),
    "vidbench.methods.motion": ("vidbench.methods.common", VIDEO),
    "vidbench.methods.psla": ("vidbench.methods.common",),
    **{f"vidbench.methods.{task}": (*SHARED_METHODS, VIDEO) for task in TASKS},
}


def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    return ".".join([FOLDERS[folder], *rest]).removesuffix(".__init__")


def _imports(path: Path) -> list[str]:
    """Every vidbench module ``path`` imports, at the top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [n for n in names if n == "vidbench" or n.startswith("vidbench.")]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _owner(module: str) -> str | None:
    """The layer a module belongs to (a key of ALLOWED), the studies, or None (the harness)."""
    if _within(module, STUDIES):
        return STUDIES
    return next((p for p in sorted(ALLOWED, key=len, reverse=True) if _within(module, p)), None)


def _is_harness(name: str) -> bool:
    return not any(_within(name, p) for p in ("vidbench.methods", "vidbench.datasets", STUDIES))


def _all_modules() -> list[tuple[str, Path]]:
    return [
        (_module_name(path), path)
        for folder in FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
    ]


def violations(modules: list[tuple[str, list[str]]]) -> list[str]:
    """``module: import`` for every import the layer rule forbids."""
    offenders = []
    for module, imported in modules:
        owner = _owner(module)
        if owner == STUDIES:
            continue  # studies sit on top: they examine one method family or motion source
        for name in imported:
            if _within(name, STUDIES):
                ok = False  # nothing imports a study; the registry names it
            elif _is_harness(name):
                ok = True
            else:  # a method or dataset module: only from its own layer or one it builds on
                ok = owner is not None and (
                    _within(name, owner) or any(_within(name, p) for p in ALLOWED[owner])
                )
            if not ok:
                offenders.append(f"{module}: {name}")
    return offenders


def test_no_module_imports_upward_or_across_tasks() -> None:
    assert violations([(module, _imports(path)) for module, path in _all_modules()]) == []


def test_the_rule_catches_each_kind_of_offender() -> None:
    offenders = [
        ("vidbench.methods.detection.rfcn", ["vidbench.methods.segmentation.deeplab"]),
        ("vidbench.methods.motion.flownet", ["vidbench.methods.segmentation.deeplab"]),
        ("vidbench.datasets.video.codec", ["vidbench.datasets.detection.boxed_video"]),
        ("vidbench.datasets.recognition.sets", ["vidbench.methods.recognition.adafocus"]),
        ("vidbench.runner", ["vidbench.methods.segmentation.frame"]),
        ("vidbench.cli", ["vidbench.studies.motion"]),
    ]
    assert len(violations(offenders)) == len(offenders)
    fine = [
        ("vidbench.methods.detection.video_detection", ["vidbench.methods.psla.training"]),
        ("vidbench.methods.segmentation.propagation", ["vidbench.methods.motion.flownet"]),
        ("vidbench.datasets.detection.synthdet.world", ["vidbench.datasets.scenery"]),
        ("vidbench.studies.focus", ["vidbench.methods.recognition.adafocus"]),
        ("vidbench.methods.common.weights", ["vidbench.files"]),
    ]
    assert violations(fine) == []


def test_every_module_belongs_to_a_layer_or_the_harness() -> None:
    loose = [
        str(path.relative_to(ROOT))
        for module, path in _all_modules()
        if path.parts[len(ROOT.parts)] in ("methods", "datasets")
        and _owner(module) is None
        and module not in ("vidbench.methods",)
    ]
    assert loose == []


def test_every_package_opens_with_a_docstring() -> None:
    missing = [
        str(init.relative_to(ROOT))
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
        if not ast.get_docstring(ast.parse(init.read_text()))
    ]
    assert missing == []
    assert (ROOT / "datasets" / "README.md").exists()  # the namespace folder's docstring


def test_datasets_folder_does_not_shadow_the_installed_package(tmp_path: Path) -> None:
    """From the repository root (a notebook there, say) ``import datasets`` finds the installed
    package of that name, while vidbench's datasets still import."""
    site = tmp_path / "site"
    (site / "datasets").mkdir(parents=True)
    (site / "datasets" / "__init__.py").write_text("INSTALLED = True\n")
    code = (
        "import datasets, vidbench.datasets.video.codec as codec; "
        "print(getattr(datasets, 'INSTALLED', False), codec.__name__)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "vidbench.datasets.video.codec"]


@pytest.mark.parametrize("folder", ["methods", "datasets", "tests"])
def test_each_top_holds_a_handful_of_loose_modules(folder: str) -> None:
    loose = [p.name for p in (ROOT / folder).glob("*.py")]
    assert len(loose) <= 5, loose

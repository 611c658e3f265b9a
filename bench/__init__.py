"""vidbench: a benchmark and reproducibility harness for efficient video inference.

``vidbench.datasets`` is the repository's top-level ``datasets/`` folder, a namespace portion
(it has no ``__init__.py``, so ``import datasets`` run from the repository root finds the
installed package of that name). An editable install cannot map a namespace package below a
regular one, so when vidbench runs from a checkout the root joins this package's search path;
installed from a wheel, ``vidbench/datasets/`` lies inside the package and this does nothing.
"""

from pathlib import Path as _Path

_ROOT = _Path(__file__).resolve().parent.parent
if (_ROOT / "datasets").is_dir() and (_ROOT / "pyproject.toml").is_file():
    __path__.append(str(_ROOT))


def __getattr__(name: str) -> object:
    """``vidbench.compare`` and ``vidbench.records`` (vidbench.library), imported on first use
    so that ``import vidbench`` stays light."""
    if name in ("compare", "records"):
        from vidbench import library

        return getattr(library, name)
    raise AttributeError(f"module 'vidbench' has no attribute '{name}'")

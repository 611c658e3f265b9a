"""Reading weights files the user points to (nothing is downloaded): PyTorch files loaded with
``weights_only=True`` and hashed for the checkpoint keys of what they initialise."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Any

import torch
from vidbench.files import file_sha256 as _file_sha256


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, cached per (path, size, mtime): a weights file is hashed for the
    checkpoint key and again when loaded."""
    stat = Path(path).stat()
    return _cached_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return _file_sha256(Path(path))


def read_weights(path: Path) -> Any:
    """A weights file read with ``weights_only=True``, or a ValueError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(
            f"{path}: not a readable PyTorch weights file (loaded with weights_only=True, so a "
            f"checkpoint holding Python objects beyond tensors and plain containers is refused; "
            f"re-save just its state_dict): {error}"
        ) from error


def tensor_dict(data: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    """``data`` if it is a dict of tensors, else a ValueError naming ``path`` and ``what``."""
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path}: expected {what} (a dict of tensors), got {type(data).__name__}.")
    return data

"""Where a method trains: the ``train_device`` option shared by the paper-scale recipes."""

from __future__ import annotations

import torch


def training_device(train_device: str, recipe: str) -> str:
    """``auto``: the paper recipe on CUDA when there is one, the CPU recipe on the CPU; an
    explicit CUDA device on a machine without one is refused before any training."""
    if train_device == "auto":
        return "cuda" if recipe == "paper" and torch.cuda.is_available() else "cpu"
    if train_device != "cpu" and not torch.cuda.is_available():
        raise ValueError(f"train_device={train_device}: this machine has no CUDA device.")
    return train_device

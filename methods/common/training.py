"""Training helpers the task recipes share: where a recipe trains (the ``train_device``
option), one optimiser step, and the labelled frame a step samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from vidbench.api import VideoSource


def training_device(train_device: str, recipe: str) -> str:
    """``auto``: the paper recipe on CUDA when there is one, the CPU recipe on the CPU; an
    explicit CUDA device on a machine without one is refused before any training."""
    if train_device == "auto":
        return "cuda" if recipe == "paper" and torch.cuda.is_available() else "cpu"
    if train_device != "cpu" and not torch.cuda.is_available():
        raise ValueError(f"train_device={train_device}: this machine has no CUDA device.")
    return train_device


def descend(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One gradient step on ``loss``; returns its value for the loss curve."""
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss.item()


_PARTITIONS: dict[int, tuple[Sequence[VideoSource], list, list]] = {}


def _stills_and_videos(videos: Sequence[VideoSource]) -> tuple[list, list]:
    """One-frame sources and the others, split once per source list (a training loop draws
    from the same list every step; ImageNet VID's has 57 k entries)."""
    cached = _PARTITIONS.get(id(videos))
    if cached is None or cached[0] is not videos:
        stills = [v for v in videos if v.info.num_frames == 1]
        cached = (videos, stills, [v for v in videos if v.info.num_frames > 1])
        _PARTITIONS.clear()  # one list at a time: no stale references kept
        _PARTITIONS[id(videos)] = cached
    return cached[1], cached[2]


def sample_labelled(
    rng: np.random.Generator, videos: Sequence[VideoSource]
) -> tuple[VideoSource, int]:
    """A drawn video and one of its labelled frames. Where the sources mix videos with still
    images (one-frame sources: ImageNet DET beside VID), a draw picks videos or stills at 1 : 1
    and then a source uniformly within them (seed 001 sec. 4.1: "sampled from either ImageNet
    VID or ImageNet DET at 1 : 1 ratio"); otherwise a source uniformly."""
    stills, moving = _stills_and_videos(videos)
    pool = videos
    if stills and moving:
        pool = stills if rng.random() < 0.5 else moving
    video = pool[int(rng.integers(len(pool)))]
    return video, int(rng.choice(video.label_indices))

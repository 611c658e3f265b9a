"""PSLA's training (seed 001 sec. 4.1) around any per-frame network: the paper's key sampling
(k1 in [i - l, i - l/2], k2 in [i - l/2, i + l/2] for a labelled frame i), RFU building F_t from
the two keys, DenseFT propagating it to frame i, and the task's loss there. Detection's ``psla``
and segmentation's ``psla-seg`` call it with their network and loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from vidbench.api import VideoSource
from vidbench.methods.common.training import descend, sample_labelled
from vidbench.methods.psla.framework import PSLAFramework


def psla_keys(rng: np.random.Generator, current: int, length: int, count: int) -> tuple[int, int]:
    """The paper's key sampling (sec. 4.1) for non-key frame ``current`` of a ``count``-frame
    video: k1 in [current - l, current - l/2], k2 in [current - l/2, current + l/2], clipped."""
    k1 = current + int(rng.integers(-length, -length // 2 + 1))
    k2 = current + int(rng.integers(-length // 2, length // 2 + 1))
    return min(max(k1, 0), count - 1), min(max(k2, 0), count - 1)


def train_psla_modules(
    videos: Sequence[VideoSource],
    framework: PSLAFramework,
    network: tuple[Any, Any, Any],
    config: Any,
    seed: int,
    path: Path,
    joint: Mapping[str, nn.Module] | None = None,
) -> None:
    """The paper's PSLA training (sec. 4.1) around a per-frame network: ``network`` is
    (N_f, N_l, loss(features, images, targets)); ``config`` has psla_steps, psla_lr,
    psla_batch, train_interval, joint_lr and key_loss (the loss also on k2's RFU output). Keys k1, k2 build F_t (RFU), frame i is scored.
    ``joint`` names the network's parts trained too (at ``joint_lr``; "features" lets the
    gradient reach N_f and N_l); the rest stays frozen and BatchNorm keeps its statistics.
    Saves {"framework": PSLA's state, "network": {name: that part's state}}."""
    high, low_level, loss = network
    joint = dict(joint or {})
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    framework.train()
    groups = [{"params": list(framework.parameters()), "lr": config.psla_lr}]
    for part in joint.values():
        part.requires_grad_(True)
        groups.append({"params": list(part.parameters()), "lr": config.joint_lr})
    optimiser = torch.optim.Adam(groups)
    for _ in tqdm(range(config.psla_steps), desc="psla: train", unit="step"):
        currents, first, second, targets, key_targets = [], [], [], [], []
        for _ in range(config.psla_batch):
            video, current = sample_labelled(rng, videos)
            k1, k2 = psla_keys(rng, current, config.train_interval, video.info.num_frames)
            currents.append(video.frame(current).image)
            first.append(video.frame(k1).image)
            second.append(video.frame(k2).image)
            targets.append(video.label(current))
            if config.key_loss:
                if k2 not in video.label_indices:
                    raise ValueError(
                        f"key_loss needs labelled key frames: {video.info.name} has no label on "
                        f"frame {k2} (its labelled frames: {list(video.label_indices)[:5]}...)"
                    )
                key_targets.append(video.label(k2))
        images = torch.stack(currents)
        with torch.set_grad_enabled("features" in joint):
            low = low_level(images)
            high_k1 = high(torch.stack(first))
            high_k2 = high(torch.stack(second))
        temporal = framework.key_frame(high_k2, framework.key_frame(high_k1))
        features = framework.non_key_frame(low, temporal)
        total = loss(features, images, targets)
        if config.key_loss:  # the key frame's own output: N_t on the updated F_t
            total = total + loss(temporal, torch.stack(second), key_targets)
        descend(optimiser, total)
    for part in joint.values():
        part.requires_grad_(False)
    states = {name: part.state_dict() for name, part in joint.items()}
    torch.save({"framework": framework.state_dict(), "network": states}, path)


def load_psla(path: Path, framework: PSLAFramework, net: nn.Module) -> None:
    """Load what ``train_psla_modules`` saved into ``framework`` and the parts of ``net`` it
    trained jointly; both end in eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    framework.load_state_dict(state["framework"])
    for name, part in state["network"].items():
        getattr(net, name).load_state_dict(part)
    framework.eval()
    net.eval()

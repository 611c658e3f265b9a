"""Shared parts of the feature-reuse family of seed 000: the trained network, motion on the
feature grid, and warping chains. The methods themselves live in frame.py, propagation.py
and interpolation.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm
from vidbench.api import Frame, Method, SegmentationPrediction, VideoInfo, VideoSource, Workspace
from vidbench.methods.deeplab import OUTPUT_STRIDE, NetConfig, SegmentationNetwork
from vidbench.methods.motion_sources import regrid
from vidbench.methods.warp import warp

IGNORE_INDEX = 255


@dataclass(frozen=True)
class TrainConfig:
    """Per-frame training recipe (CPU-sized; the paper trains 50 epochs with SGD on 4 K80s)."""

    steps: int = 900
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4


def descend(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One gradient step on ``loss``; returns its value for the loss curve."""
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss.item()


def train_segmentation_network(
    videos: Sequence[VideoSource], net_config: NetConfig, train: TrainConfig, seed: int, path: Path
) -> None:
    """Train the per-frame model from scratch on every labelled frame; save a checkpoint."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    samples = [(video, index) for video in videos for index in video.label_indices]
    if not samples:
        raise ValueError("No labelled training frames: the train split is empty.")
    net = SegmentationNetwork(net_config).train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, train.lr, total_steps=train.steps)
    losses = []
    for _ in tqdm(range(train.steps), desc="train frame model", unit="step"):
        chosen = [samples[i] for i in rng.integers(len(samples), size=train.batch_size)]
        images = torch.stack([video.frame(index).image for video, index in chosen])
        labels = torch.stack(
            [torch.from_numpy(video.label(index)).long() for video, index in chosen]
        )
        flip = torch.from_numpy(rng.random(train.batch_size) < 0.5)
        images[flip] = images[flip].flip(-1)
        labels[flip] = labels[flip].flip(-1)
        losses.append(
            descend(optimiser, F.cross_entropy(net(images), labels, ignore_index=IGNORE_INDEX))
        )
        schedule.step()
    torch.save(
        {
            "state_dict": net.state_dict(),
            "net_config": net_config.to_dict(),
            "train_config": asdict(train),
            "seed": seed,
            "losses": losses,
        },
        path,
    )


def trained_network(
    workspace: Workspace, net_config: NetConfig, train: TrainConfig
) -> SegmentationNetwork:
    """The per-frame network for the workspace's dataset, trained once and cached."""
    key = {"net": net_config.to_dict(), "train": asdict(train), "seed": workspace.seed}
    path = workspace.checkpoint(
        "segmentation-network",
        key,
        lambda out: train_segmentation_network(
            workspace.train_videos(), net_config, train, workspace.seed, out
        ),
    )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    net = SegmentationNetwork(NetConfig.from_dict(checkpoint["net_config"]))
    net.load_state_dict(checkpoint["state_dict"])
    return net.eval()


def motion_on_feature_grid(frame: Frame) -> torch.Tensor:
    """(2, h, w) codec displacement in pixels on the stride-16 feature grid: valid block
    vectors averaged per cell. Cells with no valid vector (intra blocks, I-frames) get zero
    displacement, i.e. the feature is carried over in place."""
    hw = (frame.image.shape[-2], frame.image.shape[-1])
    if frame.motion is None or frame.motion_valid is None:
        return torch.zeros(2, -(-hw[0] // OUTPUT_STRIDE), -(-hw[1] // OUTPUT_STRIDE))
    return regrid(frame.motion, frame.motion_valid, frame.motion_grid, OUTPUT_STRIDE, hw)[0]


def propagate(features: torch.Tensor, displacements: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Warp ``features`` step by step: output k is warped by displacements[0..k] (Alg. 2's
    ``propagate``). Each displacement is a (2, h, w) pixel field for one step."""
    chain = []
    for displacement in displacements:
        features = warp(features, displacement, OUTPUT_STRIDE)
        chain.append(features)
    return chain


@dataclass(frozen=True)
class SegmentationConfig:
    """Options shared by the seed-000 methods: the network and its training recipe."""

    layers: str = "1-1-1-1"
    width: int = 32
    expansion: int = 1
    train_steps: int = 900

    def net_config(self, num_classes: int) -> NetConfig:
        layers = tuple(int(part) for part in self.layers.split("-"))
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(
                f"layers must be four positive counts like 3-4-23-3, not {self.layers!r}"
            )
        return NetConfig(
            layers=layers,
            width_per_group=self.width,
            expansion=self.expansion,
            num_classes=num_classes,
        )


class SegmentationMethod(Method):
    """Base of the seed-000 methods: holds the trained network and runs its two halves."""

    task = "segmentation"
    smoke = {"train_steps": "3"}

    def __init__(self, config: SegmentationConfig, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        train = TrainConfig(steps=config.train_steps)
        self.net = trained_network(workspace, config.net_config(workspace.num_classes), train)
        self.size: tuple[int, int] = (0, 0)

    def start(self, video: VideoInfo) -> None:
        self.size = (video.height, video.width)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"feature": self.net.features, "task": self.net.task}

    def features(self, frame: Frame) -> torch.Tensor:
        with self.meter("feature"):
            return self.net.features(frame.image[None])

    def segment(self, index: int, features: torch.Tensor, key: bool) -> SegmentationPrediction:
        with self.meter("task"):
            scores = self.net.task(features, self.size)[0]
        return SegmentationPrediction(index, scores, {"key": key})

    def motion(self, frame: Frame) -> torch.Tensor:
        with self.meter("motion"):
            return motion_on_feature_grid(frame)

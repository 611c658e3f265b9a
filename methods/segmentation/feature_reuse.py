"""Shared parts of the feature-reuse family of seed 000: the trained network, motion on the
feature grid, and warping chains. The methods themselves live in frame.py, propagation.py
and interpolation.py.

Training recipes: the default is CPU-sized (AdamW with a one-cycle lr, random batches of
small frames); ``recipe=paper`` is seed 000 sec. 4.1 (``TrainConfig.paper``: SGD, 50 epochs,
lr 1e-3; momentum, weight decay, batch, schedule and frozen BatchNorm from Deformable
ConvNets' DeepLab config, since the seed does not give them), optionally from ImageNet or
mmsegmentation weights (vidbench.methods.segmentation.weights).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm
from vidbench.api import Frame, Method, SegmentationPrediction, VideoInfo, VideoSource, Workspace
from vidbench.methods.common.training import descend, training_device
from vidbench.methods.motion.sources import regrid
from vidbench.methods.motion.warp import warp
from vidbench.methods.segmentation.deeplab import (
    OUTPUT_STRIDE,
    NetConfig,
    SegmentationNetwork,
    Stem,
)
from vidbench.methods.segmentation.weights import InitWeights

IGNORE_INDEX = 255
PAPER_EPOCHS = 50  # seed 000 sec. 4.1
# TrainConfig fields added with the paper recipe: left out of to_dict() at their defaults.
_ADDED_TRAIN_FIELDS = ("optimiser", "momentum", "schedule", "lr_decay_at", "epochs", "freeze_bn")


@dataclass(frozen=True)
class TrainConfig:
    """Per-frame training recipe. The default is CPU-sized (AdamW, one-cycle, ``steps`` random
    batches); ``paper()`` is seed 000's (sec. 4.1, see there).

    ``epochs`` > 0 replaces ``steps``: each epoch visits the labelled frames once in a random
    order, in batches of ``batch_size`` (the last one may be short). The ``step`` schedule
    multiplies the lr by 0.1 once, after ``lr_decay_at`` of the steps (0: constant lr).
    ``freeze_bn`` keeps every BatchNorm's statistics and affine parameters fixed.
    """

    steps: int = 900
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimiser: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.0
    schedule: Literal["one-cycle", "step"] = "one-cycle"
    lr_decay_at: float = 0.0
    epochs: int = 0
    freeze_bn: bool = False

    @classmethod
    def paper(cls, epochs: int = PAPER_EPOCHS) -> TrainConfig:
        """Seed 000 sec. 4.1: SGD for 50 epochs from lr 1e-3 (the task network is learned from
        scratch; 1e-4 is for fine-tuning only), on 4 K80s. What the seed leaves open follows
        Deformable ConvNets' DeepLab config: one image per GPU (batch 4), whole frames (no
        crop), horizontal flips, momentum 0.9, weight decay 5e-4, BatchNorm frozen, the lr
        divided by 10 late in training (here after 3/4 of the steps)."""
        return cls(
            steps=0,
            batch_size=4,
            lr=1e-3,
            weight_decay=5e-4,
            optimiser="sgd",
            momentum=0.9,
            schedule="step",
            lr_decay_at=0.75,
            epochs=epochs,
            freeze_bn=True,
        )

    def total_steps(self, samples: int) -> int:
        """Optimiser steps over ``samples`` labelled frames."""
        return self.epochs * -(-samples // self.batch_size) if self.epochs else self.steps

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields; those added with the paper recipe only where they differ from
        their defaults, so the default recipe's checkpoint key stays what it was."""
        defaults = {f.name: f.default for f in fields(self)}
        data = asdict(self)
        return {
            k: v for k, v in data.items() if k not in _ADDED_TRAIN_FIELDS or v != defaults[k]
        }


def _freeze_batch_norm(net: torch.nn.Module) -> None:
    """BatchNorm in inference mode with fixed affine parameters (Deformable ConvNets'
    use_global_stats and fixed gamma/beta): one frame per GPU gives no usable batch statistics."""
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
            for parameter in module.parameters():
                parameter.requires_grad_(False)


def _optimiser(
    net: torch.nn.Module, train: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    if train.optimiser == "adamw" and train.schedule == "one-cycle":
        # the original CPU recipe, built exactly as before (same parameter list, same calls)
        optimiser = torch.optim.AdamW(
            net.parameters(), lr=train.lr, weight_decay=train.weight_decay
        )
        return optimiser, torch.optim.lr_scheduler.OneCycleLR(
            optimiser, train.lr, total_steps=total_steps
        )
    trainable = [p for p in net.parameters() if p.requires_grad]
    if train.optimiser == "sgd":
        optimiser = torch.optim.SGD(
            trainable, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
        )
    else:
        optimiser = torch.optim.AdamW(trainable, lr=train.lr, weight_decay=train.weight_decay)
    if train.schedule == "one-cycle":
        return optimiser, torch.optim.lr_scheduler.OneCycleLR(
            optimiser, train.lr, total_steps=total_steps
        )
    decay_step = round(train.lr_decay_at * total_steps) if train.lr_decay_at > 0 else total_steps
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, [max(decay_step, 1)], gamma=0.1)
    return optimiser, schedule


def _batches(
    samples: Sequence[tuple[VideoSource, int]], train: TrainConfig, rng: np.random.Generator
) -> Iterator[list[tuple[VideoSource, int]]]:
    """``steps`` batches drawn with replacement (the default recipe's draws, unchanged), or
    ``epochs`` passes over a fresh permutation of the samples."""
    if not train.epochs:
        for _ in range(train.steps):
            yield [samples[i] for i in rng.integers(len(samples), size=train.batch_size)]
        return
    for _ in range(train.epochs):
        order = rng.permutation(len(samples))
        for start in range(0, len(order), train.batch_size):
            yield [samples[i] for i in order[start : start + train.batch_size]]


def train_segmentation_network(
    videos: Sequence[VideoSource],
    net_config: NetConfig,
    train: TrainConfig,
    seed: int,
    path: Path,
    init: InitWeights | None = None,
    device: str = "cpu",
) -> None:
    """Train the per-frame model on every labelled frame, from scratch or from ``init``'s
    backbone weights, on ``device``; save a checkpoint (tensors on the CPU)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    samples = [(video, index) for video in videos for index in video.label_indices]
    if not samples:
        raise ValueError("No labelled training frames: the train split is empty.")
    net = SegmentationNetwork(net_config)
    loaded = init.apply(net) if init is not None else None
    net.train()
    if train.freeze_bn:
        _freeze_batch_norm(net)
    net.to(device)
    total_steps = train.total_steps(len(samples))
    optimiser, schedule = _optimiser(net, train, total_steps)
    losses = []
    batches = _batches(samples, train, rng)
    for chosen in tqdm(batches, desc="train frame model", unit="step", total=total_steps):
        images = torch.stack([video.frame(index).image for video, index in chosen])
        labels = torch.stack(
            [torch.from_numpy(video.label(index)).long() for video, index in chosen]
        )
        flip = torch.from_numpy(rng.random(len(chosen)) < 0.5)
        images[flip] = images[flip].flip(-1)
        labels[flip] = labels[flip].flip(-1)
        images, labels = images.to(device), labels.to(device)
        losses.append(
            descend(optimiser, F.cross_entropy(net(images), labels, ignore_index=IGNORE_INDEX))
        )
        schedule.step()
    extra = {} if loaded is None else {"init": loaded}
    if device != "cpu":
        extra["train_device"] = device
    torch.save(
        {
            "state_dict": net.cpu().state_dict(),
            "net_config": net_config.to_dict(),
            "train_config": train.to_dict(),
            "seed": seed,
            "losses": losses,
            **extra,
        },
        path,
    )


def network_key(
    net_config: NetConfig, train: TrainConfig, seed: int, init: InitWeights | None = None
) -> dict[str, Any]:
    """The checkpoint key of a trained per-frame network (the training device is not part of
    it). Keys made before the paper options existed are unchanged."""
    key: dict[str, Any] = {"net": net_config.to_dict(), "train": train.to_dict(), "seed": seed}
    if init is not None:
        key["init"] = init.key()
    return key


def trained_network(
    workspace: Workspace,
    net_config: NetConfig,
    train: TrainConfig,
    init: InitWeights | None = None,
    device: str = "cpu",
) -> SegmentationNetwork:
    """The per-frame network for the workspace's dataset, trained once and cached."""
    path = workspace.checkpoint(
        "segmentation-network",
        network_key(net_config, train, workspace.seed, init),
        lambda out: train_segmentation_network(
            workspace.train_videos(), net_config, train, workspace.seed, out, init, device
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
    """Options shared by the seed-000 methods: the network, its initial weights and its
    training recipe.

    ``layers``/``width``/``expansion``/``deformable``/``stem`` give the network (NetConfig);
    ``layers=3-4-23-3:width=64:expansion=4:deformable=true`` is the paper's Deformable DeepLab
    on ResNet-101. ``recipe=cpu`` trains ``train_steps`` AdamW steps from scratch (the small
    default); ``recipe=paper`` is seed 000's SGD recipe for ``train_epochs`` epochs
    (TrainConfig.paper). ``imagenet_weights`` (a torchvision ResNet state dict such as
    resnet101-63fe2227.pth) or ``mmseg_weights`` (an mmsegmentation checkpoint with a
    ResNetV1c backbone, needs ``stem=deep``; its decode head is not used) initialise the trunk.
    ``train_device`` is where training runs: ``auto`` is the CPU for recipe=cpu (as before) and
    CUDA, where there is one, for recipe=paper; or cpu, cuda, cuda:N.
    """

    layers: str = "1-1-1-1"
    width: int = 32
    expansion: int = 1
    train_steps: int = 900
    deformable: bool = False
    stem: Stem = "torchvision"
    recipe: Literal["cpu", "paper"] = "cpu"
    train_epochs: int = PAPER_EPOCHS
    imagenet_weights: str = ""
    mmseg_weights: str = ""
    train_device: str = "auto"

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse inconsistent options (subclasses with their own __post_init__ call it from
        SegmentationMethod)."""
        if self.recipe == "cpu" and self.train_epochs != PAPER_EPOCHS:
            raise ValueError(
                f"train_epochs={self.train_epochs} applies to recipe=paper; the cpu recipe "
                "counts train_steps."
            )
        if self.recipe == "paper" and self.train_steps != SegmentationConfig.train_steps:
            raise ValueError(
                f"train_steps={self.train_steps} applies to recipe=cpu; recipe=paper counts "
                "train_epochs."
            )
        if self.train_epochs < 1:
            raise ValueError(f"train_epochs must be at least 1, not {self.train_epochs}.")
        if self.imagenet_weights and self.mmseg_weights:
            raise ValueError("Give imagenet_weights or mmseg_weights, not both.")
        if self.imagenet_weights and self.stem != "torchvision":
            raise ValueError(
                "imagenet_weights are a torchvision ResNet with the 7x7 stem; use "
                "stem=torchvision."
            )
        if self.mmseg_weights and self.stem != "deep":
            raise ValueError(
                "mmseg_weights come from ResNetV1c, whose stem is three 3x3 convs; add stem=deep."
            )
        if self.train_device not in ("auto", "cpu", "cuda") and not re.fullmatch(
            r"cuda:\d+", self.train_device
        ):
            raise ValueError(
                f"train_device is {self.train_device!r}; allowed: auto, cpu, cuda, cuda:N."
            )

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
            deformable=self.deformable,
            stem=self.stem,
        )

    def train_config(self) -> TrainConfig:
        if self.recipe == "paper":
            return TrainConfig.paper(self.train_epochs)
        return TrainConfig(steps=self.train_steps)

    def init_weights(self) -> InitWeights | None:
        if self.imagenet_weights:
            return InitWeights("torchvision", Path(self.imagenet_weights))
        if self.mmseg_weights:
            return InitWeights("mmseg", Path(self.mmseg_weights))
        return None

    def device(self) -> str:
        """Where training runs (``train_device`` resolved)."""
        return training_device(self.train_device, self.recipe)


class SegmentationMethod(Method):
    """Base of the seed-000 methods: holds the trained network and runs its two halves.

    ``net_key`` is the trained network's checkpoint key: artefacts trained on top of the
    network (flow, fusion, PSLA modules) should include it in their own keys.
    """

    task = "segmentation"
    smoke = {"train_steps": "3"}

    def __init__(self, config: SegmentationConfig, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        config.check()
        net_config, train = config.net_config(workspace.num_classes), config.train_config()
        init, device = config.init_weights(), config.device()
        if config.recipe == "paper" and init is None:
            warnings.warn(
                "recipe=paper without imagenet_weights or mmseg_weights trains the trunk from "
                "scratch; seed 000 starts from ImageNet weights.",
                stacklevel=2,
            )
        self.net_key = network_key(net_config, train, workspace.seed, init)
        self.net = trained_network(workspace, net_config, train, init, device)
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

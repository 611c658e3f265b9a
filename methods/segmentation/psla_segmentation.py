"""PSLA on video semantic segmentation (seed 001 sec. 4.5, Table 6): the R-FCN detector
replaced by the landed DeepLab network of seed 000.

Keys run the DeepLab feature network and RFU updates the temporal feature F_t; other frames run
its low part N_l (the trunk through res4b3, sec. 4.1: res4's first ``low_level_blocks`` = 4
blocks, all of res4 when it has fewer, as in the small default network), the Transform Net,
PSLA from F_t and the Quality Net, then the DeepLab task network. Under ``rotating-offset@v1``
keys precede their frames, so a frame uses the latest key. Training follows sec. 4.1's sampling
(vidbench.methods.psla.training.train_psla_modules) with the cross-entropy of the labelled
non-key frame; the DeepLab network stays frozen (shared with frame / prop-* / interp-mv) unless
``joint`` trains its task network or all of it with PSLA's modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F
from vidbench.api import Frame, SegmentationPrediction, VideoInfo, Workspace
from vidbench.methods.psla.framework import PSLAConfig, PSLAFramework, PSLAOptions
from vidbench.methods.psla.training import load_psla, train_psla_modules
from vidbench.methods.segmentation.deeplab import SegmentationNetwork
from vidbench.methods.segmentation.feature_reuse import (
    IGNORE_INDEX,
    SegmentationConfig,
    SegmentationMethod,
)

RES4 = 6  # body[6] is res4 (torchvision's layer3); body[:6] the stem, res2 and res3


@dataclass(frozen=True)
class PSLASegConfig(PSLAOptions, SegmentationConfig):
    """The shared DeepLab network's options, then PSLA's (vidbench.methods.psla.framework.PSLAOptions)."""

    low_level_blocks: int = 4  # res4a, res4b1-b3: N_l ends at res4b3 (sec. 4.1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low_level_blocks < 1:
            raise ValueError(f"low_level_blocks must be >= 1, got {self.low_level_blocks}")

    def framework(self, net: SegmentationNetwork) -> PSLAConfig:
        return self.psla_config(net.config.feature_channels, 256 * net.config.expansion)


def low_blocks(net: SegmentationNetwork, blocks: int) -> int:
    """How many res4 blocks N_l runs: ``blocks``, or all of res4 when it has fewer."""
    return min(blocks, len(net.features.body[RES4]))


def low_level(net: SegmentationNetwork, images: torch.Tensor, blocks: int) -> torch.Tensor:
    """N_l: the DeepLab trunk through res4's first ``blocks`` blocks (stride 16)."""
    features = net.features
    x = features.body[:RES4]((images - features.mean) / features.std)
    return features.body[RES4][: low_blocks(net, blocks)](x)


class PSLASegmentation(SegmentationMethod):
    """PSLA (seed 001) with RFU and DenseFT on the DeepLab network of seed 000."""

    name = "psla-seg"
    components = ("feature", "update", "low_feature", "transform", "propagate", "quality", "task")
    Config = PSLASegConfig
    smoke = {"train_steps": "3", "psla_steps": "2"}

    def __init__(self, config: PSLASegConfig, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        framework_config = config.framework(self.net)
        key = {
            "segmentation": self.net_key,  # the network it is trained on, recipe and init
            "framework": framework_config.checkpoint_key(),
            "recipe": config.recipe_key(),
            "low_level_blocks": low_blocks(self.net, config.low_level_blocks),
            "seed": workspace.seed,
        }
        net = self.net
        blocks = self.low_level_blocks = config.low_level_blocks

        def loss(features: torch.Tensor, images: torch.Tensor, labels: list) -> torch.Tensor:
            size = (images.shape[-2], images.shape[-1])
            logits = net.task.logits(net.task.project(features), size)
            target = torch.stack([torch.from_numpy(label).long() for label in labels])
            return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)

        path = workspace.checkpoint(
            "psla-seg-framework",
            key,
            lambda out: train_psla_modules(
                workspace.train_videos(),
                PSLAFramework(framework_config),
                (net.features, lambda images: low_level(net, images, blocks), loss),
                config,
                workspace.seed,
                out,
                config.joint_parts(net),
            ),
        )
        self.framework = PSLAFramework(framework_config)
        load_psla(path, self.framework, self.net)

    def start(self, video: VideoInfo) -> None:
        super().start(video)
        self.temporal: torch.Tensor | None = None
        self.embedded: torch.Tensor | None = None

    def modules(self) -> dict[str, torch.nn.Module]:
        return {**super().modules(), "psla": self.framework}

    def step(self, frame: Frame) -> list[SegmentationPrediction]:
        if frame.is_key or self.temporal is None:
            high = self.features(frame)
            with self.meter("update"):
                self.temporal = self.framework.key_frame(high, self.temporal)
                self.embedded = self.framework.embed_temporal(self.temporal)
            return [self.segment(frame.index, self.temporal, key=True)]
        dense = self.framework.dense
        with self.meter("low_feature"):
            low = low_level(self.net, frame.image[None], self.low_level_blocks)
        with self.meter("transform"):
            transformed = dense.transform(low)
        with self.meter("propagate"):
            features = dense.attention(transformed, self.temporal, self.embedded)
        if dense.quality_net is not None:
            with self.meter("quality"):
                features = dense.quality_net(features, transformed)
        return [self.segment(frame.index, features, key=False)]

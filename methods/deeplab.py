"""DeepLab-style segmentation network split into a feature network and a task network.

Seed 000 (Jain & Gonzalez), sec. 3.1: the feature network is an image classifier without its
classification layer (a dilated ResNet at output stride 16); the task network is a 1x1 conv
A -> A/2, ReLU, a 1x1 conv -> C, bilinear upsampling and a softmax.

Deviations: the paper uses Deformable DeepLab on ResNet-101 with ImageNet weights. Here the
ResNet comes from torchvision with depth and width configurable (no deformable convolutions:
mmcv's ops are not available) and is trained from scratch, since no weights can be downloaded.
A small variant trains on a CPU in minutes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import Bottleneck, ResNet

OUTPUT_STRIDE = 16


@dataclass(frozen=True)
class NetConfig:
    """Architecture of the segmentation network.

    ``layers``/``width_per_group``/``expansion`` are torchvision ResNet's knobs:
    (3, 4, 23, 3), 64, 4 is ResNet-101 (A = 2048 channels); the default is a small variant
    (A = 512) whose feature/task cost ratio (~20x) is close to the paper's DeepLab.
    """

    layers: tuple[int, int, int, int] = (1, 1, 1, 1)
    width_per_group: int = 32
    expansion: int = 1
    num_classes: int = 19

    @property
    def feature_channels(self) -> int:
        return 512 * self.expansion

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        return cls(**{**data, "layers": tuple(data["layers"])})


def _bottleneck_with_expansion(expansion: int) -> type[Bottleneck]:
    """torchvision's Bottleneck with its output expansion (4 in ResNet-50/101) changed."""
    if expansion == Bottleneck.expansion:
        return Bottleneck
    return type(f"Bottleneck{expansion}", (Bottleneck,), {"expansion": expansion})


class FeatureNetwork(nn.Module):
    """Dilated ResNet trunk: (N,3,H,W) in [0,1] -> (N,A,ceil(H/16),ceil(W/16))."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        trunk = ResNet(
            _bottleneck_with_expansion(config.expansion),
            list(config.layers),
            width_per_group=config.width_per_group,
            replace_stride_with_dilation=[False, False, True],
        )
        self.body = nn.Sequential(
            trunk.conv1,
            trunk.bn1,
            trunk.relu,
            trunk.maxpool,
            trunk.layer1,
            trunk.layer2,
            trunk.layer3,
            trunk.layer4,
        )
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body((images - self.mean) / self.std)


class TaskNetwork(nn.Module):
    """1x1 conv A->A/2, ReLU, 1x1 conv ->C, bilinear upsampling, softmax (seed 000 sec. 3.1)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, channels // 2, kernel_size=1)
        self.score = nn.Conv2d(channels // 2, num_classes, kernel_size=1)

    def logits(self, projected: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Scores upsampled to ``size`` from the output of the projection layer (pre-ReLU)."""
        scores = self.score(F.relu(projected))
        return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.logits(self.project(features), size).softmax(1)


class SegmentationNetwork(nn.Module):
    """Feature network followed by task network; ``forward`` returns logits for training."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        self.features = FeatureNetwork(config)
        self.task = TaskNetwork(config.feature_channels, config.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = (images.shape[-2], images.shape[-1])
        return self.task.logits(self.task.project(self.features(images)), size)


class ConvFusion(nn.Module):
    """Convolutional fusion (seed 000 sec. 3.6) that takes over the task network's first layer.

    A 1x1 conv from the stacked [alpha*f_fwd, (1-alpha)*f_bwd] (2A channels) to A/2, used in
    place of the task network's projection so fusion adds no layer at inference. Initialised
    as [W, W] from the projection W, i.e. exactly average fusion before training.
    """

    def __init__(self, project: nn.Conv2d) -> None:
        super().__init__()
        out_channels, in_channels = project.out_channels, project.in_channels
        self.conv = nn.Conv2d(2 * in_channels, out_channels, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat([project.weight, project.weight], dim=1))
            self.conv.bias.copy_(project.bias)

    def forward(
        self, forward_features: torch.Tensor, backward_features: torch.Tensor
    ) -> torch.Tensor:
        return self.conv(torch.cat([forward_features, backward_features], dim=1))

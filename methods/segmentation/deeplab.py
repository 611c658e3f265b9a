"""DeepLab-style segmentation network split into a feature network and a task network.

Seed 000 (Jain & Gonzalez), sec. 3.1: the feature network is an image classifier without its
classification layer (a dilated ResNet at output stride 16); the task network is a 1x1 conv
A -> A/2, ReLU, a 1x1 conv -> C, bilinear upsampling and a softmax. Sec. 4.1: the paper's
network is Deformable DeepLab (Dai et al. 2017) on ResNet-101: ``NetConfig.paper()``, i.e.
layers 3-4-23-3, width 64, expansion 4 (A = 2048) with ``deformable=True``, which makes every
res5 3x3 conv deformable (4 offset groups, vidbench.methods.common.deformable) and dilated by 2 as
Deformable ConvNets' ``resnet_v1_101_deeplab_dcn`` (torchvision keeps res5a at dilation 1).

Deviations: the ResNet is torchvision's (ResNet v1.5: stride on the 3x3 conv; the paper's
MXNet ResNet-101 v1 strides the first 1x1 conv), with depth and width configurable; a small
variant trains on a CPU in minutes. Weights are trained from scratch unless a torchvision
ImageNet file or an mmsegmentation backbone is given (vidbench.methods.segmentation.weights); nothing
is downloaded. ``stem="deep"`` swaps the 7x7 stem for ResNetV1c's three 3x3 convs
(mmsegmentation's backbones).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import ResNet
from vidbench.methods.common.deformable import DeformableConv
from vidbench.methods.common.resnet import bottleneck_with_expansion

OUTPUT_STRIDE = 16
RES5_DILATION = 2  # Deformable DeepLab dilates every res5 3x3 conv, res5a included
DEFORMABLE_GROUPS = 4  # num_deformable_group of Deformable DeepLab's res5
STEM_CHANNELS = 64  # torchvision's and ResNetV1c's (the deep stem's middle convs have half)
Stem = Literal["torchvision", "deep"]
# Fields added after checkpoints were keyed by NetConfig.to_dict(): left out at their defaults.
_ADDED_FIELDS = ("deformable", "stem")


@dataclass(frozen=True)
class NetConfig:
    """Architecture of the segmentation network.

    ``layers``/``width_per_group``/``expansion`` are torchvision ResNet's knobs:
    (3, 4, 23, 3), 64, 4 is ResNet-101 (A = 2048 channels); the default is a small variant
    (A = 512) whose feature/task cost ratio (~20x) is close to the paper's DeepLab.
    ``deformable`` makes the res5 3x3 convs deformable (Deformable DeepLab); ``stem`` is
    torchvision's 7x7 conv or ResNetV1c's deep stem (three 3x3 convs, mmsegmentation).
    """

    layers: tuple[int, int, int, int] = (1, 1, 1, 1)
    width_per_group: int = 32
    expansion: int = 1
    num_classes: int = 19
    deformable: bool = False
    stem: Stem = "torchvision"

    def __post_init__(self) -> None:
        if self.stem not in ("torchvision", "deep"):
            raise ValueError(f"NetConfig.stem is {self.stem!r}; allowed: torchvision, deep.")

    @classmethod
    def paper(cls, num_classes: int = 19) -> NetConfig:
        """Seed 000's network: Deformable DeepLab on ResNet-101 with 19 (Cityscapes) or 11
        (CamVid) classes; the paper's C = 20 / 12 (sec. 4.1) presumably counts a void class."""
        return cls((3, 4, 23, 3), 64, 4, num_classes, deformable=True)

    @property
    def feature_channels(self) -> int:
        return 512 * self.expansion

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields; the added ones only where they differ from their defaults, so
        checkpoint keys made before they existed stay the same."""
        defaults = {f.name: f.default for f in fields(self)}
        data = asdict(self)
        return {k: v for k, v in data.items() if k not in _ADDED_FIELDS or v != defaults[k]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetConfig:
        return cls(**{**data, "layers": tuple(data["layers"])})


def _deep_stem() -> tuple[nn.Sequential, nn.BatchNorm2d]:
    """ResNetV1c's stem (mmsegmentation ``stem.0``..``stem.6``) without its last BN + ReLU:
    3x3 convs 3 -> 32 (stride 2) -> 32 -> 64, BN + ReLU between; initialised as torchvision's
    ResNet initialises its convs and BNs."""
    half = STEM_CHANNELS // 2
    convs = nn.Sequential(
        nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(half),
        nn.ReLU(inplace=True),
        nn.Conv2d(half, half, 3, padding=1, bias=False),
        nn.BatchNorm2d(half),
        nn.ReLU(inplace=True),
        nn.Conv2d(half, STEM_CHANNELS, 3, padding=1, bias=False),
    )
    for module in convs:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return convs, nn.BatchNorm2d(STEM_CHANNELS)


class FeatureNetwork(nn.Module):
    """Dilated ResNet trunk: (N,3,H,W) in [0,1] -> (N,A,ceil(H/16),ceil(W/16)).

    ``body`` is [stem conv(s), stem BN, ReLU, max-pool, res2, res3, res4, res5] for either stem
    (PSLA's low-level network is ``body[:6]`` and the first blocks of res4).
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        trunk = ResNet(
            bottleneck_with_expansion(config.expansion),
            list(config.layers),
            width_per_group=config.width_per_group,
            replace_stride_with_dilation=[False, False, True],
        )
        stem, stem_bn = (trunk.conv1, trunk.bn1) if config.stem == "torchvision" else _deep_stem()
        if config.deformable:
            first = trunk.layer4[0].conv2
            first.dilation, first.padding = (RES5_DILATION,) * 2, (RES5_DILATION,) * 2
            for block in trunk.layer4:
                block.conv2 = DeformableConv(block.conv2, DEFORMABLE_GROUPS)
        self.body = nn.Sequential(
            stem,
            stem_bn,
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

    def trunk_prefixes(self) -> dict[str, str]:
        """Where a ResNet checkpoint's parts live in ``state_dict()``: torchvision's ``conv1``
        and ``bn1`` or ResNetV1c's ``stem.0``..``stem.7`` (mmsegmentation), then ``layer1``..
        ``layer4`` (the same names and layout in both)."""
        if self.config.stem == "deep":
            stem = {f"stem.{i}": f"body.0.{i}" for i in (0, 1, 3, 4, 6)} | {"stem.7": "body.1"}
        else:
            stem = {"conv1": "body.0", "bn1": "body.1"}
        return stem | {f"layer{i}": f"body.{i + 3}" for i in range(1, 5)}


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

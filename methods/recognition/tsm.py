"""TSM, TSM+ and AdaFocus-TSM for Something-Something (AdaFocus sec. 4.2, Table 3).

Temporal shift (Lin et al., ICCV 2019): in the residual branch of every ResNet-50 bottleneck
and of every MobileNetV2 inverted-residual block that has a skip connection, 1/8 of the
channels move one frame back in time (frame t sees t+1), 1/8 one frame forward (t sees t-1),
zero-padded at the ends; the rest stay. The shift costs no multiply-adds.

Table 3 models (frames at 224x224, classifier = linear, frame-wise predictions averaged):
- ``tsm``: ResNet-50-TSM on 8 frames (32.7 GMACs).
- ``tsm+``: MobileNetV2-TSM and ResNet-50-TSM both on the same 8 full frames, pooled features
  concatenated into one linear classifier (35.1).
- ``adafocus-tsm``: MobileNetV2-TSM glances at 8 frames; pi aggregates all 8 and gives ONE
  patch location per video (sec. 4.2); ResNet-50-TSM runs on 12 PxP patches cut there
  (P = 144 / 160 / 176: 23.5 / 27.5 / 33.7). The paper keeps pi's architecture and training
  (sec. 4.2), so by default pi's last step gives a categorical distribution over the 7x7
  candidate grid (sampled in training, argmax at test), one patch per video
  (``location_policy="categorical"``). ``location_policy="gaussian"`` is the public Sth-Sth
  code's continuous location (sigmoid mean of a Gaussian, std 0.25, sampled and clipped to
  [0, 1] in training; the mean at test). The classifier sees, for each of the 12 focus
  frames, [glance features averaged over the 8 glance frames, its e_L]; the paper does not say
  how 8 glance and 12 focus features are paired, this is our choice.

Measured with FlopCounterMode (batch 1): 32.70, 35.10, 23.57, 27.51, 33.76 GMACs against the
paper's 32.7, 35.1, 23.5, 27.5, 33.7 (all within 0.3%). P = 144 and 176 are not multiples of
32: the stride-2 layers round up (144 -> 72 -> 36 -> 18 -> 9 -> 5), so ResNet-50 costs more
than 4.09 * (P/224)^2 (1.760 vs 1.690 at 144), which is what the paper's numbers need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck
from vidbench.methods.recognition.adafocus import (
    HIDDEN,
    RecurrentPolicy,
    candidate_grid,
    crop_patches,
    feature_grid,
    global_channels,
    local_backbone,
    patch_corners,
)

SHIFT_DIV = 8
LOCATION_STD = 0.25
LocationPolicy = Literal["categorical", "gaussian"]


def temporal_shift(x: torch.Tensor, frames: int, fold_div: int = SHIFT_DIV) -> torch.Tensor:
    """Shift channels [0, C/8) back in time and [C/8, 2C/8) forward; x is (B*T, C, H, W)."""
    if x.shape[0] % frames:
        raise ValueError(f"temporal_shift: batch {x.shape[0]} is not a multiple of T={frames}")
    video = x.unflatten(0, (x.shape[0] // frames, frames))
    fold = video.shape[2] // fold_div
    out = torch.zeros_like(video)
    out[:, :-1, :fold] = video[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = video[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = video[:, :, 2 * fold :]
    return out.flatten(0, 1)


class TemporalShift(nn.Module):
    """Runs ``temporal_shift`` before ``inner`` (the residual branch's first layer)."""

    def __init__(self, inner: nn.Module, frames: int) -> None:
        super().__init__()
        self.inner = inner
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(temporal_shift(x, self.frames))


def resnet_tsm(frames: int, arch: str = "resnet50") -> tuple[nn.Module, int]:
    """A ResNet (no fc) with a shift in every residual block's branch, and its feature width."""
    net, channels = local_backbone(arch)
    for module in list(net.modules()):
        if isinstance(module, (Bottleneck, BasicBlock)):
            module.conv1 = TemporalShift(module.conv1, frames)
    return net, channels


def resnet50_tsm(frames: int) -> nn.Module:
    """ResNet-50 (no fc) with a shift in every bottleneck's residual branch: (B*T,3,H,W) -> 2048."""
    return resnet_tsm(frames)[0]


def mobilenet_v2_tsm(frames: int, width: float = 1.0) -> nn.Module:
    """MobileNetV2 features (no pooling) with a shift in every block with a skip connection:
    (B*T, 3, H, W) -> (B*T, 1280, H/32, W/32)."""
    features = mobilenet_v2(weights=None, width_mult=width).features
    for module in list(features.modules()):
        if isinstance(module, InvertedResidual) and module.use_res_connect:
            module.conv[0] = TemporalShift(module.conv[0], frames)
    return features


@dataclass(frozen=True)
class TSMConfig:
    """Table 3: 8 glance frames, 12 focus frames, patch P, pi over ``num_candidates`` (or a
    Gaussian location, ``location_policy``; AdaFocus-TSM only); the backbone options shrink
    the networks for CPU-scale runs (defaults are the paper's)."""

    num_classes: int = 174
    glance_frames: int = 8
    focus_frames: int = 12
    patch: int = 160
    dropout: float = 0.8
    frame_size: tuple[int, int] = (224, 224)
    global_width: float = 1.0
    local_arch: str = "resnet50"
    hidden: int = HIDDEN
    num_candidates: int = 49
    location_policy: LocationPolicy = "categorical"

    def __post_init__(self) -> None:
        if self.location_policy not in ("categorical", "gaussian"):
            raise ValueError(
                f"adafocus-tsm: location_policy {self.location_policy!r} is not 'categorical' "
                "or 'gaussian'"
            )
        candidate_grid(self.num_candidates)


class TSM(nn.Module):
    """``tsm``: ResNet-50-TSM on T full frames, linear classifier, average over frames."""

    def __init__(self, config: TSMConfig) -> None:
        super().__init__()
        self.frames = config.glance_frames
        self.backbone, channels = resnet_tsm(self.frames, config.local_arch)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(channels, config.num_classes)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> video logits (B, K)."""
        batch = video.shape[0]
        features = self.backbone(video.flatten(0, 1))
        return self.fc(self.dropout(features)).unflatten(0, (batch, self.frames)).mean(dim=1)


class TSMPlus(nn.Module):
    """``tsm+``: MobileNetV2-TSM + ResNet-50-TSM on the same full frames, features concatenated
    into one linear classifier, average over frames."""

    def __init__(self, config: TSMConfig) -> None:
        super().__init__()
        self.frames = config.glance_frames
        self.glance = mobilenet_v2_tsm(self.frames, config.global_width)
        self.backbone, channels = resnet_tsm(self.frames, config.local_arch)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(global_channels(config.global_width) + channels, config.num_classes)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        batch = video.shape[0]
        frames = video.flatten(0, 1)
        features = torch.cat(
            [self.glance(frames).mean(dim=(2, 3)), self.backbone(frames)], dim=1
        )
        return self.fc(self.dropout(features)).unflatten(0, (batch, self.frames)).mean(dim=1)


class AdaFocusTSM(nn.Module):
    """``adafocus-tsm`` (sec. 4.2): one patch location per video from pi over the glance frames
    (a grid candidate, or a continuous Gaussian location), ResNet-50-TSM on the focus frames'
    patches."""

    def __init__(self, config: TSMConfig) -> None:
        super().__init__()
        self.config = config
        channels = global_channels(config.global_width)
        self.glance = mobilenet_v2_tsm(config.glance_frames, config.global_width)
        outputs = config.num_candidates if self.categorical else 2
        self.policy = RecurrentPolicy(
            outputs, feature_grid(config.frame_size), channels, config.hidden
        )
        self.register_buffer(
            "candidates", candidate_grid(config.num_candidates).float(), persistent=False
        )
        self.backbone, local_channels = resnet_tsm(config.focus_frames, config.local_arch)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(channels + local_channels, config.num_classes)

    def glance_maps(self, glance_video: torch.Tensor) -> torch.Tensor:
        """f_G on the glance frames (B, T, 3, H, W) -> maps (B, T, C, h, w)."""
        batch, frames = glance_video.shape[:2]
        return self.glance(glance_video.flatten(0, 1)).unflatten(0, (batch, frames))

    @property
    def categorical(self) -> bool:
        """Whether pi is a categorical distribution over the candidates (the paper's)."""
        return self.config.location_policy == "categorical"

    def policy_output(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pi over all glance maps (B, T, C, h, w): its last step's actor output (B, n
        candidate logits, or the 2 pre-sigmoid Gaussian means) and its last hidden state."""
        hidden = None
        for t in range(maps.shape[1]):
            logits, hidden = self.policy(maps[:, t], hidden)
        return logits, hidden

    def policy_mean(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pi's test-time location (B, 2): the most probable candidate's corner (categorical)
        or the sigmoid mean (Gaussian); and pi's last hidden state."""
        logits, hidden = self.policy_output(maps)
        if self.categorical:
            return self.candidates[logits.argmax(dim=1)], hidden
        return torch.sigmoid(logits), hidden

    def candidate_location(self, index: torch.Tensor) -> torch.Tensor:
        """Normalised (row, col) corners (B, 2) of candidate indices (B,)."""
        return self.candidates[index.to(self.candidates.device)]

    def locate(self, glance_video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pi over all glance frames: normalised (row, col) location (B, 2), sampled in training
        mode, and the glance features averaged over frames (B, 1280)."""
        maps = self.glance_maps(glance_video)
        features = maps.mean(dim=(1, 3, 4))
        if not self.training:
            return self.policy_mean(maps)[0], features
        logits, _ = self.policy_output(maps)
        if self.categorical:
            index = torch.multinomial(logits.softmax(dim=1), 1).squeeze(1)
            return self.candidate_location(index), features
        noise = torch.randn_like(logits) * LOCATION_STD
        return (torch.sigmoid(logits) + noise).clamp(0.0, 1.0), features

    def focus(
        self, focus_video: torch.Tensor, location: torch.Tensor, glance_features: torch.Tensor
    ) -> torch.Tensor:
        """f_L on the focus frames' patches at ``location`` (B, 2), then the averaged linear
        classifier over [glance features, e_L]: video logits (B, K)."""
        batch, frames = focus_video.shape[:2]
        corners = patch_corners(location, tuple(focus_video.shape[-2:]), self.config.patch)
        corners = corners.repeat_interleave(frames, dim=0)
        patches = crop_patches(focus_video.flatten(0, 1), corners, self.config.patch)
        local = self.backbone(patches)
        features = torch.cat([glance_features.repeat_interleave(frames, dim=0), local], dim=1)
        return self.fc(self.dropout(features)).unflatten(0, (batch, frames)).mean(dim=1)

    def forward(
        self,
        glance_video: torch.Tensor,
        focus_video: torch.Tensor,
        location: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """(B, 8, 3, H, W) glance frames and (B, 12, 3, H, W) focus frames -> video logits;
        a given ``location`` (B, 2) replaces pi's (fixed policies, training)."""
        if location is None:
            location, glance_features = self.locate(glance_video)
        else:
            glance_features = self.glance_maps(glance_video).mean(dim=(1, 3, 4))
        logits = self.focus(focus_video, location, glance_features)
        return {"logits": logits, "location": location}
